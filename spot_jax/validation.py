"""Checks of a command's settings and paths, made before anything is loaded or written.

A run that fails here leaves MODEL_DIR (and every other output) as it was: the trainer, `eval`,
`infer`, the studies and the CLI's file outputs call these first, then create directories. Each
check raises a SpotError whose one line names the setting and the fix. The checks are cheap: no model is loaded and no data is read
(a seqio task's split names come from its data source's metadata).
"""

from __future__ import annotations

import difflib
import math
import os
from typing import Any, Mapping, Optional, Sequence

from etils import epath

from spot_jax.errors import SpotError


def task_names() -> list[str]:
  """Every registered seqio task and mixture name."""
  import seqio
  return sorted(set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))


def resolve_task(name: str, *, setting: str = "MIXTURE_OR_TASK_NAME") -> Any:
  """The seqio task or mixture `name`; an unknown name fails with the closest registered names."""
  import seqio
  from spot_jax.data.autograph import skip_seqio_autograph
  skip_seqio_autograph()
  if not isinstance(name, str) or not name:
    raise SpotError(f"{setting} must be a seqio task or mixture name, got {name!r}")
  try:
    return seqio.get_mixture_or_task(name)
  except ValueError:
    pass
  close = difflib.get_close_matches(name, task_names(), n=3, cutoff=0.6)
  hint = f"did you mean {', '.join(close)}? " if close else ""
  raise SpotError(f"no seqio task or mixture named {name!r} ({setting}); {hint}list them with "
                  "`spot-jax tasks`, or import the module that registers it with --module")


def _splits(task: Any) -> Optional[Sequence[str]]:
  """The split names a task's source declares, or None where they cannot be read without data."""
  try:
    return list(task.splits)
  except Exception:  # a TFDS source whose dataset_info is not on this machine: decided at read time
    return None


def check_split(task: Any, split: str, *, setting: str) -> None:
  """`split` must exist in the task (in every task of a mixture)."""
  import seqio
  tasks = task.tasks if isinstance(task, seqio.Mixture) else [task]
  for t in tasks:
    splits = _splits(t)
    if splits is not None and split not in splits:
      raise SpotError(f"task {t.name} has no split {split!r} ({setting}); it has "
                      f"{', '.join(sorted(splits))}")


def check_positive(settings: Mapping[str, Any]) -> None:
  """Each value must be an integer ≥ 1 (steps, periods, batch sizes, lengths)."""
  for name, value in settings.items():
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise SpotError(f"{name} must be a positive integer, got {value!r}")


def check_optional_positive(settings: Mapping[str, Any]) -> None:
  """As check_positive, where None means "not set"."""
  check_positive({k: v for k, v in settings.items() if v is not None})


def check_feature_lengths(lengths: Mapping[str, Any], *, setting: str = "feature_lengths") -> None:
  if not isinstance(lengths, Mapping) or not {"inputs", "targets"} <= set(lengths):
    raise SpotError(f"{setting} must map 'inputs' and 'targets' to lengths, got {lengths!r}")
  check_positive({f"{setting}[{k!r}]": v for k, v in lengths.items()})


def check_divides(batch_size: int, data_axis: int, *, setting: str = "batch_size") -> None:
  """A global batch is split evenly over the mesh's data axis."""
  if batch_size % data_axis:
    raise SpotError(f"{setting} {batch_size} does not split over the {data_axis} data-parallel "
                    f"devices; use a multiple of {data_axis} or set train.mesh_data/mesh_model")


def check_finite(settings: Mapping[str, Any]) -> None:
  """Each value must be a finite positive number (learning rates)."""
  for name, value in settings.items():
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
      raise SpotError(f"{name} must be a finite positive number, got {value!r}")


def _local_path(path: str | os.PathLike, setting: str, what: str) -> Optional[epath.Path]:
  """`path` made absolute; None for a remote path (gs://...), which is left to the first write."""
  text = os.fspath(path)
  if not text:
    raise SpotError(f"{setting} is empty; give {what}")
  return None if "://" in text else epath.Path(text).absolute()


def _check_creatable(p: epath.Path, text: str, setting: str) -> None:
  """`p` exists as a directory, or its nearest existing ancestor is a writable directory."""
  existing = p
  while not existing.exists():
    existing = existing.parent
  if not existing.is_dir():
    raise SpotError(f"{setting} {text} lies under the file {existing}; give a path in a directory")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise SpotError(f"{setting} {text}: {existing} is not writable")


def check_writable_dir(path: str | os.PathLike, *, setting: str) -> None:
  """`path` is, or can be created as, a directory this process may write into.

  Only local paths are checked; a remote one (gs://...) is left to the first write.
  """
  text, p = os.fspath(path), _local_path(path, setting, "a directory")
  if p is None:
    return
  if p.exists() and not p.is_dir():
    raise SpotError(f"{setting} {text} is a file; give a directory")
  _check_creatable(p, text, setting)


def check_writable_file(path: str | os.PathLike, *, setting: str) -> None:
  """`path` can be written as a file: not a directory, its parent a (creatable) directory."""
  text, p = os.fspath(path), _local_path(path, setting, "a file name")
  if p is None:
    return
  if p.is_dir():
    raise SpotError(f"{setting} {text} is a directory; give a file name")
  _check_creatable(p.parent, text, setting)
