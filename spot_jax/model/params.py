"""Parameter trees of the T5 model: initialisation, expected shapes, logical axes and validation.

Parameter names are '/'-joined t5x paths such as "encoder/layers_0/attention/query/kernel".
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from spot_jax.errors import CheckpointError, ConfigError
from spot_jax.model.config import T5Config
from spot_jax.model.t5 import T5

Params = Any  # nested dict of arrays


def _dummy_inputs():
  return jnp.ones((1, 2), jnp.int32), jnp.ones((1, 2), jnp.int32)


def _boxed_init(config: T5Config, rng: jax.Array):
  return T5(config).init(rng, *_dummy_inputs())["params"]


def init_params(config: T5Config, rng: jax.Array | int = 0) -> Params:
  """Randomly initialised parameters (t5x initialisers) as a plain nested dict."""
  if isinstance(rng, int):
    rng = jax.random.PRNGKey(rng)
  return nn.meta.unbox(jax.jit(_boxed_init, static_argnums=0)(config, rng))


@functools.lru_cache(maxsize=32)
def _abstract(config: T5Config):
  return jax.eval_shape(functools.partial(_boxed_init, config), jax.random.PRNGKey(0))


def param_shapes(config: T5Config) -> dict[str, tuple[int, ...]]:
  """Expected shape of every parameter by '/'-joined name, without allocating anything."""
  return {k: tuple(v.shape) for k, v in flatten(nn.meta.unbox(_abstract(config))).items()}


def logical_axes(config: T5Config) -> Params:
  """PartitionSpec of logical axis names for each parameter (mapped to a mesh by the trainer)."""
  return nn.get_partition_spec(_abstract(config))


FROZEN_DTYPES = ("float32", "bfloat16")


def cast_params(params: Params, dtype: str) -> Params:
  """Every floating parameter as `dtype` ('float32' returns `params` itself).

  Why: bfloat16 frozen weights halve what each device holds for the frozen model (docs/scale.md);
  the layers cast each weight to the activation dtype (T5Config.dtype) where it is used, so
  activations, the prompt, its gradient and the optimizer state stay float32.
  """
  if dtype not in FROZEN_DTYPES:
    raise ConfigError(f"unknown frozen dtype {dtype!r}; use one of {', '.join(FROZEN_DTYPES)}")
  if dtype == "float32":
    return params
  target = jnp.dtype(dtype)
  return jax.tree.map(lambda x: x.astype(target) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                      params)


def flatten(params: Mapping) -> dict[str, Any]:
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")


def unflatten(flat: Mapping[str, Any]) -> Params:
  return flax.traverse_util.unflatten_dict(dict(flat), sep="/")


def check_params(flat: Mapping[str, Any], config: T5Config, source: str = "checkpoint") -> None:
  """Raises CheckpointError naming missing, unexpected and mis-shaped parameters."""
  expected = param_shapes(config)
  missing = sorted(set(expected) - set(flat))
  unexpected = sorted(set(flat) - set(expected))
  misshaped = [f"{k} {tuple(np.shape(flat[k]))} != {expected[k]}"
               for k in sorted(set(expected) & set(flat)) if tuple(np.shape(flat[k])) != expected[k]]
  problems = []
  for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
    if items:
      shown = ", ".join(items[:4]) + (f" (+{len(items) - 4} more)" if len(items) > 4 else "")
      problems.append(f"{len(items)} {label}: {shown}")
  if problems:
    raise CheckpointError(f"{source} does not fit model config {config.name!r}: {'; '.join(problems)}. "
                          "Pick the model config the checkpoint was trained with.")
