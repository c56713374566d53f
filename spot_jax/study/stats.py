"""The study's statistics: does task-embedding similarity predict transfer (SPoT Figs. 5/8)?

Pearson's r between each source's similarity to a target and the relative error reduction its
prompt gives there, with the two-sided p over the n sources, and the |r| that p < 0.05 needs at
that n (16 sources need 0.497; the paper's 48 need 0.285), so a report can say which r are
significant. Pure functions: figures draw these numbers, they do not compute them.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Sequence

import numpy as np
from scipy import stats


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
