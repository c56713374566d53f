"""Tests for spot_jax.study.crossfit_report on small synthetic record sets with hand-computed ARG."""

from __future__ import annotations

import csv
import json
import math

import pytest

from spot_jax.study import crossfit_report as cr

PARAMS = {"prompt": 100, "adapter": 8000, "full": 200000}
FROZEN = 200000


def rec(upstream, method, target, seed, test, *, dev=None, lr=1e-3, bs=4, step=100, seconds=1.0):
  dev = test if dev is None else dev
  return {"upstream": upstream, "method": method, "target": target, "seed": seed,
          "learning_rate": lr, "batch_size": bs, "dev": {str(step): dev, "0": dev / 2},
          "best_step": step, "dev_score": dev, "test_score": test,
          "tunable_params": PARAMS[method], "frozen_params": FROZEN, "seconds": seconds}


def study_records():
  """Baseline none/full: t1 seeds 40, 60 (mean 50); t2 80, 80 (mean 80).
  mtl/prompt: seed 0 t1 60 (+20 %), t2 72 (−10 %) -> ARG_0 = +5; seed 1 t1 55 (+10 %), t2 88
  (+10 %) -> ARG_1 = +10; ARG = 7.5 ± 2.5 (ddof=0: |10 − 5| / 2).
  maml/prompt: seed 0 only, t1 45 (−10 %) and t3 (no baseline: left out) -> ARG = −10 ± 0.
  The baseline's own row: seed 0 (−20 % + 0) / 2 = −10, seed 1 (+20 % + 0) / 2 = +10 -> 0 ± 10.
  Each selected record comes with a worse grid point (lower dev, higher test) that must lose."""
  best = [("none", "full", "t1", 0, 40), ("none", "full", "t1", 1, 60),
          ("none", "full", "t2", 0, 80), ("none", "full", "t2", 1, 80),
          ("mtl", "prompt", "t1", 0, 60), ("mtl", "prompt", "t2", 0, 72),
          ("mtl", "prompt", "t1", 1, 55), ("mtl", "prompt", "t2", 1, 88),
          ("maml", "prompt", "t1", 0, 45), ("maml", "prompt", "t3", 0, 30)]
  records = []
  for u, m, t, s, test in best:
    records.append(rec(u, m, t, s, test, dev=70.0, lr=1e-3))
    records.append(rec(u, m, t, s, 99.0, dev=69.0, lr=1e-2))  # worse dev, better test: never chosen
  return records


def test_select_picks_the_best_dev_score_and_breaks_ties_deterministically():
  records = [rec("mtl", "prompt", "t1", 0, 50, dev=50, lr=1e-2),
             rec("mtl", "prompt", "t1", 0, 60, dev=62, lr=5e-3),
             rec("mtl", "prompt", "t1", 0, 70, dev=55, lr=1e-3),
             rec("mtl", "prompt", "t1", 1, 10, dev=math.nan, lr=1e-2),  # NaN dev never wins
             rec("mtl", "prompt", "t1", 1, 20, dev=30, lr=1e-3)]
  selected = cr.select(records)
  assert [(r["seed"], r["test_score"]) for r in selected] == [(0, 60), (1, 20)]
  # Equal dev: the earlier best step wins, then the smaller learning rate, then the smaller batch.
  tie = [rec("none", "full", "t", 0, 1, dev=80, lr=1e-4, step=300),
         rec("none", "full", "t", 0, 2, dev=80, lr=3e-5, step=200, bs=8),
         rec("none", "full", "t", 0, 3, dev=80, lr=1e-5, step=200, bs=8),
         rec("none", "full", "t", 0, 4, dev=80, lr=1e-5, step=200, bs=4)]
  for order in (tie, tie[::-1]):
    assert [r["test_score"] for r in cr.select(order)] == [4]
  with pytest.raises(cr.ReportError, match="two records for"):
    cr.select([tie[0], dict(tie[0])])
  with pytest.raises(cr.ReportError, match="needs a number 'dev_score'"):
    cr.select([{k: v for k, v in tie[0].items() if k != "dev_score"}])


def test_task_scores_mean_and_population_std_over_seeds():
  scores = cr.task_scores(cr.select(study_records()))
  assert scores["none", "full", "t1"] == pytest.approx((50.0, 10.0, 2), abs=1e-12)  # 40, 60
  assert scores["mtl", "prompt", "t2"] == pytest.approx((80.0, 8.0, 2), abs=1e-12)  # 72, 88
  assert scores["maml", "prompt", "t3"] == pytest.approx((30.0, 0.0, 1), abs=1e-12)


def test_arg_table_hand_computed():
  rows = {(r.upstream, r.method): r for r in cr.arg_table(cr.select(study_records()))}
  assert list(rows) == [("none", "full"), ("maml", "prompt"), ("mtl", "prompt")]
  mtl = rows["mtl", "prompt"]
  assert (mtl.arg, mtl.std) == pytest.approx((7.5, 2.5), abs=1e-9)
  assert mtl.per_seed == pytest.approx({0: 5.0, 1: 10.0}, abs=1e-9)
  assert mtl.tasks == ("t1", "t2") and mtl.n_seeds == 2
  assert mtl.tunable_params == 100 and mtl.ratio == pytest.approx(0.05, abs=1e-12)
  assert mtl.seconds == pytest.approx(4.0)  # the selected records only, by default
  maml = rows["maml", "prompt"]
  assert (maml.arg, maml.std, maml.tasks, maml.n_seeds) == (pytest.approx(-10.0, abs=1e-9), 0.0,
                                                            ("t1",), 1)
  base = rows["none", "full"]
  assert (base.arg, base.std) == pytest.approx((0.0, 10.0), abs=1e-9)
  assert base.ratio == pytest.approx(100.0)


def test_arg_table_same_upstream_baseline_and_missing_baseline():
  records = study_records() + [rec("mtl", "full", "t1", 0, 50), rec("mtl", "full", "t2", 0, 90)]
  selected = cr.select(records)
  # (None, "full"): against full tuning from the same upstream. mtl/prompt: seed 0 (60 vs 50:
  # +20 %, 72 vs 90: −20 %) -> 0; seed 1 (55: +10 %, 88: −2.22 %) -> 3.888...; mean 1.944...
  with pytest.raises(cr.ReportError, match="no results for the baseline maml/full"):
    cr.arg_table(selected, (None, "full"))
  mtl_only = [r for r in selected if r["upstream"] == "mtl"]
  rows = {(r.upstream, r.method): r for r in cr.arg_table(mtl_only, (None, "full"))}
  seed1 = (10.0 + (88.0 - 90.0) / 90.0 * 100.0) / 2.0
  assert rows["mtl", "prompt"].per_seed == pytest.approx({0: 0.0, 1: seed1}, abs=1e-9)
  assert rows["mtl", "prompt"].arg == pytest.approx(seed1 / 2.0, abs=1e-9)
  no_base = [r for r in selected if r["upstream"] != "none"]
  with pytest.raises(cr.ReportError, match="no results for the baseline none/full: run method "
                                           "'full' from upstream 'none'"):
    cr.arg_table(no_base)


def row(upstream, method, arg, std=1.0):
  return cr.ArgRow(upstream, method, arg, std, {}, ("t",), 2, PARAMS[method], FROZEN,
                   PARAMS[method] / FROZEN * 100, 0.0)


def test_directions_state_the_seeds_comparisons_with_numbers():
  arg = [row("none", "full", 0.0), row("mtl-best", "prompt", -3.0), row("mtl-best", "adapter", 1.0),
         row("maml-best", "prompt", -1.0, std=0.5), row("maml-best", "adapter", -12.0),
         row("mtl-best", "full", 2.0), row("other", "prompt", math.nan)]
  found = {d.claim: d for d in cr.directions(arg)}
  assert set(found) == {"mtl-best ≥ maml-best (prompt)", "mtl-best ≥ maml-best (adapter)",
                        "adapter ≥ prompt under mtl-best", "full ≥ prompt under mtl-best",
                        "full ≥ adapter under mtl-best"}
  prompt = found["mtl-best ≥ maml-best (prompt)"]
  assert not prompt.holds and prompt.difference == pytest.approx(-2.0)
  assert prompt.noise == pytest.approx(math.hypot(1.0, 0.5))
  assert "-13.8" in prompt.seed and "-3.5" in prompt.seed and "-3.0" in prompt.ours
  assert found["mtl-best ≥ maml-best (adapter)"].holds
  assert found["adapter ≥ prompt under mtl-best"].difference == pytest.approx(4.0)
  assert found["full ≥ adapter under mtl-best"].holds


def test_write_report_writes_csvs_tables_and_a_png(tmp_path):
  records = study_records()
  path = cr.write_report(records, tmp_path / "out", title="Tiny CrossFit",
                         protocol_note="Synthetic records for the test.")
  out = tmp_path / "out"
  assert path == out / "report.md"
  with open(out / "results.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == len(records) == 20
  assert json.loads(rows[0]["dev"]) == {"0": 35.0, "100": 70.0}  # steps in numeric order
  with open(out / "selected.csv", newline="") as f:
    selected = list(csv.DictReader(f))
  assert len(selected) == 10 and {r["learning_rate"] for r in selected} == {"0.001"}
  report = (out / "report.md").read_text()
  assert report.startswith("# Tiny CrossFit") and "Synthetic records for the test." in report
  line = next(ln for ln in report.splitlines() if ln.startswith("| mtl ") and "prompt" in ln)
  assert "+7.5 ± 2.5" in line and "0.05 %" in line and " 100 |" in line
  assert "| maml     | prompt | -10.0 ± 0.0" in report
  assert "50.0 ± 10.0" in report  # none/full on t1 in the per-target table
  assert "MAML prompt" in report and "-13.8" in report  # the seed's Table 3 for reference
  assert "mtl ≥ maml (prompt)" in report and "full ≥ prompt under" not in report
  assert (out / "arg.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert (out / "arg.png").stat().st_size > 5000
  with pytest.raises(cr.ReportError, match="no records"):
    cr.write_report([], tmp_path / "empty")
