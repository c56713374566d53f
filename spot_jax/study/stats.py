"""The study's statistics: does task-embedding similarity predict transfer (SPoT Figs. 5/8)?

Pearson's r between each source's similarity to a target and the relative error reduction its
prompt gives there, with the two-sided p over the n sources, and the |r| that p < 0.05 needs at
that n (16 sources need 0.497; the paper's 48 need 0.285), so a report can say which r are
significant. Pure functions: figures draw these numbers, they do not compute them.

Also the CrossFit study's average relative gain (ARG, seed paper eq. 4.4): the mean over tasks of
each task's relative gain over a baseline, in percent.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Sequence

import numpy as np
from scipy import stats

from spot_jax.errors import SpotError


class StatsError(SpotError):
  """Inputs a statistic cannot be computed from: no tasks, a task without a baseline, a zero
  baseline."""


class Correlation(NamedTuple):
  """Pearson's r and two-sided p over n (similarity, gain) points; r and p NaN when undefined."""
  r: float
  p: float
  n: int


def finite_pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
  """(x, y) as float64 vectors without the pairs holding a NaN or inf in either."""
  x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
  if x.shape != y.shape:
    raise ValueError(f"{x.size} x values but {y.size} y values")
  keep = np.isfinite(x) & np.isfinite(y)
  return x[keep], y[keep]


def pearson(x: Sequence[float], y: Sequence[float]) -> Correlation:
  """Pearson's r, p over the n finite pairs; NaN r and p for n < 3 or a constant input."""
  x, y = finite_pairs(x, y)
  if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
    return Correlation(math.nan, math.nan, len(x))
  r, p = stats.pearsonr(x, y)
  return Correlation(float(r), float(p), len(x))


def critical_r(n: int, alpha: float = 0.05) -> float:
  """The smallest |r| whose two-sided p is below `alpha` over n points (Pearson's t test with n - 2
  degrees of freedom); NaN for fewer than 3 points. At 16 sources per target it is 0.497."""
  if n < 3:
    return math.nan
  t = float(stats.t.ppf(1.0 - alpha / 2.0, n - 2))
  return t / math.sqrt(n - 2 + t * t)


def similarity_vs_transfer(pairs: Mapping[str, Sequence[tuple[float, float]]]) -> dict[str, dict]:
  """{target: {"r", "p", "n", "critical_r"}} from {target: [(similarity, gain) per source]}."""
  out = {}
  for target, points in pairs.items():
    x, y = zip(*points) if points else ((), ())
    correlation = pearson(x, y)
    out[target] = {**correlation._asdict(), "critical_r": critical_r(correlation.n)}
  return out


def average_relative_gain(scores: Mapping[str, float], baseline: Mapping[str, float]) -> float:
  """ARG = (1/n) Σ_i (P_i − P0_i) / P0_i × 100 over the n tasks of `scores` (seed paper eq. 4.4).

  scores[task] = P_i, the method's performance on task i; baseline[task] = P0_i, the baseline's.
  Every task of `scores` needs a baseline (baseline tasks not in `scores` are ignored: the caller
  picks the task set). A relative gain divides by P0, so a baseline of 0 is an error, not an inf;
  so are empty scores and non-finite values. Each task weighs the same, whatever its scale.
  """
  if not scores:
    raise StatsError("average_relative_gain needs at least one task score")
  missing = sorted(str(task) for task in scores if task not in baseline)
  if missing:
    raise StatsError(f"no baseline score for task(s) {', '.join(missing)}: run the baseline on "
                     f"them or drop them from the scores")
  gains = []
  for task, score in scores.items():
    p, p0 = float(score), float(baseline[task])
    if not (math.isfinite(p) and math.isfinite(p0)):
      raise StatsError(f"task {task} has a non-finite score ({p}) or baseline ({p0})")
    if p0 == 0.0:
      raise StatsError(f"task {task} has baseline score 0: its relative gain is undefined; "
                       f"leave the task out of the ARG")
    gains.append((p - p0) / p0 * 100.0)
  return float(np.mean(gains))
