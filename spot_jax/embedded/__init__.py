"""The shipped embedded default: a tiny T5 1.1 pretrained on the synthetic language
(spot_jax.data.synthetic) and its SentencePiece vocabulary, written by tools/pretrain_embedded.py.

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
