"""Tests for spot_jax.study.grid: cell keys, atomic result files, resuming an interrupted grid."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spot_jax.study import grid


def _score(cell: grid.Cell) -> float:
  return 50.0 + cell.seed + (0.0 if cell.is_baseline else len(cell.source))


def test_cell_key_and_baseline_spelling():
  assert grid.Cell("rte", None, 0).key == "rte/baseline/seed0.json"
  assert grid.Cell("rte", "mnli", 3).key == "rte/mnli/seed3.json"
  assert grid.Cell("rte", "baseline", 1) == grid.Cell("rte", None, 1)
  assert grid.Cell("rte", None, 0).fields() == {"target": "rte", "source": "baseline", "seed": 0}
  assert grid.Cell("rte", "mnli", np.int64(2)).seed == 2


@pytest.mark.parametrize("target,source,seed", [
    ("a/b", None, 0), ("", None, 0), (".tmp", None, 0), ("rte", "x/y", 0), ("rte", None, 1.5),
    ("rte", None, True)])
def test_cell_rejects_bad_fields(target, source, seed):
  with pytest.raises(grid.GridError):
    grid.Cell(target, source, seed)


def test_cells_order_and_options():
  got = grid.cells(["mnli", "rte"], ["rte", "boolq"], [0, 1])
  assert len(got) == 2 * 3 * 2
  assert [c.key for c in got[:6]] == [
      "rte/baseline/seed0.json", "rte/baseline/seed1.json", "rte/mnli/seed0.json",
      "rte/mnli/seed1.json", "rte/rte/seed0.json", "rte/rte/seed1.json"]
  no_self = grid.cells(["mnli", "rte"], ["rte"], [0], baseline=False, include_self=False)
  assert no_self == [grid.Cell("rte", "mnli", 0)]
  with pytest.raises(grid.GridError):
    grid.cells(["mnli", "mnli"], ["rte"], [0])
  with pytest.raises(grid.GridError):
    grid.cells(["baseline"], ["rte"], [0])


def test_run_grid_resumes_after_an_exception(tmp_path):
  todo = grid.cells(["mnli", "squad"], ["rte"], [0, 1])  # 6 cells
  calls = []

  def failing(cell):
    calls.append(cell)
    if len(calls) == 3:
      raise RuntimeError("preempted")
    return {"score": _score(cell), "steps": np.int64(100)}

  with pytest.raises(RuntimeError, match="preempted"):
    grid.run_grid(todo, failing, tmp_path, progress=False)
  assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json")) == sorted(
      c.key for c in todo[:2])
  assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]

  calls.clear()
  resumed = grid.run_grid(todo, lambda c: calls.append(c) or {"score": _score(c), "steps": 100},
                          tmp_path, progress=True)
  assert calls == todo[2:]
  assert [r["score"] for r in resumed] == [_score(c) for c in todo]
  assert resumed[0] == {"target": "rte", "source": "baseline", "seed": 0, "score": 50.0,
                        "steps": 100}

  calls.clear()
  again = grid.run_grid(todo, lambda c: calls.append(c), tmp_path, progress=False)
  assert calls == [] and again == resumed
  assert grid.load_results(tmp_path) == sorted(
      resumed, key=lambda r: (r["target"], r["source"], r["seed"]))


def test_a_reversed_second_run_meets_the_first_in_the_middle(tmp_path):
  todo = grid.cells(["mnli", "squad"], ["rte"], [0, 1])  # 6 cells
  forward, backward = [], []

  def first(cell):  # the first process, stopped after 2 cells
    if len(forward) == 2:
      raise RuntimeError("preempted")
    forward.append(cell)
    return {"score": _score(cell)}

  with pytest.raises(RuntimeError):
    grid.run_grid(todo, first, tmp_path, progress=False)
  records = grid.run_grid(todo, lambda c: backward.append(c) or {"score": _score(c)}, tmp_path,
                          progress=False, reverse=True)
  assert forward == todo[:2] and backward == todo[:1:-1]  # no cell computed twice
  assert [r["score"] for r in records] == [_score(c) for c in todo]  # in `cells` order


def test_load_results_ignores_temp_files(tmp_path):
  records = grid.run_grid(grid.cells(["mnli"], ["rte"], [0]),
                          lambda c: {"score": _score(c)}, tmp_path, progress=False)
  (tmp_path / "rte" / "mnli" / ".seed1.json.tmp-1234abcd").write_text("{trunc")
  (tmp_path / "rte" / ".mnli.tmp-1").mkdir()
  (tmp_path / "rte" / ".mnli.tmp-1" / "seed0.json").write_text("{trunc")
  assert grid.load_results(tmp_path) == records
  assert grid.load_results(tmp_path / "missing") == []


def test_run_grid_checks_results_and_files(tmp_path):
  cell = grid.Cell("rte", "mnli", 0)
  with pytest.raises(grid.GridError, match="score"):
    grid.run_grid([cell], lambda c: {"accuracy": 1.0}, tmp_path, progress=False)
  with pytest.raises(grid.GridError, match="target"):
    grid.run_grid([cell], lambda c: {"score": 1.0, "target": "boolq"}, tmp_path, progress=False)
  with pytest.raises(grid.GridError, match="duplicates"):
    grid.run_grid([cell, cell], lambda c: {"score": 1.0}, tmp_path, progress=False)
  assert not list(tmp_path.rglob("*"))  # nothing written for a bad result
  path = tmp_path / cell.key
  path.parent.mkdir(parents=True)
  path.write_text("{trunc")
  with pytest.raises(grid.GridError, match="delete it"):
    grid.run_grid([cell], lambda c: {"score": 1.0}, tmp_path, progress=False)
  path.write_text(json.dumps({"target": "rte", "source": "squad", "seed": 0, "score": 1.0}))
  with pytest.raises(grid.GridError, match="not cell"):
    grid.run_grid([cell], lambda c: {"score": 1.0}, tmp_path, progress=False)
