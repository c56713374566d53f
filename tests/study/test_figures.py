"""Tests for spot_jax.study.figures: PNG files written atomically, correlations, cluster order."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from spot_jax.study import figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Correlations are float64 (scipy); values built to a known r agree to ~1e-14: 1e-9 is tight.
F64 = {"rel": 1e-9, "abs": 1e-9}


def _assert_png(path):
  data = path.read_bytes()
  assert len(data) > 1000 and data[:8] == PNG_MAGIC
  assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files left


def test_transfer_heatmap(tmp_path):
  matrix = np.array([[25.0, -10.0, np.nan], [0.0, 3.5, -40.0]])
  path = figures.transfer_heatmap(["mnli", "squad"], ["rte", "boolq", "cb"], matrix,
                                  tmp_path / "new" / "dir" / "heatmap.png", title="RER")
  assert path == tmp_path / "new" / "dir" / "heatmap.png"
  _assert_png(path)
  figures.transfer_heatmap(["a"], ["b"], np.full((1, 1), np.nan), tmp_path / "nan.png")
  _assert_png(tmp_path / "nan.png")
  with pytest.raises(figures.FigureError, match="shape"):
    figures.transfer_heatmap(["mnli"], ["rte", "boolq"], matrix, tmp_path / "bad.png")


def _two_clusters(rng):
  """Six tasks interleaved between two clusters: similar within, dissimilar across."""
  centers = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  members = [0, 1, 0, 1, 0, 1]
  vectors = centers[members] + 0.05 * rng.standard_normal((6, 3))
  vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
  return members, vectors @ vectors.T


def test_similarity_clustermap_groups_clusters(tmp_path):
  members, sim = _two_clusters(np.random.default_rng(0))
  sim[0, 1] += 1e-7  # slightly asymmetric input: symmetrised before clustering
  names = [f"task{i}" for i in range(6)]
  families = {"task0": "A", "task2": "A", "task4": "A", "task1": "B"}  # task3, task5: no family
  order = figures.similarity_clustermap(names, sim, tmp_path / "clusters.png", families)
  assert sorted(order) == list(range(6))
  grouped = [members[i] for i in order]
  assert grouped in ([0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0])
  _assert_png(tmp_path / "clusters.png")


def test_similarity_clustermap_edge_cases(tmp_path):
  assert figures.similarity_clustermap(["only"], np.ones((1, 1)), tmp_path / "one.png") == [0]
  _assert_png(tmp_path / "one.png")
  with pytest.raises(figures.FigureError, match="shape"):
    figures.similarity_clustermap(["a", "b"], np.ones((3, 3)), tmp_path / "bad.png")
  with pytest.raises(figures.FigureError, match="unique"):
    figures.similarity_clustermap(["a", "a"], np.ones((2, 2)), tmp_path / "bad.png")
  with pytest.raises(figures.FigureError, match="NaN"):
    figures.similarity_clustermap(["a", "b"], np.array([[1, np.nan], [0, 1]]), tmp_path / "b.png")


def test_similarity_vs_transfer(tmp_path):
  rng = np.random.default_rng(1)
  sims = rng.uniform(0.2, 0.9, size=8)
  gains = 40 * sims - 10 + rng.normal(0, 3, size=8)
  gains_with_nan = gains.copy()
  gains_with_nan[2] = np.nan  # e.g. a perfect baseline: the pair is dropped
  per_target = {
      "rte": (sims, gains),
      "boolq": (list(sims), list(gains_with_nan)),
      "cb": (sims[:2], gains[:2]),  # < 3 points
      "copa": (np.full(5, 0.5), gains[:5]),  # constant similarity
      "wsc": (sims[:4], np.zeros(4)),  # constant gain
  }
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # no ConstantInputWarning, no RuntimeWarning
    got = figures.similarity_vs_transfer(per_target, tmp_path / "scatter" / "sim_vs_gain.png")
  assert list(got) == list(per_target)
  r, p = stats.pearsonr(sims, gains)
  assert got["rte"] == pytest.approx((r, p, 8), **F64)
  keep = np.arange(8) != 2
  assert got["boolq"] == pytest.approx((*stats.pearsonr(sims[keep], gains[keep]), 7), **F64)
  for target, n in (("cb", 2), ("copa", 5), ("wsc", 4)):
    assert math.isnan(got[target].r) and math.isnan(got[target].p) and got[target].n == n
  _assert_png(tmp_path / "scatter" / "sim_vs_gain.png")


@pytest.mark.parametrize("n", [3, 16, 48])
def test_critical_r_is_where_pearson_p_crosses_alpha(n):
  # Data with an exact sample correlation r: y = r·x̂ + sqrt(1 - r²)·ẑ, x̂ ⟂ ẑ, both centred, unit.
  rng = np.random.default_rng(n)
  x, z = rng.normal(size=(2, n))
  x = (x - x.mean()) / np.linalg.norm(x - x.mean())
  z -= z.mean() + x * (x @ z)
  z /= np.linalg.norm(z)
  r_crit = figures.critical_r(n)
  for r, significant in ((r_crit * 1.001, True), (r_crit * 0.999, False)):
    got = stats.pearsonr(x, r * x + math.sqrt(1 - r * r) * z)
    assert got.statistic == pytest.approx(r, **F64)
    assert (got.pvalue < 0.05) == significant
  assert figures.critical_r(16) == pytest.approx(0.497, abs=1e-3)
  assert figures.critical_r(16, alpha=0.01) > figures.critical_r(16)
  assert math.isnan(figures.critical_r(2))


def test_similarity_vs_transfer_checks_inputs(tmp_path):
  with pytest.raises(figures.FigureError, match="empty"):
    figures.similarity_vs_transfer({}, tmp_path / "x.png")
  with pytest.raises(figures.FigureError, match="gains"):
    figures.similarity_vs_transfer({"rte": ([0.1, 0.2, 0.3], [1.0, 2.0])}, tmp_path / "x.png")
  assert not (tmp_path / "x.png").exists()
