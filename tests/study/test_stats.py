"""Tests for spot_jax.study.stats: Pearson r, p, n over finite pairs; the r significance needs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats

from spot_jax.study import stats


def test_pearson_drops_non_finite_pairs_and_is_nan_when_undefined():
  rng = np.random.default_rng(1)
  sims = rng.uniform(0.2, 0.9, size=8)
  gains = 40 * sims - 10 + rng.normal(0, 3, size=8)
  r, p = scipy_stats.pearsonr(sims, gains)
  assert stats.pearson(sims, gains) == pytest.approx((r, p, 8), rel=1e-12)
  with_nan = gains.copy()
  with_nan[2] = np.nan  # e.g. a perfect baseline: the pair is dropped
  keep = np.arange(8) != 2
  assert stats.pearson(list(sims), list(with_nan)) == pytest.approx(
      (*scipy_stats.pearsonr(sims[keep], gains[keep]), 7), rel=1e-12)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # no ConstantInputWarning, no RuntimeWarning
    for x, y, n in ((sims[:2], gains[:2], 2), (np.full(5, 0.5), gains[:5], 5),
                    (sims[:4], np.zeros(4), 4)):
      got = stats.pearson(x, y)
      assert math.isnan(got.r) and math.isnan(got.p) and got.n == n
  with pytest.raises(ValueError, match="3 x values but 2 y values"):
    stats.pearson([0.1, 0.2, 0.3], [1.0, 2.0])


@pytest.mark.parametrize("n", [3, 16, 48])
def test_critical_r_is_where_pearson_p_crosses_alpha(n):
  # Data with an exact sample correlation r: y = r·x̂ + sqrt(1 - r²)·ẑ; x̂ ⟂ ẑ, centred, unit.
  rng = np.random.default_rng(n)
  x, z = rng.normal(size=(2, n))
  x = (x - x.mean()) / np.linalg.norm(x - x.mean())
  z -= z.mean() + x * (x @ z)
  z /= np.linalg.norm(z)
  r_crit = stats.critical_r(n)
  for r, significant in ((r_crit * 1.001, True), (r_crit * 0.999, False)):
    got = stats.pearson(x, r * x + math.sqrt(1 - r * r) * z)
    assert got.r == pytest.approx(r, rel=1e-9)
    assert (got.p < 0.05) == significant
  assert stats.critical_r(16) == pytest.approx(0.497, abs=1e-3)
  assert stats.critical_r(16, alpha=0.01) > stats.critical_r(16)
  assert math.isnan(stats.critical_r(2))


def test_similarity_vs_transfer_gives_r_p_n_and_the_r_needed():
  pairs = {"rte": [(0.1, 1.0), (0.2, 2.5), (0.3, 2.9), (0.4, 4.2)], "cb": [(0.1, 1.0)], "wsc": []}
  got = stats.similarity_vs_transfer(pairs)
  x, y = zip(*pairs["rte"])
  r, p = scipy_stats.pearsonr(x, y)
  assert got["rte"] == pytest.approx({"r": r, "p": p, "n": 4, "critical_r": stats.critical_r(4)},
                                     rel=1e-12)
  assert got["cb"]["n"] == 1 and math.isnan(got["cb"]["r"]) and math.isnan(got["cb"]["critical_r"])
  assert got["wsc"]["n"] == 0


def test_average_relative_gain_is_the_mean_of_per_task_relative_gains():
  # anli: (44 - 40) / 40 * 100 = +10;  emo: (45 - 50) / 50 * 100 = -10;  cb: (90 - 75) / 75 * 100
  # = +20.  ARG = (10 - 10 + 20) / 3 = 20 / 3 = 6.666...  (baseline's extra task "wiki" ignored)
  scores = {"anli": 44.0, "emo": 45.0, "cb": 90.0}
  baseline = {"anli": 40.0, "emo": 50.0, "cb": 75.0, "wiki": 10.0}
  assert stats.average_relative_gain(scores, baseline) == pytest.approx(20.0 / 3.0, abs=1e-12)
  # Not the relative gain of the means ((179 - 165) / 165 * 100 = 8.48...): each task weighs the same.
  assert stats.average_relative_gain(scores, baseline) != pytest.approx(14.0 / 165.0 * 100.0,
                                                                          abs=1e-3)
  assert stats.average_relative_gain({"anli": 40.0}, baseline) == 0.0


def test_average_relative_gain_errors_name_the_problem():
  with pytest.raises(stats.StatsError, match="task emo has baseline score 0"):
    stats.average_relative_gain({"anli": 1.0, "emo": 2.0}, {"anli": 1.0, "emo": 0.0})
  with pytest.raises(stats.StatsError, match="no baseline score for task\\(s\\) cb, emo"):
    stats.average_relative_gain({"anli": 1.0, "emo": 2.0, "cb": 3.0}, {"anli": 1.0})
  with pytest.raises(stats.StatsError, match="at least one task"):
    stats.average_relative_gain({}, {"anli": 1.0})
  with pytest.raises(stats.StatsError, match="task anli has a non-finite score"):
    stats.average_relative_gain({"anli": math.nan}, {"anli": 1.0})
