"""Write a whole file or directory or nothing: build it under a temporary name, then rename it into
place, so readers never see half of it."""

from __future__ import annotations

import contextlib
import uuid
from typing import Iterator

from etils import epath

from spot_jax.errors import CheckpointError


@contextlib.contextmanager
def atomic_directory(path: str | epath.PathLike, *, overwrite: bool = False) -> Iterator[epath.Path]:
  """Yields a fresh temporary directory beside `path` that becomes `path` when the block succeeds.

  On error the temporary directory is removed and an existing `path` is left untouched.
  """
  path = epath.Path(path)
  if path.exists() and not overwrite:
    raise CheckpointError(f"{path} already exists; choose another destination or pass --overwrite")
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
  tmp.mkdir()
  try:
    yield tmp
  except BaseException:
    tmp.rmtree(missing_ok=True)
    raise
  if path.exists():  # overwrite: keep the old copy until the new one is in place
    old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
    path.rename(old)
    tmp.rename(path)
    old.rmtree()
  else:
    tmp.rename(path)


def atomic_write(path: str | epath.PathLike, data: bytes | str) -> epath.Path:
  """Writes `data` to a temporary file beside `path` and renames it into place; creates parents."""
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
  try:
    if isinstance(data, str):
      tmp.write_text(data)
    else:
      tmp.write_bytes(data)
    tmp.replace(path)
  except BaseException:
    if tmp.exists():
      tmp.unlink()
    raise
  return path
