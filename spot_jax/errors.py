"""Errors a user can cause.

Every error raised because of user input (a bad path, a checkpoint for another model, a wrong shape)
is a `SpotError` whose message is one line naming the fix. The CLI prints it without a traceback and
exits with status 2. `Interrupted` (a run stopped by a signal once its state is saved) exits with
128 + the signal's number, as a shell reports a process the signal ended.
"""

from __future__ import annotations

import errno
import os
import re
from typing import Optional


class SpotError(Exception):
  """Base class of user-facing errors; `str(err)` is a one-line message."""

  exit_code = 2

  def __init__(self, message: str):
    self.message = " ".join(str(message).split())
    super().__init__(self.message)


class ConfigError(SpotError):
  """An unknown model config name or an inconsistent config."""


class CheckpointError(SpotError):
  """A checkpoint that cannot be read or does not fit the model."""


class Interrupted(SpotError):
  """A run stopped on SIGINT/SIGTERM after saving what a rerun resumes from."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum

  @property
  def exit_code(self) -> int:  # a property: gin re-raises errors as proxies of the original
    return 128 + self.signum


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)


def environment_error(error: BaseException) -> Optional[str]:
  """One line for a failure of the machine rather than of spot-jax (a full disk, a file it may not
  write), found anywhere in the exception's chain: orbax, TensorFlow and tensorstore wrap the
  OSError, or keep only its text. None for anything else (a bug, whose traceback is shown)."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    text = " ".join(str(error).split())
    code = getattr(error, "errno", None)
    if code is None and "No space left on device" in text:
      code = errno.ENOSPC
    path = getattr(error, "filename", None) or next(iter(re.findall(r'"(/[^"]+)"', text)), None)
    if code in _DISK_FULL:
      where = f" (writing {path})" if path else ""
      return (f"{os.strerror(code)}{where}; free space and rerun the same command (a run "
              "resumes from its last checkpoint)")
    if code in _NOT_ALLOWED:
      return f"{os.strerror(code)}: {path}"
    error = error.__cause__ or error.__context__
  return None
