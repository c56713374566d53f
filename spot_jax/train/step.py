"""The train step of every tuning method: gradient of the loss with respect to the trainable tree.

`train_step(state, frozen, batch)` differentiates `loss_fn` in its first argument (the trainable
tree: a prompt, prefixes, adapters or a full-model copy, spot_jax.peft.trees); the frozen
parameters enter as a plain argument, so no gradient of a frozen weight is ever computed and "only
the trainable tree changes" holds by construction.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from spot_jax.model.config import T5Config
from spot_jax.model.t5 import SEGMENT_FEATURES, T5
from spot_jax.peft.trees import model_args
from spot_jax.train.state import TrainState, Trainable

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


def cross_entropy(logits: jax.Array, targets: jax.Array, weights: jax.Array,
                  z_loss: float = 0.0) -> tuple[jax.Array, Metrics]:
  """Mean token cross-entropy over weighted target tokens, plus t5x's optional z-loss.

  logits [B, T, V] float32, targets/weights [B, T]. z-loss adds z_loss * log(Z)^2 per token and
  keeps the softmax normaliser near 1.
  """
  log_z = jax.nn.logsumexp(logits, axis=-1)  # [B, T]
  target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  token_loss = log_z - target_logit + z_loss * jnp.square(log_z)
  weights = weights.astype(jnp.float32)
  num_tokens = jnp.maximum(jnp.sum(weights), 1.0)
  loss = jnp.sum(token_loss * weights) / num_tokens
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  metrics = {"loss": loss, "z_loss": jnp.sum(z_loss * jnp.square(log_z) * weights) / num_tokens,
             "token_accuracy": jnp.sum(correct * weights) / num_tokens, "num_tokens": num_tokens}
  return loss, metrics


def loss_fn(trainable: Trainable, frozen: Any, batch: Batch, dropout_rng: jax.Array, *,
            config: T5Config, z_loss: float = 0.0,
            deterministic: bool = False) -> tuple[jax.Array, Metrics]:
  params, peft = model_args(trainable, frozen)
  # Packed batches (spot_jax.data.packing) carry seqio's segment features; unpacked ones do not.
  segments = {k: batch[k] for k in SEGMENT_FEATURES} if SEGMENT_FEATURES[0] in batch else None
  logits = T5(config).apply({"params": params}, batch["encoder_input_tokens"],
                            batch["decoder_input_tokens"], peft=peft,
                            deterministic=deterministic, rngs={"dropout": dropout_rng},
                            segments=segments)
  return cross_entropy(logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"], z_loss)


def train_step(state: TrainState, frozen: Any, batch: Batch, *, config: T5Config,
               optimizer: optax.GradientTransformation,
               z_loss: float = 0.0) -> tuple[TrainState, Metrics]:
  rng, dropout_rng = jax.random.split(state.rng)
  grad_fn = jax.value_and_grad(functools.partial(loss_fn, config=config, z_loss=z_loss), has_aux=True)
  (_, metrics), grads = grad_fn(state.trainable, frozen, batch, dropout_rng)  # d loss / d trainable
  metrics["grad_norm"] = optax.global_norm(grads)
  return state.apply_gradients(grads, optimizer).replace(rng=rng), metrics


def eval_loss(trainable: Trainable, frozen: Any, batch: Batch, *, config: T5Config) -> Metrics:
  """Deterministic (no dropout) loss metrics of one batch."""
  return loss_fn(trainable, frozen, batch, jax.random.PRNGKey(0), config=config,
                 deterministic=True)[1]


def jit_train_step(config: T5Config, optimizer: optax.GradientTransformation, z_loss: float = 0.0):
  """One compiled step per (config, optimizer, z_loss); the state buffers are donated."""
  return jax.jit(functools.partial(train_step, config=config, optimizer=optimizer, z_loss=z_loss),
                 donate_argnums=(0,))
