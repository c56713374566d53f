"""Validation with the task's own seqio metrics: decoding for predict metrics, target scoring for
score metrics (e.g. rank classification), through seqio.Evaluator.

The score of a checkpoint is the mean of its task's metric values (SPoT footnote 5: tasks with
several metrics report their average), or one named metric.

Multi-process runs: seqio reads the whole split on every process, so every process decodes the same
global batches on the global mesh, gathers the results (distributed.to_host) and computes the same
metrics; process 0 writes them.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional

import numpy as np

from spot_jax.data.autograph import skip_seqio_autograph
from spot_jax.model import decoding
from spot_jax.model.config import T5Config
from spot_jax.peft.trees import model_args
from spot_jax.train.distributed import to_host

Metrics = dict[str, float]


def _batches(ds, batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], int]]:
  """(indices, features, n_real) from seqio's enumerated dataset; the last batch is zero-padded to
  a fixed size so that one compiled function serves every batch."""
  for index, features in ds.batch(batch_size).as_numpy_iterator():
    n = len(index)
    if n < batch_size:
      features = {k: np.pad(v, [(0, batch_size - n)] + [(0, 0)] * (v.ndim - 1))
                  for k, v in features.items()}
    yield index, features, n


class Validator:
  """Evaluates a trainable tree (a prompt, prefixes, adapters, a tuned model) on a task or mixture
  split with seqio's metrics."""

  def __init__(self, task_name: str, *, config: T5Config, feature_lengths: Mapping[str, int],
               split: str = "validation", batch_size: int = 32,
               num_examples: Optional[int] = None):
    import seqio
    skip_seqio_autograph()
    self.config = config.replace(dropout_rate=0.0)
    self.batch_size = batch_size
    self.max_decode_len = feature_lengths["targets"]
    self.evaluator = seqio.Evaluator(
        task_name, feature_converter=seqio.EncDecFeatureConverter(pack=False), eval_split=split,
        sequence_length=dict(feature_lengths), num_examples=num_examples,
        async_compute_metrics=False, logger_cls=())

  def _predict(self, params, peft) -> Any:
    def predict_fn(ds):
      out = []
      for index, features, n in _batches(ds, self.batch_size):
        tokens = decoding.greedy_decode(params, features["encoder_input_tokens"], config=self.config,
                                        max_decode_len=self.max_decode_len, peft=peft)
        out.extend(zip(index.tolist(), to_host(tokens)[:n].tolist()))
      return out
    return predict_fn

  def _score(self, params, peft) -> Any:
    def score_fn(ds):
      out = []
      for index, features, n in _batches(ds, self.batch_size):
        scores = decoding.score_targets(params, features["encoder_input_tokens"],
                                        features["decoder_target_tokens"], config=self.config,
                                        peft=peft)
        out.extend(zip(index.tolist(), to_host(scores)[:n].tolist()))
      return out
    return score_fn

  def __call__(self, frozen, trainable: Mapping[str, Any], step: int = -1) -> dict[str, Metrics]:
    """{task name: {metric: value}} for the trainable tree, e.g. {"prompt": [P, E]}."""
    params, peft = model_args(trainable, frozen)
    future, _ = self.evaluator.evaluate(compute_metrics=True, step=step,
                                        predict_fn=self._predict(params, peft),
                                        score_fn=self._score(params, peft))
    results = future.result()
    return {task: {k: float(getattr(v, "value", v)) for k, v in metrics.items()}
            for task, metrics in results.items()}


def score_of(metrics: Mapping[str, Metrics], metric: Optional[str] = None) -> float:
  """One number to pick the best checkpoint: `metric` averaged over tasks, or the mean of all."""
  values = [m[metric] if metric else np.mean(list(m.values())) for m in metrics.values() if m]
  return float(np.mean(values)) if values else float("nan")
