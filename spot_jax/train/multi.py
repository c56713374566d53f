"""K independent training runs in one compiled step: the single-run step, vmapped.

Studies like CrossFit's downstream grid train many small runs (batch 4 or 8) over one frozen
model. One such step leaves a CPU's cores mostly idle; K runs stacked on a leading axis fill them,
and one compiled call advances all K. Nothing about a run changes: each keeps its own trainable
tree, optimizer state, learning rate, dropout rng, step count and batch, and ends where it would
alone up to float32 round-off (batched matmuls may sum in another order; tests/train/
test_multi.py: 1e-5 after 3 steps). Tuning amplifies round-off like any perturbation (Adam at
lr 0.1-1 on the embedded model: O(1) apart after ~20 steps, as a 1e-7 change of the init is), so
a long stacked run is another draw of the same run, not the same numbers. The frozen model is
shared (vmap in_axes None), never copied K times.

The learning rate must live in the optimizer state (optax.inject_hyperparams), so one optimizer
definition, and one compiled step, serves K runs with different rates. `runs_per_step` says how
many runs to stack for a batch size, from a measurement (tools/bench_multi.py); K = 1 where
stacking does not pay.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from spot_jax.errors import SpotError
from spot_jax.model.config import T5Config
from spot_jax.model.t5 import T5
from spot_jax.peft.trees import model_args
from spot_jax.train.state import TrainState, Trainable
from spot_jax.train.step import Batch, Metrics, cross_entropy, eval_loss, train_step


class MultiRunError(SpotError):
  """Runs that cannot be stacked: none, different tree shapes, an optimizer without its rate in
  its state."""


# ----------------------------------------------------------------------- stacking and unstacking


def stack(trees: Sequence[Any]) -> Any:
  """K trees of identical structure and shapes -> one tree with a leading axis of size K."""
  if not trees:
    raise MultiRunError("no runs to stack; pass at least one")
  structures = {jax.tree.structure(t) for t in trees}
  shapes = {tuple(np.shape(x) for x in jax.tree.leaves(t)) for t in trees}
  if len(structures) > 1 or len(shapes) > 1:
    raise MultiRunError("runs stacked in one step need trainable trees of one method and shape; "
                        "group runs by method and tree size")
  return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)


def unstack(stacked: Any, k: int) -> Any:
  """Run k's tree out of a stacked tree (a TrainState, a trainable tree, metrics)."""
  return jax.tree.map(lambda x: x[k], stacked)


def num_runs(stacked: Any) -> int:
  """K of a stacked tree."""
  return int(np.shape(jax.tree.leaves(stacked)[0])[0])


def with_learning_rate(state: TrainState, learning_rate: float) -> TrainState:
  """`state` with the learning rate its optimizer state holds set to `learning_rate`."""
  hyperparams = getattr(state.opt_state, "hyperparams", None)
  if not isinstance(hyperparams, dict) or "learning_rate" not in hyperparams:
    raise MultiRunError("per-run learning rates need the rate in the optimizer state; build the "
                        "optimizer with optax.inject_hyperparams(...)(learning_rate=...)")
  rates = {**hyperparams, "learning_rate": jnp.asarray(learning_rate, jnp.float32)}
  return state.replace(opt_state=state.opt_state._replace(hyperparams=rates))


def create_states(trainables: Sequence[Trainable], optimizer: optax.GradientTransformation, *,
                  seeds: Sequence[int], learning_rates: Sequence[float]) -> TrainState:
  """K fresh runs stacked: run k starts from trainables[k] with rng seeds[k] and learning rate
  learning_rates[k] (each as TrainState.create would start it alone)."""
  if not len(trainables) == len(seeds) == len(learning_rates):
    raise MultiRunError(f"{len(trainables)} trainable trees, {len(seeds)} seeds and "
                        f"{len(learning_rates)} learning rates; give one of each per run")
  return stack([with_learning_rate(TrainState.create(dict(t), optimizer, s), lr)
                for t, s, lr in zip(trainables, seeds, learning_rates)])


# ------------------------------------------------------------------------------------ stepping


def multi_train_step(states: TrainState, frozen: Any, batches: Batch, *, config: T5Config,
                     optimizer: optax.GradientTransformation,
                     z_loss: float = 0.0) -> tuple[TrainState, Metrics]:
  """spot_jax.train.step.train_step of K runs at once: states and batches ([K, B, ...]) carry a
  leading run axis, the frozen model none; metrics come back [K]."""
  step = functools.partial(train_step, config=config, optimizer=optimizer, z_loss=z_loss)
  return jax.vmap(step, in_axes=(0, None, 0))(states, frozen, batches)


def jit_multi_train_step(config: T5Config, optimizer: optax.GradientTransformation,
                         z_loss: float = 0.0):
  """One compiled K-run step per (config, optimizer, z_loss, K, batch shape); the stacked state
  buffers are donated, as the single-run step's are."""
  return jax.jit(functools.partial(multi_train_step, config=config, optimizer=optimizer,
                                   z_loss=z_loss), donate_argnums=(0,))


# ---------------------------------------------------------------------------------- evaluation


def multi_eval_loss(trainables: Trainable, frozen: Any, batches: Batch, *, config: T5Config,
                    shared_batch: bool = False) -> Metrics:
  """Deterministic loss metrics [K] of K stacked trainable trees (any method), each on its own
  batch ([K, B, ...]) or, with shared_batch, all on one batch ([B, ...])."""
  fn = functools.partial(eval_loss, config=config)
  return jax.vmap(fn, in_axes=(0, None, None if shared_batch else 0))(trainables, frozen, batches)


def prompt_eval_loss(prompts: jax.Array, frozen: Any, batches: Batch, *,
                     config: T5Config) -> Metrics:
  """multi_eval_loss of K prompts [K, P, E] as one model pass over K * B examples, each with its
  run's prompt (the model takes per-example prompts [K * B, P, E]); no vmap of the model."""
  k, b = batches["encoder_input_tokens"].shape[:2]
  flat = {name: x.reshape((k * b,) + x.shape[2:]) for name, x in batches.items()}
  per_example = jnp.repeat(prompts, b, axis=0)  # [K * B, P, E]: run k's prompt on its B examples
  params, peft = model_args({"prompt": per_example}, frozen)
  logits = T5(config).apply({"params": params}, flat["encoder_input_tokens"],
                            flat["decoder_input_tokens"], peft=peft, deterministic=True)
  logits = logits.reshape((k, b) + logits.shape[1:])
  per_run = lambda lg, t, w: cross_entropy(lg, t, w)[1]  # noqa: E731
  return jax.vmap(per_run)(logits, batches["decoder_target_tokens"],
                           batches["decoder_loss_weights"])


# ------------------------------------------------------------------------------ measured rule

# Measured (tools/bench_multi.py, whose docstring has the table and the command): examples/s of
# the K-run step over all K runs, relative to one run at a time (K = 1), on the shipped embedded
# model with the CrossFit prompt method (P = 20, AdamW via inject_hyperparams, no dropout), inputs
# 24 / targets 8 tokens (the CrossFit targets' tight lengths), on the 2-core CPU. Throughput peaks
# near K x batch = 16 examples per step and falls below one-run-at-a-time from about 32, so:
# batch 4 -> K 4 (1.4-2.0x), batch 8 -> K 2 (1.2-1.3x), batch 32 -> K 1 (K 2: 0.98-1.12x).
MEASURED_RUNS_PER_STEP = {4: 4, 8: 2, 32: 1}
EXAMPLES_PER_STEP = 16  # batch sizes off the table: K = EXAMPLES_PER_STEP // batch (at least 1)
MAX_RUNS = 8            # the largest K measured


def runs_per_step(batch_size: int, *, max_runs: int | None = None) -> int:
  """How many runs of `batch_size` to stack in one step: the measured table's K, else
  EXAMPLES_PER_STEP // batch_size within [1, MAX_RUNS]; capped at max_runs (e.g. the number of
  runs there are). 1 means: run them one at a time."""
  if batch_size < 1:
    raise MultiRunError(f"batch size must be >= 1, got {batch_size}")
  k = MEASURED_RUNS_PER_STEP.get(batch_size, min(MAX_RUNS, max(1, EXAMPLES_PER_STEP // batch_size)))
  return max(1, min(k, max_runs)) if max_runs is not None else k
