"""A tiny seqio task for trainer tests: byte-level inputs, "yes"/"no" targets, accuracy metric.

Label rule: "yes" when the sequence of letters contains the letter 'a', else "no" (about balanced).
"""

from __future__ import annotations

import functools

import numpy as np
import seqio
import tensorflow as tf

TASK = "spot_toy_contains_a"
SPLITS = {"train": 512, "validation": 64}
FEATURE_LENGTHS = {"inputs": 16, "targets": 4}


def _examples(split: str, shuffle_files: bool = False, seed: int = 0) -> tf.data.Dataset:
  del shuffle_files, seed
  rng = np.random.RandomState({"train": 0, "validation": 1}[split])
  letters = np.array(list("abcdefgh"))
  inputs, targets = [], []
  for _ in range(SPLITS[split]):
    word = "".join(rng.choice(letters, size=rng.randint(4, 9)))
    inputs.append(f"w: {word}")
    targets.append("yes" if "a" in word else "no")
  return tf.data.Dataset.from_tensor_slices({"inputs": inputs, "targets": targets})


def accuracy(targets, predictions) -> dict[str, float]:
  return {"accuracy": 100.0 * float(np.mean([t == p for t, p in zip(targets, predictions)]))}


def mean_log_likelihood(targets, scores) -> dict[str, float]:
  """A score metric (seqio passes the model's target log-likelihoods as `scores`)."""
  del targets
  return {"mean_log_likelihood": float(np.mean(scores))}


SCORED_TASK = TASK + "_scored"


def register() -> str:
  """Registers the tasks once (idempotent) and returns the main task's name."""
  if TASK in seqio.TaskRegistry.names():
    return TASK
  vocab = seqio.ByteVocabulary()
  features = {k: seqio.Feature(vocab, add_eos=True) for k in ("inputs", "targets")}
  for name, metrics in ((TASK, [accuracy]), (SCORED_TASK, [mean_log_likelihood])):
    seqio.TaskRegistry.add(
        name,
        source=seqio.FunctionDataSource(functools.partial(_examples), splits=tuple(SPLITS),
                                        num_input_examples=SPLITS),
        preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
        output_features=features, metric_fns=metrics)
  return TASK


register()  # a task module registers on import, like every seqio task module (`--module toy_task`)
