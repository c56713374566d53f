"""Errors a user can cause.

Every error raised because of user input (a bad path, a checkpoint for another model, a wrong shape)
is a `SpotError` whose message is one line naming the fix. The CLI prints it without a traceback and
exits with status 2. `Interrupted` (a run stopped by a signal once its state is saved) exits with
128 + the signal's number, as a shell reports a process the signal ended.
"""


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
    self.exit_code = 128 + signum
