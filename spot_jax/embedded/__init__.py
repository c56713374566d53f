"""The embedded default: a synthetic universe and a tiny T5 1.1 pretrained on it, so spot-jax runs
offline on a CPU. Importing the package is cheap (paths of the shipped files only); the modules:

  language      the seeded lexicon, sentence builders, pretraining corpus, split rule
  generators    how each of the 26 tasks draws one (input, label) pair
  tasks         the task catalog: versioned names, roles, sizes, label words, examples, drills
  seqio_tasks   the tasks and the sources mixture as seqio tasks (`import tasks` registers them)
  protocol      the one embedded tuning protocol, read by the demo/studies and gin_configs/embedded
  pretrain      vocabulary training, span corruption, prefix LM, batches, the pretraining loop
  baselines     trivial baselines, and source / generic-SPoT grids against them
  demo          `spot-jax demo` and `spot-jax study transfer` on the shipped model

The shipped model files, written by spot_jax.embedded.pretrain (tools/pretrain_embedded.py):
  spot_jax/embedded/model/config.json, model.safetensors   HF layout, exact spot-jax config inside
  spot_jax/embedded/sentencepiece.model                     pad 0, EOS 1, UNK 2 (T5's ids)
  spot_jax/embedded/pretrain.json                           command, steps, losses, wall time
"""

from __future__ import annotations

import json
import pathlib

from spot_jax.errors import SpotError

ROOT = pathlib.Path(__file__).resolve().parent
MODEL_DIR = ROOT / "model"
VOCABULARY = ROOT / "sentencepiece.model"
RECORD = ROOT / "pretrain.json"
MODEL_CONFIG = "t5_1_1_embedded"
EXTRA_IDS = 100
# How a library identity names this vocabulary (ModelIdentity.vocabulary).
VOCABULARY_ID = "spot_jax/embedded"


def _require(path: pathlib.Path) -> pathlib.Path:
  if not path.exists():
    raise SpotError(f"the embedded model is missing {path}; reinstall spot-jax or rebuild it with "
                    "`python tools/pretrain_embedded.py`")
  return path


def model_dir() -> pathlib.Path:
  return _require(MODEL_DIR / "model.safetensors").parent


def vocabulary_path() -> pathlib.Path:
  return _require(VOCABULARY)


def record() -> dict:
  """What tools/pretrain_embedded.py recorded: command, steps, final losses, wall time."""
  return json.loads(_require(RECORD).read_text())
