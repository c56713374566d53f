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


def test_killed_and_resumed_run_ends_bit_identical(tmp_path):
  steps = ["--gin.train.num_train_steps=300", "--gin.train.eval_period=150"]
  done = _train_cli(tmp_path / "full", *steps)
  assert done.returncode == 0, done.stderr[-2000:]
  proc = _train_cli(tmp_path / "cut", *steps, wait=False)
  deadline = time.time() + 300
  while not (tmp_path / "cut" / "checkpoints" / "20").exists() and time.time() < deadline:
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (tmp_path / "cut" / "exports" / "final_prompt.npy").exists(), "run was not interrupted"
  resumed = _train_cli(tmp_path / "cut", *steps)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  full, _ = read_export(tmp_path / "full" / "exports" / "final_prompt.npy")
  cut, _ = read_export(tmp_path / "cut" / "exports" / "final_prompt.npy")
  np.testing.assert_array_equal(cut, full)


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


def test_exported_prompt_initialises_another_run_and_bad_shapes_are_refused(tmp_path):
  first = _train_cli(tmp_path / "source")
  assert first.returncode == 0, first.stderr[-2000:]
  source = tmp_path / "source" / "exports" / "source_prompt.npy"
  from_file = ["--gin_file=prompts/from_file.gin", f"--gin.PROMPT_FILE='{source}'"]
  second = _train_cli(tmp_path / "target", *from_file, "--gin.train.num_train_steps=0")
  assert second.returncode == 0, second.stderr[-2000:]
  start, _ = read_export(tmp_path / "target" / "exports" / "final_prompt.npy")
  np.testing.assert_array_equal(start, read_export(source)[0])

  wrong_length = _train_cli(tmp_path / "bad1", *from_file, "--gin.PROMPT_LENGTH=4")
  assert wrong_length.returncode == 2
  assert "8 rows but the prompt length is 4" in wrong_length.stderr
  assert "Traceback" not in wrong_length.stderr
  wide = tmp_path / "wide.npy"
  np.save(wide, np.zeros((8, 768), np.float32))
  wrong_model = _train_cli(tmp_path / "bad2", "--gin_file=prompts/from_file.gin",
                           f"--gin.PROMPT_FILE='{wide}'")
  assert wrong_model.returncode == 2 and "768" in wrong_model.stderr
  assert len(wrong_model.stderr.strip().splitlines()[-1]) > 20


def test_missing_required_binding_names_it_and_where_it_is_set(tmp_path):
  result = _cli("train", "--gin_file=runs/prompt_finetune.gin", "--gin_file=prompts/uniform.gin",
                "--gin.MIXTURE_OR_TASK_NAME='x'", "--gin.INITIAL_CHECKPOINT_PATH=None")
  assert result.returncode == 2
  last = result.stderr.strip().splitlines()[-1]
  assert "MODEL_CONFIG" in last and "models/" in last and "MODEL_DIR" in last
  assert "Traceback" not in result.stderr
