"""One Mesh with axes (data, model) and t5x-style logical axis rules.

Parameters name their logical axes where they are created (spot_jax.model.layers); these rules map
them to mesh axes. Batches are split over `data`. Frozen weights may be split over `model`
(vocabulary, MLP and heads axes), which is what lets a large frozen T5 fit. The prompt is small
([P, E]) and every data-parallel replica needs all of it, so it is replicated ('prompt' -> None,
'embed' -> None); splitting its embed axis over `model` is a one-line rule change for very wide
models.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from spot_jax.errors import SpotError
from spot_jax.model.config import T5Config
from spot_jax.model.params import logical_axes

LogicalRules = Sequence[tuple[str, str | None]]

DEFAULT_RULES: LogicalRules = (
    ("batch", "data"),
    ("vocab", "model"),
    ("mlp", "model"),
    ("heads", "model"),
    ("joined_kv", "model"),
    ("embed", None),
    ("relpos_buckets", None),
    ("prompt", None),
)


def make_mesh(data: int = -1, model: int = 1, devices: Optional[Sequence[Any]] = None) -> Mesh:
  """Mesh over `devices` (default: all of jax's); -1 for `data` takes whatever `model` leaves."""
  devices = jax.devices() if devices is None else list(devices)
  n = len(devices)
  if data == -1:
    data = n // model
  if data * model != n or data < 1:
    raise SpotError(f"mesh data={data} x model={model} does not match the {n} devices; "
                    "set train.mesh_data/mesh_model so that their product is the device count")
  return Mesh(np.asarray(devices).reshape(data, model), ("data", "model"))


def param_shardings(config: T5Config, mesh: Mesh, rules: LogicalRules = DEFAULT_RULES) -> Any:
  """NamedSharding for every frozen parameter, from its logical axes."""
  return nn.logical_to_mesh_sharding(logical_axes(config), mesh, list(rules))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec("data"))


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This host's numpy batch -> global arrays split over `data` (multi-host aware)."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
