"""Tests for spot_jax.study.tables against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spot_jax.study import tables

# Scores are float64; hand-computed values agree to ~1e-14, so 1e-9 catches any real difference.
# Exact == is kept for means and gains of integers and halves: exact in binary floating point.
F64 = {"rel": 1e-9, "abs": 1e-9}


def _r(target, source, seed, score):
  return {"target": target, "source": source, "seed": seed, "score": score}


# rte: baseline 60 / 62 (mean 61), mnli 70 / 72 (mean 71), squad 58 / 60 (mean 59).
# boolq: baseline 80 (one seed, "baseline" spelling), mnli 90, squad 85.
RESULTS = [
    _r("rte", None, 0, 60.0), _r("rte", None, 1, 62.0),
    _r("rte", "mnli", 0, 70.0), _r("rte", "mnli", 1, 72.0),
    _r("rte", "squad", 0, 58.0), _r("rte", "squad", 1, 60.0),
    _r("boolq", "baseline", 0, 80.0), _r("boolq", "mnli", 0, 90.0), _r("boolq", "squad", 0, 85.0),
]


def test_relative_error_reduction():
  assert tables.relative_error_reduction(70.0, 60.0) == pytest.approx(25.0, **F64)
  assert tables.relative_error_reduction(50.0, 60.0) == pytest.approx(-25.0, **F64)
  assert tables.relative_error_reduction(100.0, 60.0) == pytest.approx(100.0, **F64)
  assert math.isnan(tables.relative_error_reduction(100.0, 100.0))
  assert math.isnan(tables.relative_error_reduction(90.0, 100.0))
  np.testing.assert_allclose(tables.relative_error_reduction([70.0, 80.0], [60.0, 100.0]),
                             [25.0, np.nan], rtol=1e-9, atol=1e-9)


def test_mean_std_uses_sample_std():
  stats = tables.mean_std(RESULTS)
  mean, std, n = stats["mnli", "rte"]
  assert (mean, n) == (71.0, 2) and std == pytest.approx(math.sqrt(2.0), **F64)  # ddof=1
  assert stats["baseline", "boolq"] == (80.0, 0.0, 1)
  assert stats["baseline", "rte"][0] == 61.0
  assert list(stats) == sorted(stats)


def test_duplicates_and_bad_scores_are_refused():
  with pytest.raises(tables.TableError, match="two results"):
    tables.mean_std(RESULTS + [_r("rte", "baseline", 0, 61.0)])
  with pytest.raises(tables.TableError, match="0-100"):
    tables.mean_std([_r("rte", None, 0, 150.0)])
  with pytest.raises(tables.TableError):
    tables.mean_std([{"target": "rte", "seed": 0}])


def test_transfer_table():
  sources, targets, matrix = tables.transfer_table(RESULTS)
  assert sources == ["mnli", "squad"] and targets == ["boolq", "rte"]
  # rte: baseline error 39; mnli error 29 -> 10/39; squad error 41 -> -2/39.
  # boolq: baseline error 20; mnli error 10 -> 50; squad error 15 -> 25.
  np.testing.assert_allclose(matrix, [[50.0, 1000 / 39], [25.0, -200 / 39]], rtol=1e-9,
                             atol=1e-9)
  sources, targets, matrix = tables.transfer_table(RESULTS, sources=["squad", "qqp"],
                                                   targets=["rte", "cb"])
  np.testing.assert_allclose(matrix, [[-200 / 39, np.nan], [np.nan, np.nan]], rtol=1e-9,
                             atol=1e-9)


def test_positive_transfers():
  found = tables.positive_transfers(RESULTS)
  assert found == [("mnli", "boolq", 90.0, 80.0, 10.0), ("mnli", "rte", 71.0, 61.0, 10.0),
                   ("squad", "boolq", 85.0, 80.0, 5.0)]  # ties by target name
  assert found[0].gain == 10.0
  assert [(t.source, t.target) for t in tables.positive_transfers(RESULTS, min_gain=5.0)] == [
      ("mnli", "boolq"), ("mnli", "rte")]


def test_equal_means_of_different_seed_scores_are_no_gain():
  # wsd_wic's measured validation scores (300 examples, seeds 0-2): both are 506 right of 900, but
  # summed in binary the mixture's came out 7e-15 higher.
  baseline, mixture = (56.666666666666664, 54.333333333333336, 57.666666666666664), (
      55.00000000000001, 59.66666666666667, 54.0)
  assert np.mean(mixture) > np.mean(baseline)
  results = [_r("wic", None, s, v) for s, v in enumerate(baseline)]
  results += [_r("wic", "mix", s, v) for s, v in enumerate(mixture)]
  stats = tables.mean_std(results)
  assert stats["mix", "wic"][0] == stats["baseline", "wic"][0]
  assert tables.positive_transfers(results) == []


def test_oracle_and_seed_scores():
  assert tables.best_sources(RESULTS) == {"boolq": "mnli", "rte": "mnli"}
  assert tables.oracle(RESULTS) == {"boolq": [90.0], "rte": [70.0, 72.0]}
  assert tables.seed_scores(RESULTS, {"rte": None, "boolq": "squad"}) == {
      "rte": [60.0, 62.0], "boolq": [85.0]}
  with pytest.raises(tables.TableError, match="no results"):
    tables.seed_scores(RESULTS, {"rte": "qqp"})


def test_retrieval_summary_gains():
  scores = {
      "baseline": {"a": [60.0, 62.0], "b": [80.0, 82.0]},  # seed avgs 70, 72 -> mean 71
      "top1": {"a": [70.0, 74.0], "b": [82.0, 86.0]},  # seed avgs 76, 80 -> mean 78
      "ragged": {"a": [70.0], "b": [80.0, 82.0]},  # mean (70 + 81) / 2 = 75.5
  }
  rows = tables.retrieval_summary({"top1": scores["top1"], "baseline": scores["baseline"],
                                   "ragged": scores["ragged"]})
  assert [r.method for r in rows] == ["baseline", "top1", "ragged"]
  base, top1, ragged = rows
  assert base == ("baseline", 71.0, pytest.approx(math.sqrt(2.0), **F64), 0.0, 0.0, 2)
  assert top1.mean == 78.0 and top1.std == pytest.approx(2 * math.sqrt(2.0), **F64)
  assert top1.abs_gain == 7.0 and top1.rel_gain == pytest.approx(700 / 71, **F64)
  assert ragged.mean == 75.5 and math.isnan(ragged.std)
  with pytest.raises(tables.TableError, match="baseline"):
    tables.retrieval_summary({"top1": scores["top1"]})
  with pytest.raises(tables.TableError, match="targets"):
    tables.retrieval_summary({"baseline": scores["baseline"], "x": {"a": [1.0]}})


def test_retrieval_summary_with_oracle_from_results():
  method_scores = {"baseline": tables.seed_scores(RESULTS, {"rte": None, "boolq": None}),
                   "oracle": tables.oracle(RESULTS)}
  base, best = tables.retrieval_summary(method_scores)
  assert base.mean == (61.0 + 80.0) / 2 and best.mean == (71.0 + 90.0) / 2
  assert best.abs_gain == 10.0


def test_markdown_table():
  text = tables.markdown_table(["method", "score", "n"],
                               [("baseline", 71.0, 2), ("a|b", 78.25, None)])
  assert text == ("| method   | score |   n |\n"
                  "| -------- | ----: | --: |\n"
                  "| baseline |  71.0 |   2 |\n"
                  "| a\\|b     |  78.2 |     |")
  rows = tables.retrieval_summary({"baseline": {"a": [60.0]}, "m": {"a": [66.0]}})
  text = tables.markdown_table(tables.RetrievalRow._fields, rows, floatfmt=".2f")
  assert "| m " in text and "10.00 |" in text and "6.00 |" in text
  with pytest.raises(tables.TableError):
    tables.markdown_table(["a", "b"], [(1,)])
