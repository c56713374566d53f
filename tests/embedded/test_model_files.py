"""The shipped embedded model files: the checkpoint loads, matches its recorded config, speaks the
synthetic language, and trains a prompt through the gin configs within seconds."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import sentencepiece as spm

from spot_jax import embedded
from spot_jax.checkpoints import load_checkpoint
from spot_jax.embedded import tasks as synthetic_tasks
from spot_jax.model.config import get_config
from spot_jax.model.params import check_params, flatten


def test_shipped_checkpoint_matches_its_recorded_config():
  config, params = load_checkpoint(embedded.model_dir())
  record = embedded.record()
  assert config == get_config(embedded.MODEL_CONFIG) == get_config(record["model_config"])
  flat = flatten(params)
  check_params(flat, config)
  assert sum(np.asarray(x).size for x in flat.values()) == record["num_params"]
  assert record["final"]["eval_loss"] < record["history"][0]["eval_loss"]
  size = sum(f.stat().st_size for f in embedded.ROOT.rglob("*") if f.is_file())
  assert size < 30e6


def test_vocabulary_covers_every_task_and_fits_the_model():
  sp = spm.SentencePieceProcessor(model_file=str(embedded.vocabulary_path()))
  assert (sp.pad_id(), sp.eos_id(), sp.unk_id()) == (0, 1, 2)
  assert sp.get_piece_size() + embedded.EXTRA_IDS <= get_config(embedded.MODEL_CONFIG).vocab_size
  for name in synthetic_tasks.TASKS:
    for ex in synthetic_tasks.examples(name, "validation", limit=20):
      ids = sp.encode(ex["inputs"] + " " + ex["targets"])
      assert sp.unk_id() not in ids, (name, ex)


def test_one_prompt_tuning_step_from_the_cli_is_fast(tmp_path):
  """The whole user path: process start, gin, shipped model, seqio task, compile, one step."""
  start = time.perf_counter()
  proc = subprocess.run(
      [sys.executable, "-m", "spot_jax.cli", "train", "--gin_file=embedded/source.gin",
       "--gin.MIXTURE_OR_TASK_NAME='synthetic_sent_opinion_v2'", f"--gin.MODEL_DIR='{tmp_path}'",
       "--gin.train.num_train_steps=1", "--gin.train.num_eval_examples=32"],
      capture_output=True, text=True, timeout=300)
  seconds = time.perf_counter() - start
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert seconds < 30, f"load + one step took {seconds:.1f} s"
  lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert any("train/loss" in line for line in lines)
  sidecar = json.loads((tmp_path / "exports" / "final_prompt.json").read_text())
  assert sidecar["model"] == embedded.MODEL_CONFIG and sidecar["prompt_length"] == 20
