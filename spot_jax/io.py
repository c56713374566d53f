"""Write a whole file or directory or nothing: build it under a temporary '.'-name beside its
destination, then rename it into place, so readers never see half of it and a killed writer leaves
only a temporary name behind. Paths go through etils.epath, so gs:// works (there a rename is a
copy). Refusing an existing destination is the caller's decision, in the caller's words: a CLI
says "pass --overwrite", a library says "pass overwrite=True".
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import IO, Iterator, Optional

from etils import epath


def temporary_name(path: epath.Path, what: str = "tmp") -> epath.Path:
  """A fresh '.'-name beside `path`: readers that skip '.'-names never see it."""
  return path.parent / f".{path.name}.{what}-{uuid.uuid4().hex[:8]}"


def is_local(path: str | epath.PathLike) -> bool:
  """Whether `path` is on this machine's file system (memory-mappable), not gs:// or the like."""
  return "://" not in os.fspath(path)


def absolute(path: str | epath.PathLike) -> epath.Path:
  """`path` made absolute if it is local (orbax refuses relative checkpoint paths); a remote path
  (gs://...) as it is."""
  path = epath.Path(path)
  return path.absolute() if is_local(path) else path


@contextlib.contextmanager
def atomic_directory(path: str | epath.PathLike, *, overwrite: bool = False,
                     exists_error: Optional[Exception] = None) -> Iterator[epath.Path]:
  """Yields a fresh temporary directory beside `path` that becomes `path` when the block succeeds.

  An existing `path` is replaced only with `overwrite`; otherwise `exists_error` is raised (the
  caller's message for its user), or FileExistsError. On error the temporary directory is removed
  and an existing `path` is left untouched.
  """
  path = epath.Path(path)
  if path.exists() and not overwrite:
    raise exists_error or FileExistsError(f"{path} already exists")
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = temporary_name(path)
  tmp.mkdir()
  try:
    yield tmp
  except BaseException:
    tmp.rmtree(missing_ok=True)
    raise
  if path.exists():  # overwrite: keep the old copy until the new one is in place
    old = temporary_name(path, "old")
    path.rename(old)
    tmp.rename(path)
    old.rmtree()
  else:
    tmp.rename(path)


@contextlib.contextmanager
def atomic_file(path: str | epath.PathLike) -> Iterator[IO[bytes]]:
  """Yields a binary file open for writing that replaces `path` when the block succeeds; creates
  parents. For data written piece by piece; `atomic_write` writes bytes or text in one go."""
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = temporary_name(path)
  try:
    with tmp.open("wb") as f:
      yield f
    tmp.replace(path)
  except BaseException:
    if tmp.exists():
      tmp.unlink()
    raise


def atomic_write(path: str | epath.PathLike, data: bytes | str) -> epath.Path:
  """Writes `data` (text as UTF-8) to `path` whole or not at all; creates parents."""
  with atomic_file(path) as f:
    f.write(data.encode() if isinstance(data, str) else data)
  return epath.Path(path)
