"""Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM (a preemption notice, `kill`).

The first signal only sets a flag; the training loop reads it between steps, saves a checkpoint of
the step it finished and exits (errors.Interrupted), so a rerun resumes exactly there. A second
signal stops at once (SIGINT: KeyboardInterrupt; SIGTERM: the default action), and SIGKILL is
never caught: both leave the last periodic checkpoint, from which a rerun resumes as well.

In a multi-process run a signal may reach some processes only, or at different steps; the
processes agree at log steps (one small all-gather), so that all stop after the same step.
"""

from __future__ import annotations

import signal
import threading
from typing import Callable, Optional

import numpy as np

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
  """Context manager: while active, SIGINT/SIGTERM request a stop instead of ending the process.

  Handlers can only be installed from the main thread; elsewhere (a run started from a worker
  thread) the signals keep their default behaviour and no stop is ever requested.
  """

  def __init__(self, say: Callable[[str], None] = print):
    self.say = say
    self.signum: Optional[int] = None
    self._previous: dict[int, object] = {}

  @property
  def name(self) -> str:
    return signal.Signals(self.signum).name if self.signum else ""

  def _handle(self, signum, frame) -> None:
    if self.signum is not None:  # the second signal: stop now
      signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
      if signum == signal.SIGINT:
        raise KeyboardInterrupt
      signal.raise_signal(signum)
      return
    self.signum = signum
    self.say(f"spot-jax: {signal.Signals(signum).name}: stopping after this step once a "
             "checkpoint is saved (send it again to stop at once)")

  def __enter__(self) -> "StopOnSignal":
    if threading.current_thread() is threading.main_thread():
      self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
    return self

  def __exit__(self, *exc) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)

  def agreed(self, step: int, log_period: int) -> bool:
    """Whether every process stops after `step`: at once in a single-process run; in a
    multi-process run at the next log step, if any process got a signal."""
    import jax
    if jax.process_count() == 1:
      return self.signum is not None
    if step % log_period:
      return False
    from jax.experimental import multihost_utils
    signums = multihost_utils.process_allgather(np.int32(self.signum or 0))
    if self.signum is None and signums.any():
      self.signum = int(signums[signums > 0][0])
    return self.signum is not None
