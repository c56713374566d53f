"""A catalogue of bad input through the `spot-jax` command line, as a user meets it.

Each case must exit 2 with one line on stderr (`spot-jax COMMAND: error: ...` naming the problem),
nothing on stdout, and leave every directory it was pointed at as it was: no new file, no changed
file. The cases run in this process (cli.main); tests/test_quiet.py checks in fresh processes that
the libraries' log lines stay off the terminal.
"""

from __future__ import annotations

import errno
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from spot_jax import cli
from spot_jax.errors import environment_error

TINY_T5X = "tests/fixtures/prompt_tuning/test_data/test_t5_1_1_tiny/checkpoint_3"
TOY_GIN = "tests/train/toy_run.gin"


@pytest.fixture(scope="module")
def world(toy_run, tmp_path_factory):
  """Paths the cases point at: the toy run, a library of it, a file, bad prompt files."""
  root = tmp_path_factory.mktemp("bad_inputs")
  assert cli.main(["library", "add", str(root / "lib"), str(toy_run), "--run", "seed0"]) == 0
  np.save(root / "wide.npy", np.zeros((8, 7), np.float32))
  (root / "text.npy").write_text("not an array")
  (root / "file").write_text("a file, not a directory")
  (root / "empty").mkdir()
  return {"run": toy_run, "root": root}


def _train(*bindings: str) -> list[str]:
  return ["train", "--module", "toy_task", f"--gin_file={TOY_GIN}",
          "--gin.MODEL_DIR='{root}/new_run'", *bindings]


def _gin(command: str, *bindings: str) -> list[str]:
  return [command, "--module", "toy_task", f"--gin_file=runs/{command}.gin",
          "--gin.MIXTURE_OR_TASK_NAME='spot_toy_contains_a'", "--gin.INITIAL_CHECKPOINT_PATH=None",
          "--gin.MODEL_CONFIG='t5_1_1_test'",
          "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 4}",
          "--gin.PROMPT_FILE='{run}/exports/source_prompt.npy'", *bindings]


EMB = "{run}/exports/task_embedding.npy"

# (case, argv with {run} / {root} placeholders, a fragment of the error line)
CASES = [
    # train: every setting is checked before the model loads or MODEL_DIR is created
    ("train task typo", _train("--gin.MIXTURE_OR_TASK_NAME='spot_toy_contains_b'"),
     "did you mean spot_toy_contains_a"),
    ("train missing split", _train("--gin.train.validation_split='dev'"), "has no split 'dev'"),
    ("train zero steps", _train("--gin.train.num_train_steps=0"),
     "num_train_steps must be a positive integer, got 0"),
    ("train steps not a number", _train("--gin.train.num_train_steps='ten'"), "got 'ten'"),
    ("train zero batch", _train("--gin.BATCH_SIZE=0"), "batch_size must be a positive integer"),
    ("train zero eval period", _train("--gin.train.eval_period=0"), "eval_period must be"),
    ("train zero keep", _train("--gin.train.keep_checkpoints=0"), "keep_checkpoints must be"),
    ("train zero prompt length", _train("--gin.PROMPT_LENGTH=0"), "prompt_length must be"),
    ("train infinite learning rate", _train("--gin.adafactor.learning_rate=1e999"),
     "adafactor.learning_rate must be a finite positive number"),
    ("train negative learning rate", _train("--gin.adafactor.learning_rate=-1.0"), "got -1.0"),
    ("train feature lengths", _train("--gin.TASK_FEATURE_LENGTHS={'inputs': 16}"),
     "must map 'inputs' and 'targets'"),
    ("train MODEL_DIR under a file", _train("--gin.MODEL_DIR='{root}/file/run'"),
     "lies under the file"),
    ("train MODEL_DIR is a file", _train("--gin.MODEL_DIR='{root}/file'"), "is a file"),
    ("train unquoted gin string", _train("--gin.MIXTURE_OR_TASK_NAME=spot_toy_contains_a"),
     "quote a string inside the shell quotes"),
    ("train unclosed gin bracket", _train("--gin.train.num_train_steps=("),
     "--gin.train.num_train_steps=( ends inside brackets"),
    ("train unknown gin parameter", _train("--gin.train.no_such=1"),
     "doesn't have a parameter named 'no_such'"),
    ("train missing gin file", _train("--gin_file=no_such.gin"), "cannot read gin file"),
    ("train unknown model", _train("--gin.MODEL_CONFIG='t5_nope'"), "unknown model config"),
    ("train missing checkpoint", _train("--gin.INITIAL_CHECKPOINT_PATH='{root}/none'"),
     "neither a t5x checkpoint"),
    ("train missing task module", ["train", "--module", "no_such_module", f"--gin_file={TOY_GIN}"],
     "cannot import task module 'no_such_module'"),
    ("train mesh larger than the devices", _train("--gin.train.mesh_data=3"),
     "set train.mesh_data/mesh_model"),
    # eval / infer: checked before the model loads
    ("eval task typo", _gin("eval", "--gin.MIXTURE_OR_TASK_NAME='spot_toy_contains_b'"),
     "did you mean spot_toy_contains_a"),
    ("eval missing prompt", _gin("eval", "--gin.PROMPT_FILE='{root}/none.npy'"), "does not exist"),
    ("eval prompt of another model", _gin("eval", "--gin.PROMPT_FILE='{root}/wide.npy'"),
     "has embedding size 7 but model t5_1_1_test has 32"),
    ("eval missing split", _gin("eval", "--gin.evaluate.split='dev'"), "has no split 'dev'"),
    ("eval zero batch", _gin("eval", "--gin.evaluate.batch_size=0"), "batch_size must be"),
    ("eval OUTPUT_DIR under a file", _gin("eval", "--gin.OUTPUT_DIR='{root}/file/out'"),
     "lies under the file"),
    ("infer OUTPUT_FILE under a file", _gin("infer", "--gin.OUTPUT_FILE='{root}/file/p.jsonl'"),
     "lies under the file"),
    ("infer OUTPUT_FILE is a directory", _gin("infer", "--gin.OUTPUT_FILE='{root}'"),
     "is a directory"),
    ("infer --tasks without --out", ["infer", "--tasks", "spot_toy_contains_a"], "needs --out"),
    # export-prompt
    ("export-prompt no checkpoints", ["export-prompt", "{root}/empty", "{root}/p.npy"],
     "has no checkpoints/ directory"),
    ("export-prompt missing step", ["export-prompt", "{run}", "{root}/p.npy", "--step", "7"],
     "no checkpoint at step 7"),
    ("export-prompt negative step", ["export-prompt", "{run}", "{root}/p.npy", "--step", "-1"],
     "argument --step: must be an integer >= 0"),
    ("export-prompt output under a file", ["export-prompt", "{run}", "{root}/file/p.npy"],
     "lies under the file"),
    # retrieve
    ("retrieve negative k", ["retrieve", "{root}/lib", EMB, "-k", "-1"],
     "argument -k: must be a positive integer, got '-1'"),
    ("retrieve zero k", ["retrieve", "{root}/lib", EMB, "-k", "0"], "argument -k"),
    ("retrieve query of another width", ["retrieve", "{root}/lib", "{root}/wide.npy"],
     "has shape (8, 7) but the library's are (8, 32)"),
    ("retrieve missing query", ["retrieve", "{root}/lib", "{root}/none.npy"], "does not exist"),
    ("retrieve query not an array", ["retrieve", "{root}/lib", "{root}/text.npy"],
     "as a .npy array"),
    ("retrieve mix more than ranked", ["retrieve", "{root}/lib", EMB, "--save_prompt",
                                       "{root}/init.npy", "--mix", "9"], "ranks only 1 source"),
    ("retrieve zero mix", ["retrieve", "{root}/lib", EMB, "--mix", "0"], "argument --mix"),
    ("retrieve save under a file", ["retrieve", "{root}/lib", EMB, "--save_prompt",
                                    "{root}/file/init.npy"], "lies under the file"),
    ("retrieve empty library", ["retrieve", "{root}/empty", EMB], "holds no task_embedding"),
    ("retrieve missing run", ["retrieve", "{root}/lib", EMB, "--run", "seed9"],
     "no task embedding of run seed9"),
    # library
    ("library add missing export", ["library", "add", "{root}/lib", "{root}/none.npy"],
     "does not exist"),
    ("library remove missing task", ["library", "remove", "{root}/lib", "nope", "seed0"],
     "has no entry for task 'nope'"),
    ("library list missing library", ["library", "list", "{root}/none"], "no library at"),
    ("library import of another width", ["library", "import-google", "{root}/lib",
                                         "{root}/wide.npy", "--task", "t"], "has shape (8, 7)"),
    ("library export-peft under a file", ["library", "export-peft", "{root}/lib",
                                          "spot_toy_contains_a", "{root}/file/peft",
                                          "--base_model", "x"], "lies under the file"),
    ("library without an action", ["library"], "required: ACTION"),
    # studies: checked before the first run
    ("study repeated seed", ["study", "transfer", "--out", "{root}/study", "--seeds", "0", "0"],
     "without repeats"),
    ("study --seeds given twice", ["study", "transfer", "--out", "{root}/study", "--seeds", "0",
                                   "--seeds", "1"], "--seeds given twice"),
    ("study source steps below embedding step", ["study", "transfer", "--out", "{root}/study",
                                                 "--source_steps", "5"],
     "source_steps 5 is below embedding_step"),
    ("study zero top_k", ["study", "transfer", "--out", "{root}/study", "--top_k", "0"],
     "argument --top_k"),
    ("study unknown source", ["study", "transfer", "--out", "{root}/study", "--sources", "nope"],
     "unknown embedded task(s) nope"),
    ("study out under a file", ["study", "transfer", "--out", "{root}/file/study"],
     "lies under the file"),
    ("crossfit learning rate not a number", ["study", "crossfit", "--out", "{root}/cf",
                                             "--learning_rates", "abc"], "--learning_rates takes"),
    ("crossfit infinite learning rate", ["study", "crossfit", "--out", "{root}/cf",
                                         "--learning_rates", "inf"], "must be a finite positive"),
    ("crossfit zero runs per step", ["study", "crossfit", "--out", "{root}/cf",
                                     "--runs_per_step", "0"], "--runs_per_step takes"),
    ("crossfit unknown target", ["study", "crossfit", "--out", "{root}/cf", "--targets", "nope"],
     "unknown target(s) nope"),
    ("crossfit zero batch", ["study", "crossfit", "--out", "{root}/cf", "--batch_sizes", "0"],
     "argument --batch_sizes"),
    ("crossfit repeated seed", ["study", "crossfit", "--out", "{root}/cf", "--seeds", "13", "13"],
     "seeds must not repeat"),
    ("crossfit out under a file", ["study", "crossfit", "--out", "{root}/file/cf"],
     "lies under the file"),
    ("embed unknown task", ["embed", "nope", "{root}/e.npy"], "unknown embedded task(s) nope"),
    ("embed output under a file", ["embed", "synthetic_nli_cb_v2", "{root}/file/e.npy"],
     "lies under the file"),
    ("embed zero embedding step", ["embed", "synthetic_nli_cb_v2", "{root}/e.npy",
                                   "--embedding_step", "0"], "argument --embedding_step"),
    ("demo unknown target", ["demo", "--out", "{root}/demo", "--target", "nope"],
     "unknown embedded task(s) nope"),
    ("demo out under a file", ["demo", "--out", "{root}/file/demo"], "lies under the file"),
    # the rest
    ("convert into a file's directory", ["convert", "--from", "t5x", "--to", "hf", TINY_T5X,
                                         "{root}/file/hf"], "lies under the file"),
    ("convert an empty directory", ["convert", "--from", "t5x", "--to", "hf", "{root}/empty",
                                    "{root}/hf"], "no 'checkpoint' file"),
    ("dryrun zero devices", ["dryrun", "--devices", "0"], "argument --devices"),
    ("dryrun json under a file", ["dryrun", "--json", "{root}/file/d.json"], "lies under the file"),
    ("tasks unknown family", ["tasks", "--family", "nope"], "no tasks in family 'nope'"),
    ("smoke zero prompt length", ["smoke", "--prompt_length", "0"], "argument --prompt_length"),
    ("smoke missing vocabulary", ["smoke", "--vocab", "{root}/none.model"], "does not exist"),
    ("unknown command", ["trian"], "invalid choice: 'trian'"),
    ("unknown flag", ["retrieve", EMB, "--topk", "3"], "unrecognized arguments: --topk"),
]


def _snapshot(*dirs: pathlib.Path) -> dict[str, int]:
  return {str(p): p.stat().st_mtime_ns for d in dirs for p in d.rglob("*")}


@pytest.mark.parametrize("argv, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(world, argv, fragment, capsys):
  argv = [a.replace("{run}", str(world["run"])).replace("{root}", str(world["root"])) for a in argv]
  before = _snapshot(world["root"], world["run"])
  try:
    code = cli.main(argv)
  except SystemExit as e:  # argparse's usage errors
    code = e.code
  captured = capsys.readouterr()
  lines = captured.err.strip().splitlines()
  assert code == 2 and len(lines) == 1 and not captured.out, captured
  assert lines[0].startswith("spot-jax") and "error: " in lines[0], lines
  assert fragment in lines[0], lines[0]
  assert _snapshot(world["root"], world["run"]) == before


def test_catalogue_has_thirty_or_more_distinct_cases():
  assert len({name for name, *_ in CASES}) == len(CASES) >= 30


# The CLI in a child whose files stop growing at 1 KiB, as on a full disk (EFBIG, not SIGXFSZ).
_LIMITED_CLI = """
import resource, signal, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from spot_jax import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_write_the_machine_refuses_is_one_line_and_leaves_no_partial_file(toy_run, tmp_path):
  # The toy prompt's export (8 x 32 float32 + the .npy header) outgrows the limit.
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  run = subprocess.run([sys.executable, "-c", _LIMITED_CLI, "export-prompt", str(toy_run),
                        str(tmp_path / "out.npy")], env=env, capture_output=True, text=True,
                       timeout=300)
  lines = [l for l in run.stderr.splitlines() if l.strip()]
  assert run.returncode == 2 and lines == [lines[-1]], run.stderr[-3000:]
  assert lines[-1].startswith("spot-jax export-prompt: error: File too large"), lines
  assert not list(tmp_path.iterdir())


def test_environment_errors_are_found_in_the_exception_chain():
  wrapped = ValueError('RESOURCE_EXHAUSTED: Error writing local file "/d/ckpt/x": No space left '
                       "on device [os_error_code='28']")
  assert environment_error(wrapped).startswith("No space left on device (writing /d/ckpt/x)")
  try:
    try:
      raise OSError(errno.EROFS, "Read-only file system", "/ro/file")
    except OSError as e:
      raise RuntimeError("while saving") from e
  except RuntimeError as e:
    assert environment_error(e) == "Read-only file system: /ro/file"
  assert environment_error(KeyError("a bug")) is None
