"""One place that keeps TensorFlow, XLA, absl, JAX, gin and seqio log lines off a `spot-jax` run.

The CLI prints its own lines ("spot-jax ...", progress bars, "  tuned ..."); without `--verbose`
nothing else should reach the terminal. The noise comes from four places, each needing its own
knob, and all of them must be set before TensorFlow or JAX is first imported:

  C++ logs at TensorFlow import  static initialisers of libtensorflow_framework.so and of the
                                 profiler plugin log "oneDNN custom operations are on" and "Could
                                 not find cuda drivers" (plus absl's "All log messages before
                                 absl::InitializeLog()" banner) straight to file descriptor 2,
                                 before any level is read: TF_CPP_MIN_LOG_LEVEL does not stop them.
                                 `import tensorflow` itself runs with fd 2 pointed at a temporary
                                 file (replayed if the import fails).
  C++ logs at run time           TensorFlow's "failed call to cuInit", XLA's compiler notices: they
                                 honour TF_CPP_MIN_LOG_LEVEL=3 (JAX would set 1 otherwise).
  Python logging                 absl.logging from seqio ("Using an uncached FunctionDataset..."),
                                 tensorflow_datasets ("Variant folder ... has no dataset_info.json"),
                                 orbax and jax, and gin's root-logger "Path not found" errors while it
                                 searches include paths. A root handler passes only records logged
                                 by spot_jax/ or tasks/ (printed as "spot-jax: ...") and CRITICAL.
  Python warnings                DeprecationWarning / UserWarning that TensorFlow, seqio and their
                                 dependencies raise at import: ignored unless raised for our code.

`configure(verbose=True)` changes nothing: the libraries log as they would without spot-jax.
A value the user set in the environment (e.g. TF_CPP_MIN_LOG_LEVEL=0) is kept.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import pathlib
import sys
import tempfile
import warnings
from typing import Iterator

# Read by TensorFlow's and XLA's C++ logging when they start: 3 hides INFO, WARNING and ERROR.
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3"}
# Top-level modules whose import writes C++ log lines to fd 2 before any level applies.
SILENT_IMPORTS = ("tensorflow",)
# Logger names and source directories whose records are ours (tasks/ logs through the root logger).
_OUR_LOGGERS = ("spot_jax", "tasks")
_OUR_DIRS = tuple(str(pathlib.Path(__file__).resolve().parents[1] / d) + os.sep
                  for d in ("spot_jax", "tasks"))
_OUR_MODULES = r"(spot_jax|tasks)(\..*)?$"

_configured = False


def configure(verbose: bool = False) -> None:
  """Quiets the libraries for the rest of the process unless `verbose`; call before importing
  TensorFlow or JAX. Idempotent: a second call (e.g. cli.main run twice in one process) adds
  nothing."""
  global _configured
  if verbose or _configured:
    return
  _configured = True
  for name, value in QUIET_ENVIRONMENT.items():
    os.environ.setdefault(name, value)
  if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == QUIET_ENVIRONMENT["TF_CPP_MIN_LOG_LEVEL"]:
    sys.meta_path.insert(0, _SilentImportFinder(SILENT_IMPORTS))
  root = logging.getLogger()
  root.addHandler(_OursHandler())  # also keeps logging.basicConfig (called by libraries) a no-op
  warnings.filterwarnings("ignore")
  warnings.filterwarnings("default", module=_OUR_MODULES)  # inserted first: checked first


def _is_ours(record: logging.LogRecord) -> bool:
  if record.name.split(".")[0] in _OUR_LOGGERS:
    return True
  return record.name == "root" and os.path.abspath(record.pathname).startswith(_OUR_DIRS)


class _OursHandler(logging.Handler):
  """Prints our records (WARNING and up) as "spot-jax: ..." on the current sys.stderr (looked up
  at each record, so it follows pytest's capture); drops the libraries' records below CRITICAL
  and prints their CRITICAL ones as "spot-jax: critical: [logger name] ..."."""

  def __init__(self):
    super().__init__(logging.WARNING)
    self.addFilter(lambda r: _is_ours(r) or r.levelno >= logging.CRITICAL)

  def emit(self, record: logging.LogRecord) -> None:
    try:
      level = "" if record.levelno == logging.WARNING else f"{record.levelname.lower()}: "
      origin = "" if _is_ours(record) else f"[{record.name}] "
      print(f"spot-jax: {level}{origin}{record.getMessage()}", file=sys.stderr, flush=True)
    except Exception:  # noqa: BLE001  logging must never raise into the caller
      self.handleError(record)


@contextlib.contextmanager
def _fd2_to_tempfile() -> Iterator[None]:
  """Points file descriptor 2 at a temporary file; replays what it caught if the body raises."""
  sys.stderr.flush()
  try:
    saved = os.dup(2)
  except OSError:  # no fd 2 (a daemon): nothing to keep clean
    yield
    return
  with tempfile.TemporaryFile() as sink:
    os.dup2(sink.fileno(), 2)
    try:
      yield
    except BaseException:
      sys.stderr.flush()
      os.dup2(saved, 2)
      sink.seek(0)
      os.write(2, sink.read())
      raise
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)


class _SilentLoader(importlib.abc.Loader):
  """Runs the wrapped loader's module code with fd 2 silenced; otherwise the loader itself."""

  def __init__(self, loader):
    self._loader = loader

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module) -> None:
    try:
      with _fd2_to_tempfile():
        self._loader.exec_module(module)
    finally:  # from here on the module looks as if imported normally
      module.__loader__ = self._loader
      if getattr(module, "__spec__", None) is not None:
        module.__spec__.loader = self._loader

  def __getattr__(self, name):
    return getattr(self._loader, name)


class _SilentImportFinder(importlib.abc.MetaPathFinder):
  """Finds the named top-level modules the normal way and wraps their loader in _SilentLoader."""

  def __init__(self, names: tuple[str, ...]):
    self._names = frozenset(names)
    self._finding = False

  def find_spec(self, fullname, path=None, target=None):
    if fullname not in self._names or self._finding:
      return None
    self._finding = True
    try:
      spec = importlib.util.find_spec(fullname)  # the other finders (this one answers None now)
    finally:
      self._finding = False
    if spec is None or spec.loader is None:
      return None
    spec.loader = _SilentLoader(spec.loader)
    return spec
