"""Building blocks of T5 in Flax linen, named and shaped like t5x so its checkpoints load 1:1.

Shapes: B batch, T query length, S key length, E embed, H heads, D head_dim, F mlp, V vocab.
Every parameter names its logical axes where it is created (t5x names: embed, joined_kv, mlp, vocab,
heads, relpos_buckets); `spot_jax.model.params` turns them into partition specs.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from spot_jax.model.config import T5Config

Array = jax.Array

_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "gelu": functools.partial(jax.nn.gelu, approximate=True),  # HF "gelu_new"
    "gelu_exact": functools.partial(jax.nn.gelu, approximate=False),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "linear": lambda x: x,
}

default_kernel_init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")


def _param(module: nn.Module, name: str, init: Callable, shape: tuple[int, ...],
           axes: tuple[str, ...]) -> Array:
  """A parameter with its logical axis names attached (unboxed by `params.init_params`)."""
  return module.param(name, nn.with_logical_partitioning(init, axes), shape,
                      jnp.dtype(module.config.param_dtype))


class Dense(nn.Module):
  """x @ kernel with a 2-D [in, out] kernel, as t5x's DenseGeneral stores it; no bias (T5)."""
  config: T5Config
  features: int
  axes: tuple[str, str]
  kernel_init: Callable = default_kernel_init
  out_dtype: Optional[str] = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kernel = _param(self, "kernel", self.kernel_init, (x.shape[-1], self.features), self.axes)
    dtype = jnp.dtype(self.out_dtype or self.config.dtype)
    # [..., in] @ [in, out] -> [..., out]
    return jnp.dot(x.astype(dtype), kernel.astype(dtype))


class RMSNorm(nn.Module):
  """T5 layer norm: no mean subtraction, no bias; statistics in float32."""
  config: T5Config

  @nn.compact
  def __call__(self, x: Array) -> Array:
    scale = _param(self, "scale", nn.initializers.ones, (x.shape[-1],), ("embed",))
    x32 = x.astype(jnp.float32)
    var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    y = x32 * jax.lax.rsqrt(var + self.config.layer_norm_epsilon)
    return (y * scale.astype(jnp.float32)).astype(jnp.dtype(self.config.dtype))


class Embed(nn.Module):
  """Token embedding [V, E], shared by encoder and decoder; `attend` gives tied logits."""
  config: T5Config

  def setup(self):
    self.embedding = _param(self, "embedding", nn.initializers.normal(stddev=1.0),
                            (self.config.vocab_size, self.config.emb_dim), ("vocab", "embed"))

  def __call__(self, tokens: Array) -> Array:
    # [B, T] -> [B, T, E]
    return jnp.take(self.embedding, tokens, axis=0).astype(jnp.dtype(self.config.dtype))

  def attend(self, y: Array) -> Array:
    # [B, T, E] @ [E, V] -> [B, T, V]
    return jnp.dot(y.astype(jnp.float32), self.embedding.astype(jnp.float32).T)


def relative_position_buckets(query_len: int, key_len: int, *, bidirectional: bool,
                              num_buckets: int, max_distance: int) -> np.ndarray:
  """Bucket of each (query, key) offset, computed on the host since shapes are static.

  Same rule as Mesh-TF T5 / t5x / HF: half the buckets are exact offsets, the rest grow
  logarithmically up to `max_distance`; bidirectional splits buckets between the two directions.
  Returns int32 [query_len, key_len].
  """
  relative = np.arange(key_len)[None, :] - np.arange(query_len)[:, None]  # key - query
  n = -relative
  result = np.zeros_like(n)
  if bidirectional:
    num_buckets //= 2
    result += (n < 0).astype(n.dtype) * num_buckets
    n = np.abs(n)
  else:
    n = np.maximum(n, 0)
  max_exact = num_buckets // 2
  with np.errstate(divide="ignore"):
    large = max_exact + (np.log(n.astype(np.float32) / max_exact + np.finfo(np.float32).eps)
                         / np.log(max_distance / max_exact) * (num_buckets - max_exact)).astype(n.dtype)
  large = np.minimum(large, num_buckets - 1)
  return (result + np.where(n < max_exact, n, large)).astype(np.int32)


class RelativePositionBias(nn.Module):
  """Learned per-head bias by relative-position bucket; one per stack, shared by its layers."""
  config: T5Config
  bidirectional: bool

  def setup(self):
    cfg = self.config
    self.rel_embedding = _param(
        self, "rel_embedding", nn.initializers.variance_scaling(1.0, "fan_avg", "uniform"),
        (cfg.num_heads, cfg.relative_attention_num_buckets), ("heads", "relpos_buckets"))

  def __call__(self, table_len: int, key_len: int, *, query_offset: Optional[Array] = None,
               query_len: Optional[int] = None) -> Array:
    """Bias [1, H, T, S] for queries 0..table_len-1 (or `query_len` rows from a traced offset)."""
    buckets = jnp.asarray(relative_position_buckets(
        table_len, key_len, bidirectional=self.bidirectional,
        num_buckets=self.config.relative_attention_num_buckets,
        max_distance=self.config.relative_attention_max_distance))  # [T, S]
    if query_offset is not None:  # decoding: rows of the static table at a dynamic position
      buckets = jax.lax.dynamic_slice_in_dim(buckets, query_offset, query_len, axis=0)
    # [H, num_buckets] gathered at [T, S] -> [H, T, S] -> [1, H, T, S]
    return jnp.take(self.rel_embedding, buckets, axis=1)[None].astype(jnp.float32)


def mask_to_bias(mask: Array) -> Array:
  """Boolean attention mask -> additive float32 bias (0 where attended, very negative elsewhere)."""
  return jnp.where(mask, 0.0, jnp.finfo(jnp.float32).min).astype(jnp.float32)


class MultiHeadAttention(nn.Module):
  """T5 attention: no 1/sqrt(D) scaling (t5x folds it into the query init), no biases."""
  config: T5Config

  def setup(self):
    cfg = self.config
    joined = cfg.num_heads * cfg.head_dim
    query_init = lambda *a: default_kernel_init(*a) / np.sqrt(cfg.head_dim)  # noqa: E731
    self.query = Dense(cfg, joined, ("embed", "joined_kv"), kernel_init=query_init)
    self.key = Dense(cfg, joined, ("embed", "joined_kv"))
    self.value = Dense(cfg, joined, ("embed", "joined_kv"))
    self.out = Dense(cfg, cfg.emb_dim, ("joined_kv", "embed"))
    self.dropout = nn.Dropout(cfg.dropout_rate)

  def _split_heads(self, x: Array) -> Array:
    # [B, T, H*D] -> [B, T, H, D]
    return x.reshape(x.shape[:-1] + (self.config.num_heads, self.config.head_dim))

  def project_kv(self, inputs_kv: Array) -> tuple[Array, Array]:
    """Keys and values of `inputs_kv` [B, S, E] -> two [B, S, H, D] (cached for cross-attention)."""
    return self._split_heads(self.key(inputs_kv)), self._split_heads(self.value(inputs_kv))

  def __call__(self, inputs_q: Array, biases: Sequence[Array], *,
               inputs_kv: Optional[Array] = None, kv: Optional[tuple[Array, Array]] = None,
               prefix_kv: Optional[tuple[Array, Array]] = None,
               deterministic: bool = True) -> Array:
    """Attends `inputs_q` [B, T, E] to `inputs_kv` [B, S, E] (or precomputed `kv`).

    `biases` (relative positions [1, H, T, S], masks [B, 1, 1 or T, S]) broadcast to [B, H, T, S];
    they are added here, inside the fused softmax, so no [B, H, T, S] bias is ever stored.
    `prefix_kv` (prefix tuning): keys and values [P, H, D] (or [B, P, H, D]) put in front of the
    keys and values; every query attends to them, with no mask and no relative-position bias.
    """
    cfg = self.config
    q = self._split_heads(self.query(inputs_q))  # [B, T, H, D]
    k, v = kv if kv is not None else self.project_kv(inputs_kv)  # [B, S, H, D]
    if prefix_kv is not None:
      k, v, biases = prepend_kv(k, v, biases, prefix_kv)
    # Heads first ([B, H, T, D]) before both products: XLA:CPU otherwise runs the value product
    # as [B, H, D, T] plus a transpose (1.25x the train step at T5-small shapes, bench_peer).
    q, k, v = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
    logits_dtype = jnp.float32 if cfg.float32_attention_logits else q.dtype
    logits = jnp.einsum("bhtd,bhsd->bhts", q.astype(logits_dtype), k.astype(logits_dtype))
    logits = sum(biases, logits.astype(jnp.float32))
    # Softmax with the normalisation deferred past the value product: exp(l - max) @ v / sum
    # divides [B, H, T, D] instead of [B, H, T, S] (1.14x the train step of bench_peer's
    # peer_tiny); dropout, elementwise, commutes with the division.
    unnormalized = jnp.exp(logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True)))
    denominator = jnp.sum(unnormalized, axis=-1, keepdims=True)  # [B, H, T, 1], float32
    unnormalized = self.dropout(unnormalized, deterministic=deterministic).astype(v.dtype)
    y = jnp.einsum("bhts,bhsd->bhtd", unnormalized, v) / denominator
    y = y.astype(v.dtype).transpose(0, 2, 1, 3)  # [B, T, H, D]
    return self.out(y.reshape(y.shape[:2] + (-1,)))  # [B, T, H*D] -> [B, T, E]


def prepend_kv(k: Array, v: Array, biases: Sequence[Array], prefix_kv: tuple[Array, Array]
               ) -> tuple[Array, Array, list[Array]]:
  """Keys/values [B, S, H, D] -> [B, P+S, H, D] with the prefix first; biases [..., S] get P
  leading zeros (attended, no position bias)."""
  batch = k.shape[0]
  pk, pv = (jnp.broadcast_to(p, (batch,) + p.shape[-3:]).astype(k.dtype) for p in prefix_kv)
  length = pk.shape[1]
  biases = [jnp.pad(b, [(0, 0)] * (b.ndim - 1) + [(length, 0)]) for b in biases]
  return jnp.concatenate([pk, k], axis=1), jnp.concatenate([pv, v], axis=1), biases


def adapter(h: Array, params: Optional[dict[str, Array]]) -> Array:
  """Houlsby bottleneck adapter on a sublayer output [B, T, E]: h + relu(h W_down + b) W_up + c.

  params {"down" [E, M], "down_bias" [M], "up" [M, E], "up_bias" [E]}; None is the identity. With
  W_up and c zero (their initial values) the output is h exactly.
  """
  if params is None:
    return h
  z = jax.nn.relu(jnp.dot(h, params["down"].astype(h.dtype)) + params["down_bias"].astype(h.dtype))
  return h + (jnp.dot(z, params["up"].astype(h.dtype)) + params["up_bias"].astype(h.dtype))


class MlpBlock(nn.Module):
  """wi (T5 1.0) or gated wi_0 * wi_1 (T5 1.1), then wo; names as in t5x."""
  config: T5Config

  @nn.compact
  def __call__(self, x: Array, *, deterministic: bool = True) -> Array:
    cfg = self.config
    acts = cfg.mlp_activations
    hidden = None
    for i, act in enumerate(acts):
      name = "wi" if len(acts) == 1 else f"wi_{i}"
      h = _ACTIVATIONS[act](Dense(cfg, cfg.mlp_dim, ("embed", "mlp"), name=name)(x))  # [B, T, F]
      hidden = h if hidden is None else hidden * h
    hidden = nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))(hidden, deterministic=deterministic)
    return Dense(cfg, cfg.emb_dim, ("mlp", "embed"), name="wo")(hidden)  # [B, T, F] -> [B, T, E]


def residual_dropout(config: T5Config) -> nn.Dropout:
  return nn.Dropout(config.dropout_rate, broadcast_dims=(-2,))



def remat_layer(layer_cls: type[nn.Module], policy: str, static_argnums: tuple[int, ...]
                ) -> type[nn.Module]:
  """`layer_cls`, or it under nn.remat with the named policy (T5Config.remat_policy).

  nn.remat keeps the parameter names (layers_i/...), so checkpoints load either way. Arguments
  that steer Python control flow (`deterministic`) must be passed positionally and named in
  `static_argnums` (counting self as 0): the lifted jax.checkpoint traces keyword arguments.
  """
  if policy == "none":
    return layer_cls
  policies = {"full": None, "dots": jax.checkpoint_policies.checkpoint_dots,
              "dots_with_no_batch_dims": jax.checkpoint_policies.dots_with_no_batch_dims_saveable}
  return nn.remat(layer_cls, policy=policies[policy], static_argnums=static_argnums)
