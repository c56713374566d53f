"""Prompt exports: a .npy array plus a JSON sidecar that says where it came from.

  MODEL_DIR/exports/source_prompt.npy   best validation checkpoint  -> source prompt (SPoT)
  MODEL_DIR/exports/source_prompt.json
  MODEL_DIR/exports/task_embedding.npy  prompt after E steps        -> task embedding (SPoT §3)
  MODEL_DIR/exports/task_embedding.json
  MODEL_DIR/exports/final_prompt.npy    prompt at the last step

`spot-jax export-prompt MODEL_DIR OUT.npy` writes a checkpoint's prompt with the same record
(kind "checkpoint_prompt"; task, model, checksum, vocabulary and seed from the run's exports).

Sidecar example:
  {"kind": "source_prompt", "task": "glue_rte_v2", "step": 3500, "metrics": {"accuracy": 71.2},
   "score": 71.2, "model": "t5_1_1_lm_adapted_base", "frozen_checksum": "sha256:9f2c...",
   "vocabulary": "gs://t5-data/vocabs/cc_all.32000/sentencepiece.model", "prompt_length": 100,
   "embed_dim": 768, "seed": 0, "spot_jax_version": "0.1.0"}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Mapping, Optional

import jax
import numpy as np
from etils import epath

from spot_jax import __version__
from spot_jax.io import atomic_write
from spot_jax.model.params import flatten
from spot_jax.peft import load_prompt_file, save_prompt_file


def params_checksum(params: Mapping) -> str:
  """sha256 over parameter names, shapes, dtypes and bytes: the frozen model's identity."""
  digest = hashlib.sha256()
  for name, value in sorted(flatten(params).items()):
    value = np.asarray(jax.device_get(value))
    digest.update(f"{name}:{value.shape}:{value.dtype};".encode())
    digest.update(np.ascontiguousarray(value).tobytes())
  return "sha256:" + digest.hexdigest()


# What a training run exports, in the order `run_info` looks for its sidecar.
EXPORT_KINDS = ("source_prompt", "task_embedding", "final_prompt")


@dataclasses.dataclass(frozen=True)
class ExportInfo:
  """What every export of one run shares."""
  task: str
  model: str
  frozen_checksum: str
  vocabulary: str
  seed: int


def write_prompt(path: str | epath.PathLike, prompt: Any, record: Mapping[str, Any]) -> epath.Path:
  """Writes PATH (.npy) and its .json sidecar (`record` + shape and version), each atomically:
  temporary name, then rename."""
  path = epath.Path(path)
  prompt = np.asarray(jax.device_get(prompt), np.float32)
  save_prompt_file(path, prompt)
  sidecar = {**record, "prompt_length": int(prompt.shape[0]), "embed_dim": int(prompt.shape[1]),
             "spot_jax_version": __version__}
  atomic_write(path.with_suffix(".json"), json.dumps(sidecar, indent=2, sort_keys=True))
  return path


def export_prompt(directory: str | epath.PathLike, kind: str, prompt: Any, info: ExportInfo, *,
                  step: int, metrics: Optional[Mapping[str, float]] = None,
                  score: Optional[float] = None) -> epath.Path:
  """Writes {kind}.npy and {kind}.json into `directory`."""
  record = {"kind": kind, **dataclasses.asdict(info), "step": int(step),
            "metrics": dict(metrics or {}), "score": score}
  return write_prompt(epath.Path(directory) / f"{kind}.npy", prompt, record)


def run_info(model_dir: str | epath.PathLike) -> dict[str, Any]:
  """The ExportInfo fields (task, model, frozen_checksum, vocabulary, seed) of a training run, read
  from the first of its exports' sidecars; {} for a run that exported nothing yet. A prompt taken
  from one of the run's checkpoints carries them, so a library can tell its model."""
  exports = epath.Path(model_dir) / "exports"
  for kind in EXPORT_KINDS:
    sidecar = exports / f"{kind}.json"
    if sidecar.exists():
      record = json.loads(sidecar.read_text())
      return {f.name: record[f.name] for f in dataclasses.fields(ExportInfo) if f.name in record}
  return {}


def read_export(path: str | epath.PathLike) -> tuple[np.ndarray, dict]:
  """(prompt [P, E], sidecar dict) of an export written by `export_prompt`."""
  path = epath.Path(path)
  return load_prompt_file(path), json.loads(path.with_suffix(".json").read_text())
