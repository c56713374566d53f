"""Multi-process (multi-host) runs: start jax.distributed; say which process writes shared files.

One run may span several processes (hosts), each driving its own devices; together they form one
global mesh (spot_jax.train.partitioning). `initialize` must run before anything touches a JAX
backend. Where its settings come from, first found wins:
  1. arguments (the CLI's --coordinator_address / --num_processes / --process_id, or the gin macros
     COORDINATOR_ADDRESS / NUM_PROCESSES / PROCESS_ID);
  2. environment: SPOT_JAX_COORDINATOR (host:port), SPOT_JAX_NUM_PROCESSES, SPOT_JAX_PROCESS_ID;
  3. `auto=True` (--distributed auto, or SPOT_JAX_DISTRIBUTED=auto): jax's own cluster detection
     (Cloud TPU pods, SLURM, Open MPI, Kubernetes), which fills in all three.
With none of these the run stays single-process, exactly as before.

On CPU, cross-process collectives go through gloo (jax_cpu_collectives_implementation; the
default of jax 0.10, set explicitly here so an older default cannot leave them unimplemented).

Shared files (metrics.jsonl, TensorBoard events, exports, config.gin, eval/infer outputs) are
written by process 0 alone (`is_writer`); orbax checkpoints are written by every process, orbax
coordinating them itself. Values a writer saves must be on its host: `to_host` gathers an array
that spans other processes' devices.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

import numpy as np

from spot_jax.errors import SpotError

ENV_COORDINATOR = "SPOT_JAX_COORDINATOR"
ENV_NUM_PROCESSES = "SPOT_JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "SPOT_JAX_PROCESS_ID"
ENV_AUTO = "SPOT_JAX_DISTRIBUTED"


@dataclasses.dataclass(frozen=True)
class Settings:
  coordinator_address: Optional[str] = None
  num_processes: Optional[int] = None
  process_id: Optional[int] = None
  auto: bool = False

  @property
  def requested(self) -> bool:
    return self.auto or any(v is not None for v in (self.coordinator_address, self.num_processes,
                                                     self.process_id))


def _env_int(name: str) -> Optional[int]:
  value = os.environ.get(name)
  if value in (None, ""):
    return None
  try:
    return int(value)
  except ValueError:
    raise SpotError(f"{name}={value!r} is not an integer; set it to a whole number") from None


def resolve(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
            process_id: Optional[int] = None, auto: bool = False) -> Settings:
  """The settings from arguments, else the environment (module docstring); checks they agree."""
  settings = Settings(
      coordinator_address=coordinator_address or os.environ.get(ENV_COORDINATOR) or None,
      num_processes=num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES),
      process_id=process_id if process_id is not None else _env_int(ENV_PROCESS_ID),
      auto=auto or os.environ.get(ENV_AUTO, "").lower() == "auto")
  explicit = (settings.coordinator_address, settings.num_processes, settings.process_id)
  if not settings.auto and any(v is not None for v in explicit) and None in explicit:
    raise SpotError("a multi-process run needs all of --coordinator_address, --num_processes and "
                    "--process_id (or SPOT_JAX_COORDINATOR / SPOT_JAX_NUM_PROCESSES / "
                    "SPOT_JAX_PROCESS_ID), or --distributed auto on a TPU pod / SLURM cluster")
  if settings.num_processes is not None and settings.process_id is not None and not (
      0 <= settings.process_id < settings.num_processes):
    raise SpotError(f"process id {settings.process_id} is outside 0..{settings.num_processes - 1}; "
                    "give each process a distinct --process_id below --num_processes")
  return settings


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, auto: bool = False) -> bool:
  """Starts jax.distributed when asked (module docstring); True if this is a multi-process run.

  Call it once, before any JAX computation; a second call with a run already started is a no-op.
  """
  settings = resolve(coordinator_address, num_processes, process_id, auto)
  if not settings.requested:
    return False
  import jax
  if jax.distributed.is_initialized():
    return True
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  try:
    jax.distributed.initialize(coordinator_address=settings.coordinator_address,
                               num_processes=settings.num_processes,
                               process_id=settings.process_id)
  except (RuntimeError, ValueError) as e:
    raise SpotError(f"jax.distributed.initialize failed ({' '.join(str(e).split())[:300]}); "
                    "check that every process got the same --coordinator_address host:port and "
                    "--num_processes, and that it runs before anything else uses JAX") from None
  return True


def process_index() -> int:
  import jax
  return jax.process_index()


def is_writer() -> bool:
  """Whether this process writes shared files (process 0; the only process of a plain run)."""
  return process_index() == 0


def to_host(value: Any) -> np.ndarray:
  """A numpy copy of `value` on this host; an array spread over several processes' devices is
  gathered first (every process must call this together for such an array)."""
  import jax
  if isinstance(value, jax.Array) and not value.is_fully_addressable:
    if value.is_fully_replicated:
      return np.asarray(value.addressable_data(0))
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(value, tiled=True))
  return np.asarray(jax.device_get(value))


def sync(name: str) -> None:
  """All processes wait here for each other (a no-op in a single-process run)."""
  import jax
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)
