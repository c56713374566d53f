"""End-to-end prompt tuning on the toy seqio task: learning, exports, resume, devices, transfer."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import toy_task
from spot_jax.model import get_config, init_params
from spot_jax.peft import SampledVocabInit
from spot_jax.train.exports import params_checksum, read_export
from spot_jax.train.optim import adafactor
from spot_jax.train.trainer import train

TESTS = pathlib.Path(__file__).resolve().parents[1]
TOY_GIN = str(TESTS / "train" / "toy_run.gin")


def _cli(*args: str, devices: int = 1, wait: bool = True):
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
         "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"}
  cmd = [sys.executable, "-m", "spot_jax.cli", *args]
  if not wait:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _train_cli(model_dir, *bindings: str, devices: int = 1, wait: bool = True):
  return _cli("train", "--module", "toy_task", f"--gin_file={TOY_GIN}",
              f"--gin.MODEL_DIR='{model_dir}'", *bindings, devices=devices, wait=wait)


def _losses(model_dir) -> dict[int, float]:
  rows = [json.loads(l) for l in (pathlib.Path(model_dir) / "metrics.jsonl").read_text().splitlines()]
  return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def test_training_lowers_the_loss_and_beats_the_initial_prompt(tmp_path):
  config = get_config("t5_1_1_test")
  result = train(model_dir=str(tmp_path), mixture_or_task_name=toy_task.TASK,
                 feature_lengths=toy_task.FEATURE_LENGTHS, model_config=config, vocabulary="byte",
                 prompt_length=20, prompt_initializer=SampledVocabInit(vocab_limit=200),
                 optimizer=adafactor(learning_rate=0.3), batch_size=16, num_train_steps=300,
                 eval_period=100, task_embedding_step=50, log_period=10, progress=False)
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  scores = {r["step"]: r["validation/score"] for r in rows if "validation/score" in r}
  losses = [r["train/loss"] for r in rows if "train/loss" in r]
  assert np.mean(losses[-5:]) < losses[0] - 0.5, losses
  assert scores[0] == 0.0  # the random prompt decodes neither "yes" nor "no"
  assert result.best_score > scores[0] + 20, scores  # accuracy in percent
  source, meta = read_export(result.exports / "source_prompt.npy")
  assert meta["step"] == result.best_step and meta["score"] == result.best_score
  assert meta["task"] == toy_task.TASK and meta["model"] == "t5_1_1_test"
  assert source.shape == (20, config.emb_dim) and meta["prompt_length"] == 20
  # The frozen model the run used is bit-identical to a fresh initialisation with the same seed.
  assert meta["frozen_checksum"] == params_checksum(init_params(config.replace(dropout_rate=0.1), 0))
  embedding, emb_meta = read_export(result.exports / "task_embedding.npy")
  assert emb_meta["step"] == 50 and not np.array_equal(embedding, source)
  assert (tmp_path / "tensorboard").exists() and any((tmp_path / "tensorboard").iterdir())


def _start_and_wait_for(model_dir, checkpoint: int, steps):
  """Starts a train run and returns the process once checkpoint `checkpoint` is committed."""
  proc = _train_cli(model_dir, *steps, wait=False)
  deadline = time.time() + 300
  while not (model_dir / "checkpoints" / str(checkpoint)).exists() and time.time() < deadline:
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    time.sleep(0.02)
  return proc


def test_stopped_and_killed_run_resumes_bit_identical(tmp_path):
  steps = ["--gin.train.num_train_steps=300", "--gin.train.eval_period=150",
           "--gin.train.checkpoint_period=20"]
  done = _train_cli(tmp_path / "full", *steps)
  assert done.returncode == 0, done.stderr[-2000:]
  cut = tmp_path / "cut"
  # Ctrl-C: the run stops after the current step, saves it as a checkpoint and exits 130.
  proc = _start_and_wait_for(cut, 20, steps)
  proc.send_signal(signal.SIGINT)
  err = proc.stderr.read().decode()
  assert proc.wait() == 130, err[-2000:]
  last = err.strip().splitlines()[-1]
  assert last.startswith("spot-jax train: stopped by SIGINT at step ") and "rerun" in last, err
  stopped = int(last.split("at step ")[1].split()[0])
  assert (cut / "checkpoints" / str(stopped)).exists() and stopped < 300
  assert not (cut / "exports" / "final_prompt.npy").exists()
  # kill -9 after the next periodic checkpoint: the rerun resumes from that one.
  proc = _start_and_wait_for(cut, (stopped // 20 + 1) * 20, steps)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (cut / "exports" / "final_prompt.npy").exists(), "run was not interrupted"
  resumed = _train_cli(cut, *steps)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  full, _ = read_export(tmp_path / "full" / "exports" / "final_prompt.npy")
  np.testing.assert_array_equal(read_export(cut / "exports" / "final_prompt.npy")[0], full)
  # The steps replayed after a restored checkpoint are logged once, with the same losses.
  assert _losses(cut) == _losses(tmp_path / "full")
  rows = [json.loads(l) for l in (cut / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if "train/loss" in r] == list(range(1, 301))


def test_one_and_eight_devices_give_the_same_loss_curve(tmp_path):
  one = _train_cli(tmp_path / "one")
  assert one.returncode == 0, one.stderr[-2000:]
  # 8 fake CPU devices: batch split 4 ways over `data`, frozen weights split 2 ways over `model`.
  eight = _train_cli(tmp_path / "eight", "--gin.train.mesh_data=4", "--gin.train.mesh_model=2",
                     devices=8)
  assert eight.returncode == 0, eight.stderr[-2000:]
  a, b = _losses(tmp_path / "one"), _losses(tmp_path / "eight")
  assert sorted(a) == sorted(b) == list(range(1, 31))
  np.testing.assert_allclose([b[s] for s in sorted(b)], [a[s] for s in sorted(a)], atol=1e-5)


def test_run_directory_holds_configs_exports_and_checkpoints(toy_run):
  assert "train.prompt_length = %PROMPT_LENGTH" in (toy_run / "config.gin").read_text()
  assert "adafactor.learning_rate = 0.3" in (toy_run / "operative_config.gin").read_text()
  for kind in ("source_prompt", "task_embedding", "final_prompt"):
    prompt, meta = read_export(toy_run / "exports" / f"{kind}.npy")
    assert prompt.shape == (8, 32) and meta["kind"] == kind and meta["vocabulary"] == "byte"
  assert sorted(int(p.name) for p in (toy_run / "checkpoints").iterdir() if p.name.isdigit()) == [10, 20, 30]


def _gin_cli(command: str, run_dir, *bindings: str) -> int:
  from spot_jax import cli
  return cli.main([command, "--module", "toy_task", f"--gin_file=runs/{command}.gin",
                   "--gin.MIXTURE_OR_TASK_NAME='spot_toy_contains_a'",
                   "--gin.INITIAL_CHECKPOINT_PATH=None", "--gin.MODEL_CONFIG='t5_1_1_test'",
                   f"--gin.PROMPT_FILE='{run_dir / 'exports' / 'source_prompt.npy'}'",
                   "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 4}", *bindings])


def test_eval_infer_and_export_prompt_commands(toy_run, tmp_path, capsys):
  from spot_jax import cli
  _, meta = read_export(toy_run / "exports" / "source_prompt.npy")
  assert _gin_cli("eval", toy_run, f"--gin.OUTPUT_DIR='{tmp_path}'") == 0
  result = json.loads((tmp_path / "eval_validation.json").read_text())
  # The same prompt and frozen model (seed 0) give the score the trainer recorded.
  assert result["score"] == pytest.approx(meta["score"], abs=1e-9)
  assert _gin_cli("infer", toy_run, f"--gin.OUTPUT_FILE='{tmp_path / 'pred.jsonl'}'") == 0
  records = [json.loads(l) for l in (tmp_path / "pred.jsonl").read_text().splitlines()]
  assert len(records) == toy_task.SPLITS["validation"]
  assert records[0]["inputs"].startswith("w: ") and records[0]["target"] in ("yes", "no")
  accuracy = 100 * np.mean([r["prediction"] == r["target"] for r in records])
  assert accuracy == pytest.approx(result["spot_toy_contains_a"]["accuracy"], abs=1e-9)
  assert cli.main(["export-prompt", str(toy_run), str(tmp_path / "p20.npy"), "--step", "20"]) == 0
  prompt, sidecar = read_export(tmp_path / "p20.npy")
  assert sidecar["step"] == 20 and prompt.shape == (8, 32)
  assert cli.main(["export-prompt", str(toy_run), str(tmp_path / "p.npy"), "--step", "7"]) == 2
  assert "no checkpoint at step 7" in capsys.readouterr().err


def test_exported_prompt_initialises_another_run_and_bad_shapes_are_refused(toy_run, tmp_path,
                                                                            capsys):
  from spot_jax import cli
  source = toy_run / "exports" / "source_prompt.npy"
  base = ["train", "--module", "toy_task", f"--gin_file={TOY_GIN}", "--gin_file=prompts/from_file.gin"]
  # One step at a learning rate too small to move a float32 value: the final prompt is the file's.
  assert cli.main(base + [f"--gin.PROMPT_FILE='{source}'", f"--gin.MODEL_DIR='{tmp_path / 'a'}'",
                          "--gin.train.num_train_steps=1", "--gin.adafactor.learning_rate=1e-30",
                          "--gin.adafactor.weight_decay=None"]) == 0
  start, _ = read_export(tmp_path / "a" / "exports" / "final_prompt.npy")
  np.testing.assert_array_equal(start, read_export(source)[0])

  capsys.readouterr()
  assert cli.main(base + [f"--gin.PROMPT_FILE='{source}'", f"--gin.MODEL_DIR='{tmp_path / 'b'}'",
                          "--gin.PROMPT_LENGTH=4"]) == 2
  err = capsys.readouterr().err.strip().splitlines()[-1]
  assert err.startswith("spot-jax train: error: prompt file") and "8 rows but the prompt length is 4" in err
  wide = tmp_path / "wide.npy"
  np.save(wide, np.zeros((8, 768), np.float32))
  assert cli.main(base + [f"--gin.PROMPT_FILE='{wide}'", f"--gin.MODEL_DIR='{tmp_path / 'c'}'"]) == 2
  err = capsys.readouterr().err.strip().splitlines()[-1]
  assert err.startswith("spot-jax train: error:") and "embedding size 768, this model has 32" in err


def test_missing_required_binding_names_it_and_where_it_is_set(capsys):
  from spot_jax import cli
  assert cli.main(["train", "--gin_file=runs/prompt_finetune.gin", "--gin_file=prompts/uniform.gin",
                   "--gin.MIXTURE_OR_TASK_NAME='x'", "--gin.INITIAL_CHECKPOINT_PATH=None"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1
  assert "MODEL_CONFIG" in err and "models/" in err and "MODEL_DIR" in err


def _toy_cli(model_dir, *bindings: str) -> int:
  from spot_jax import cli
  return cli.main(["train", "--module", "toy_task", f"--gin_file={TOY_GIN}",
                   f"--gin.MODEL_DIR='{model_dir}'", *bindings])


def _last_error(capsys) -> str:
  err = capsys.readouterr().err.strip().splitlines()
  assert err, "no error line"
  return err[-1]


def test_resuming_another_run_or_a_locked_one_is_refused_and_changes_nothing(toy_run, capsys):
  from spot_jax.train import run_dir
  def snapshot():  # .lock is excluded: this test's own lock writes its pid there
    return {p: p.stat().st_mtime_ns for p in toy_run.rglob("*") if p.name != run_dir.LOCK_FILE}
  before = snapshot()
  assert _toy_cli(toy_run, "--gin.PROMPT_LENGTH=4") == 2
  assert "holds another run (prompt_length 8 -> 4)" in _last_error(capsys)
  assert _toy_cli(toy_run, "--gin.MODEL_CONFIG='t5_1_1_test'", "--gin.SEED=1") == 2
  err = _last_error(capsys)
  assert "seed 0 -> 1" in err and "overwrite" in err
  with run_dir.WriterLock(toy_run):
    assert _toy_cli(toy_run) == 2
    assert "is being written by pid" in _last_error(capsys)
  assert snapshot() == before


def test_a_diverged_run_keeps_its_last_finite_checkpoint_and_recovers(toy_run, tmp_path, capsys):
  model_dir = tmp_path / "run"
  assert _toy_cli(model_dir, "--gin.train.num_train_steps=10") == 0
  assert _toy_cli(model_dir, "--gin.adafactor.learning_rate=3e38") == 2
  err = _last_error(capsys)
  assert "training diverged" in err and "the last checkpoint, step 10, is finite" in err, err
  steps = sorted(int(p.name) for p in (model_dir / "checkpoints").iterdir() if p.name.isdigit())
  assert steps == [10]
  # Rerun with the sane learning rate: it resumes at step 10 and ends where an uninterrupted run
  # ends, with each metrics row once.
  assert _toy_cli(model_dir) == 0
  final, _ = read_export(model_dir / "exports" / "final_prompt.npy")
  np.testing.assert_array_equal(final, read_export(toy_run / "exports" / "final_prompt.npy")[0])
  assert _losses(model_dir) == _losses(toy_run)
  rows = [json.loads(l) for l in (model_dir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if "train/loss" in r] == list(range(1, 31))
