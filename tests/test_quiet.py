"""`spot-jax` prints only its own lines on stderr; --verbose lets the libraries' log lines through.

Each test runs the CLI in a fresh process, as a user does: the noise comes at TensorFlow's first
import (C++ lines written straight to fd 2) and from the libraries' Python loggers and warnings.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import textwrap


REPO = pathlib.Path(__file__).resolve().parents[1]
# Our own stderr: "spot-jax ..." lines, the study's "  tuned ..." lines, tqdm bars, validation lines.
OURS = re.compile(r"spot-jax[ :]|  tuned |(train|grid):|step \d+: validation score ")
# A module that logs like a third-party library, imported with `train --module`: an absl warning,
# a library logger's error, a Python warning, and one jax computation (the backend starts).
NOISY_MODULE = """
import logging
import warnings
from absl import logging as absl_logging
import jax.numpy as jnp
jnp.ones(2).sum().block_until_ready()
absl_logging.warning("noisy absl warning")
logging.getLogger("noisy_lib").error("noisy library error")
warnings.warn("noisy python warning", UserWarning)
"""
# A train command that imports TensorFlow, seqio and the task catalog, then fails on user input.
TRAIN_ERROR = ["train", "--module", "noisy_lib", "--gin_file=runs/prompt_finetune.gin",
               "--gin_file=prompts/uniform.gin", "--gin.MIXTURE_OR_TASK_NAME='x'"]


def _run(tmp_path: pathlib.Path, *args: str, code: str | None = None) -> subprocess.CompletedProcess:
  (tmp_path / "noisy_lib.py").write_text(NOISY_MODULE)
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell
  env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(tmp_path)])
  cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "spot_jax.cli", *args]
  return subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def _lines(stderr: str) -> list[str]:
  return [line for line in re.split(r"[\r\n]", stderr) if line.strip()]


def _not_ours(stderr: str) -> list[str]:
  return [line for line in _lines(stderr) if not OURS.match(line)]


def test_a_user_error_is_the_only_line(tmp_path):
  run = _run(tmp_path, *TRAIN_ERROR)
  assert run.returncode == 2 and not _not_ours(run.stderr), run.stderr[-3000:]
  lines = _lines(run.stderr)
  assert len(lines) == 1 and lines[0].startswith(
      "spot-jax train: error: missing required gin bindings MODEL_CONFIG"), lines


def test_verbose_lets_the_library_logs_through(tmp_path):
  run = _run(tmp_path, "--verbose", *TRAIN_ERROR)
  assert run.returncode == 2, run.stderr[-3000:]
  for noise in ("noisy absl warning", "noisy library error", "UserWarning: noisy python warning"):
    assert noise in run.stderr, run.stderr[-3000:]
  assert _lines(run.stderr)[-1].startswith("spot-jax train: error: missing required gin")


def test_version_and_help_print_nothing_on_stderr(tmp_path):
  for args in (["version"], ["demo", "--help"]):
    run = _run(tmp_path, *args)
    assert run.returncode == 0 and run.stdout and run.stderr == "", (args, run.stderr[-3000:])


def test_our_log_records_print_as_ours_and_library_records_are_dropped(tmp_path):
  code = textwrap.dedent("""
      import logging, warnings
      from spot_jax import logs
      logs.configure()
      logs.configure()  # idempotent: one handler, one line per record
      logging.getLogger("spot_jax.study").warning("ours")
      logging.getLogger("tasks.spot_lists").error("ours too")
      logging.getLogger("absl").warning("absl noise")
      logging.getLogger("orbax").error("orbax noise")
      logging.error("gin-style root noise")  # from this file, not from spot_jax/ or tasks/
      logging.getLogger("jax").critical("a library's critical record")
      warnings.warn("library warning", UserWarning)
      """)
  run = _run(tmp_path, code=code)
  assert run.returncode == 0, run.stderr
  assert _lines(run.stderr) == ["spot-jax: ours", "spot-jax: error: ours too",
                                "spot-jax: critical: [jax] a library's critical record"]
