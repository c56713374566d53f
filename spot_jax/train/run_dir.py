"""A run's MODEL_DIR: who it belongs to (run.json) and who may write it (a lock).

A run's identity is what makes its checkpoints and exports mean something: the task, the frozen
model (name and parameter checksum), the trainable tree's shape, and the settings that change
which examples a step sees (seed, batch size, feature lengths, packing). Resuming a MODEL_DIR
with a different identity would silently continue another run, so it is refused, naming each
difference; `overwrite` starts the directory afresh instead. Settings a resume may change on
purpose (the learning rate after a divergence, more steps, other periods) are not part of it.

One process writes a MODEL_DIR at a time: `WriterLock` holds an exclusive `flock` on
MODEL_DIR/.lock for the run's lifetime. The kernel drops it when the process dies (kill -9
included), so a stale lock never blocks a resume.
"""

from __future__ import annotations

import fcntl
import json
import os
from typing import Any, Mapping, Optional

from etils import epath

from spot_jax.errors import SpotError
from spot_jax.io import atomic_write

IDENTITY_FILE = "run.json"
LOCK_FILE = ".lock"
# What a run writes into MODEL_DIR; `overwrite` removes exactly these.
RUN_OUTPUTS = ("checkpoints", "exports", "tensorboard", "metrics.jsonl", "config.gin",
               "operative_config.gin", IDENTITY_FILE)


class RunMismatchError(SpotError):
  """MODEL_DIR holds another run."""


class LockedError(SpotError):
  """Another process is writing MODEL_DIR."""


OVERWRITE_HINT = "pass --gin.train.overwrite=True to start afresh"


def read_identity(directory: str | os.PathLike, *, file: str = IDENTITY_FILE,
                  fix: str = OVERWRITE_HINT) -> Optional[dict[str, Any]]:
  path = epath.Path(directory) / file
  if not path.exists():
    return None
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError:
    raise RunMismatchError(f"{path} is not readable JSON; move it aside or {fix}") from None


def differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
  """'key: recorded -> current' for each identity field that changed (JSON-normalised)."""
  norm = lambda v: json.loads(json.dumps(v, sort_keys=True))  # tuples vs lists, int keys
  return [f"{k} {norm(recorded.get(k))!r} -> {norm(current.get(k))!r}"
          for k in sorted(set(recorded) | set(current)) if norm(recorded.get(k)) != norm(current.get(k))]


def check_identity(directory: str | os.PathLike, identity: Mapping[str, Any], *,
                   keys: Optional[set[str]] = None, file: str = IDENTITY_FILE,
                   fix: str = OVERWRITE_HINT) -> None:
  """Refuses a directory whose recorded identity (`file`, default MODEL_DIR's run.json) differs
  from `identity` (in `keys`, default all); `fix` is the message's way out besides a new directory."""
  recorded = read_identity(directory, file=file, fix=fix)
  if recorded is None:
    return
  if keys is not None:
    recorded = {k: v for k, v in recorded.items() if k in keys}
    identity = {k: v for k, v in identity.items() if k in keys}
  changed = differences(recorded, identity)
  if changed:
    raise RunMismatchError(f"{directory} holds another run ({'; '.join(changed)}); use a new "
                           f"directory, or {fix}")


def write_identity(directory: str | os.PathLike, identity: Mapping[str, Any], *,
                   file: str = IDENTITY_FILE) -> None:
  atomic_write(epath.Path(directory) / file,
               json.dumps(dict(identity), indent=2, sort_keys=True) + "\n")


def clear_run(model_dir: str | os.PathLike) -> None:
  """Removes what a run wrote (RUN_OUTPUTS) and nothing else."""
  model_dir = epath.Path(model_dir)
  for name in RUN_OUTPUTS:
    path = model_dir / name
    if path.is_dir():
      path.rmtree()
    elif path.exists():
      path.unlink()


class WriterLock:
  """Exclusive lock on MODEL_DIR/.lock, held from `acquire()` until `release()` or process exit."""

  def __init__(self, model_dir: str | os.PathLike):
    self.path = epath.Path(model_dir) / LOCK_FILE
    self._fd: Optional[int] = None

  def acquire(self) -> "WriterLock":
    if "://" in os.fspath(self.path):  # object stores have no flock; one writer is the user's care
      return self
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
      os.close(fd)
      raise LockedError(f"{self.path.parent} is being written by pid {holder}; wait for it to "
                        "finish or stop it, or use another MODEL_DIR") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self) -> "WriterLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()
