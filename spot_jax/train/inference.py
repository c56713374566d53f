"""Evaluate a prompt with the task's metrics, or decode predictions with it (`spot-jax eval|infer`).

Prediction record (predictions.jsonl), one per example:
  {"index": 0, "inputs": "rte sentence1: ... sentence2: ...", "target": "entailment",
   "prediction": "entailment"}

Multi-process runs (spot_jax.train.distributed): every process reads the whole split and decodes
it with the same model and prompt (here on its own devices: eval and infer do not lay the model over
the mesh), so all get the same results; process 0 alone writes eval_{split}.json, predictions.jsonl
and the printed summary.
"""

from __future__ import annotations

import contextlib
import json
from typing import Mapping, Optional

import numpy as np
from etils import epath

from spot_jax import validation
from spot_jax.data.pipeline import whole_dataset
from spot_jax.model import decoding
from spot_jax.model.config import T5Config, get_config
from spot_jax.peft import PromptError, load_prompt_file
from spot_jax.train.distributed import is_writer, sync, to_host
from spot_jax.train.evaluation import Validator, score_of
from spot_jax.train.trainer import load_frozen


def _checked(mixture_or_task_name, split, feature_lengths, batch_size, num_examples):
  """The task, once every setting is checked (before the model loads or anything is written)."""
  task = validation.resolve_task(mixture_or_task_name)
  validation.check_split(task, split, setting="split")
  validation.check_feature_lengths(feature_lengths)
  validation.check_positive({"batch_size": batch_size})
  validation.check_optional_positive({"num_examples": num_examples})
  return task


def _frozen_and_prompt(model_config, initial_checkpoint_path, prompt_file, seed):
  """The prompt, checked against the model config, then the frozen model."""
  prompt = load_prompt_file(prompt_file)
  config = get_config(model_config) if isinstance(model_config, str) else model_config
  if prompt.shape[1] != config.emb_dim:
    raise PromptError(f"prompt {prompt_file} has embedding size {prompt.shape[1]} but model "
                      f"{config.name} has {config.emb_dim}; use a prompt trained with this model")
  config, frozen = load_frozen(config, initial_checkpoint_path, seed)
  return config.replace(dropout_rate=0.0), frozen, prompt


def evaluate(*, mixture_or_task_name: str, feature_lengths: Mapping[str, int], prompt_file: str,
             model_config: T5Config | str = "t5_1_1_lm_adapted_base",
             initial_checkpoint_path: Optional[str] = None, split: str = "validation",
             batch_size: int = 32, num_examples: Optional[int] = None,
             output_dir: Optional[str] = None, seed: int = 0) -> dict:
  """{task: {metric: value}, "score": mean}; also written to OUTPUT_DIR/eval_{split}.json."""
  _checked(mixture_or_task_name, split, feature_lengths, batch_size, num_examples)
  if output_dir:
    validation.check_writable_dir(output_dir, setting="OUTPUT_DIR")
  config, frozen, prompt = _frozen_and_prompt(model_config, initial_checkpoint_path, prompt_file, seed)
  validator = Validator(mixture_or_task_name, config=config, feature_lengths=feature_lengths,
                        split=split, batch_size=batch_size, num_examples=num_examples)
  metrics = validator(frozen, {"prompt": prompt})
  result = {**metrics, "score": score_of(metrics)}
  if not is_writer():
    return result
  print(json.dumps(result, indent=2))
  if output_dir:
    out = epath.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"eval_{split}.json").write_text(json.dumps(result, indent=2))
  return result


def infer(*, mixture_or_task_name: str, feature_lengths: Mapping[str, int], prompt_file: str,
          output_file: str, model_config: T5Config | str = "t5_1_1_lm_adapted_base",
          initial_checkpoint_path: Optional[str] = None, split: str = "validation",
          batch_size: int = 32, num_examples: Optional[int] = None, seed: int = 0) -> int:
  """Greedy-decodes a task split with the prompt; writes predictions.jsonl; returns the count."""
  task = _checked(mixture_or_task_name, split, feature_lengths, batch_size, num_examples)
  validation.check_writable_file(output_file, setting="OUTPUT_FILE")
  config, frozen, prompt = _frozen_and_prompt(model_config, initial_checkpoint_path, prompt_file, seed)
  vocab = task.output_features["targets"].vocabulary
  ds = task.get_dataset(dict(feature_lengths), split=split, shuffle=False, num_epochs=1,
                        shard_info=whole_dataset())
  if num_examples:
    ds = ds.take(num_examples)
  length = feature_lengths["inputs"]
  out = epath.Path(output_file)
  writes = is_writer()
  if writes:
    out.parent.mkdir(parents=True, exist_ok=True)
  count = 0
  with out.open("w") if writes else contextlib.nullcontext() as f:
    for batch in ds.padded_batch(batch_size).as_numpy_iterator():
      inputs = np.zeros((batch_size, length), np.int32)
      n = len(batch["inputs"])
      inputs[:n, :min(length, batch["inputs"].shape[1])] = batch["inputs"][:, :length]
      tokens = to_host(decoding.greedy_decode(frozen, inputs, config=config,
                                              peft={"prompt": prompt},
                                              max_decode_len=feature_lengths["targets"]))
      for i in range(n):
        if writes:
          record = {"index": count, "inputs": _text(batch, "inputs", i),
                    "target": _text(batch, "targets", i),
                    "prediction": vocab.decode(tokens[i].tolist())}
          f.write(json.dumps(record) + "\n")
        count += 1
  sync("spot_jax_infer_done")  # no process returns before the predictions are written
  if writes:
    print(f"wrote {count} predictions to {out}")
  return count


def _text(batch: Mapping[str, np.ndarray], key: str, i: int) -> str:
  value = batch.get(f"{key}_pretokenized")
  if value is None:
    return ""
  value = value[i]
  return value.decode() if isinstance(value, bytes) else str(value)
