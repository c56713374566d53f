"""The CrossFit study's cells: enumeration, tree files, claims, and a tiny end-to-end run that
resumes without recomputing anything."""

import csv
import json
import functools
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
import seqio
import tensorflow as tf

import toy_task
from spot_jax.model import get_config, init_params
from spot_jax.peft import trees
from spot_jax.study import crossfit, grid
from spot_jax.train.meta import MetaConfig

CONFIG = get_config("t5_1_1_test")
TARGET_TASK = "spot_toy_kshot"
UPSTREAM_MIXTURE = "spot_toy_upstream"
SIZES = {"train": 16, "validation": 8, "test": 12}


def gold_probability(targets, scores):
  """100 x the mean probability of the gold target: a random model's score is small but never 0,
  so ARG (which divides by the baseline) is defined even for untrained tiny models."""
  del targets
  return {"gold_probability": 100.0 * float(np.mean(np.exp(scores)))}


def _register():
  """A k-shot-like toy target (train / validation = dev / test) and a one-task upstream mixture."""
  if TARGET_TASK in seqio.TaskRegistry.names():
    return

  def examples(split, shuffle_files=False, seed=0):
    ds = toy_task._examples("train" if split == "train" else "validation")
    return ds.skip(SIZES["validation"] if split == "test" else 0).take(SIZES[split])

  vocab = seqio.ByteVocabulary()
  seqio.TaskRegistry.add(
      TARGET_TASK, source=seqio.FunctionDataSource(examples, splits=tuple(SIZES),
                                                   num_input_examples=SIZES),
      preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
      output_features={k: seqio.Feature(vocab, add_eos=True) for k in ("inputs", "targets")},
      metric_fns=[gold_probability])
  seqio.MixtureRegistry.add(UPSTREAM_MIXTURE, [toy_task.TASK], default_rate=1.0)


_register()
UNIVERSE = crossfit.Universe(
    name="toy", targets=("toy",), target_task=lambda target, seed: TARGET_TASK,
    upstream_tasks=(toy_task.TASK,), upstream_mixture=UPSTREAM_MIXTURE,
    feature_lengths=lambda _: toy_task.FEATURE_LENGTHS, seeds=(0, 1))
PRESETS = crossfit.Presets(
    methods={"prompt": trees.Method("prompt", prompt_length=3, vocab_limit=200),
             "adapter": trees.Method("adapter", bottleneck=4)},
    learning_rates={"prompt": (0.1, 0.01), "adapter": (1e-2,)},
    upstream=crossfit.Upstream(
        learning_rates={"prompt": 0.1, "adapter": 1e-2}, batch_size=4,
        meta={m: MetaConfig("maml", inner_lr=lr, outer_lr=lr, inner_batch_size=2, meta_batch_size=2)
              for m, lr in (("prompt", 0.1), ("adapter", 1e-2))}))


def test_cells_cover_the_grid_once_and_name_their_upstream_tree():
  study = crossfit.build_study(PRESETS, batch_sizes=(4, 8))
  cells = crossfit.downstream_cells(study, UNIVERSE)
  # upstreams: none + (mtl, maml) x (best, last); prompt has 2 rates, adapter 1; 2 seeds, 2 batches
  assert len(cells) == 5 * (2 + 1) * 1 * 2 * 2
  assert len({c.key for c in cells}) == len(cells)
  cell = next(c for c in cells if c.upstream == "maml-last" and c.method == "adapter")
  assert cell.source == crossfit.UpstreamCell("maml", "adapter")
  assert cell.source.tree_path(grid.epath.Path("/o"), "last").as_posix() == \
      "/o/upstream/maml/adapter/last.npz"
  assert all(c.source is None for c in cells if c.upstream == "none")
  assert crossfit.build_study(PRESETS, checkpoints=("best",), upstreams=("mtl",)).checkpoints == \
      ("best",)


def test_bad_settings_are_one_line_errors():
  with pytest.raises(crossfit.CrossFitError, match="unknown method.*lora"):
    crossfit.build_study(PRESETS, methods=("lora",))
  with pytest.raises(crossfit.CrossFitError, match="unknown upstream reptile"):
    crossfit.build_study(PRESETS, upstreams=("reptile",))
  with pytest.raises(crossfit.CrossFitError, match="does not exist; run the upstream cells"):
    crossfit.load_tree(grid.epath.Path("/nonexistent/best.npz"))


def test_trees_round_trip_through_npz(tmp_path):
  frozen = init_params(CONFIG, 0)
  tree = trees.init_trainable(trees.Method("prefix", prefix_length=2), CONFIG, frozen,
                              jax.random.PRNGKey(0))
  path = grid.epath.Path(tmp_path) / "t" / "best.npz"
  crossfit.save_tree(path, tree)
  back = crossfit.load_tree(path)
  assert jax.tree.structure(back) == jax.tree.structure(tree)
  for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(tree)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # float32 stored as float32


def _dead_pid() -> int:
  proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                        capture_output=True, text=True)
  return int(proc.stdout)


def test_claimed_cells_are_left_to_live_processes_and_taken_from_dead_ones(tmp_path):
  cells = [grid.Cell("t", None, 0), grid.Cell("t", None, 1)]
  live, dead = (tmp_path / cells[0].key), (tmp_path / cells[1].key)
  live.parent.mkdir(parents=True)
  (live.parent / f"{live.name}.claim").write_text(f"{socket.gethostname()}:{os.getppid()}")
  (dead.parent / f"{dead.name}.claim").write_text(f"{socket.gethostname()}:{_dead_pid()}")
  ran = []
  records = grid.run_grid(cells, lambda c: ran.append(c) or {"score": 1.0}, tmp_path,
                          progress=False, claim=True)
  assert ran == [cells[1]] and records[0] == {} and records[1]["score"] == 1.0
  assert not (dead.parent / f"{dead.name}.claim").exists()  # released after the write
  assert (live.parent / f"{live.name}.claim").exists()  # the live worker's claim is untouched


def test_the_arg_baseline_is_full_tuning_without_upstream_when_the_study_runs_it():
  assert crossfit.baseline_of(crossfit.build_study(PRESETS)) == ("none", "prompt")
  presets = crossfit.Presets(methods={**PRESETS.methods, "full": trees.Method("full")},
                             learning_rates={**PRESETS.learning_rates, "full": (1e-3,)},
                             upstream=PRESETS.upstream)
  assert crossfit.baseline_of(crossfit.build_study(presets)) == ("none", "full")
  assert crossfit.baseline_of(crossfit.build_study(presets, upstreams=("mtl",),
                                                   checkpoints=("last",))) == ("mtl-last", "prompt")


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
  out = tmp_path_factory.mktemp("crossfit")
  study = crossfit.build_study(PRESETS, seeds=(0,), steps=4, eval_every=2, batch_sizes=(4,),
                               upstream_steps=2, checkpoints=("best", "last"))
  frozen = init_params(CONFIG, 0)
  report = crossfit.run_study(CONFIG, frozen, UNIVERSE, study, out, progress=False)
  return out, study, frozen, report


def test_a_tiny_study_runs_every_cell_and_writes_the_report(finished_study):
  out, study, frozen, report = finished_study
  assert report.name == "report.md" and (out / "arg.png").exists()
  with open(out / "results.csv") as f:
    rows = list(csv.DictReader(f))
  # (none + 2 upstreams x 2 checkpoints) x (prompt at 2 rates + adapter at 1), 1 target, 1 seed
  assert len(rows) == 5 * 3
  assert {r["upstream"] for r in rows} == {"none", "mtl-best", "mtl-last", "maml-best", "maml-last"}
  prompt = [r for r in rows if r["method"] == "prompt"]
  assert {int(r["tunable_params"]) for r in prompt} == {3 * CONFIG.emb_dim}
  assert {int(r["frozen_params"]) for r in rows} == {trees.count_params(frozen)}
  for r in rows:
    assert int(r["best_step"]) in (2, 4) and 0.0 < float(r["test_score"]) <= 100.0
  for upstream in ("mtl", "maml"):
    for method in ("prompt", "adapter"):
      cell = crossfit.UpstreamCell(upstream, method)
      best = crossfit.load_tree(cell.tree_path(out, "best"))
      assert trees.method_of(best) == method
  assert "Baseline of ARG: none/prompt (the study has no none/full cells)" in report.read_text()


def test_a_finished_study_is_never_recomputed(finished_study, monkeypatch):
  out, study, frozen, _ = finished_study
  before = (out / "results.csv").read_text()

  def fail(*args, **kwargs):
    raise AssertionError("a finished cell was recomputed")
  monkeypatch.setattr(crossfit.Runner, "run_upstream", fail)
  monkeypatch.setattr(crossfit.Runner, "run_downstream", fail)
  monkeypatch.setattr(crossfit.Runner, "run_downstream_group", fail)
  crossfit.run_study(CONFIG, frozen, UNIVERSE, study, out, progress=False)
  assert (out / "results.csv").read_text() == before


def test_arg_against_the_full_tuning_cells_of_another_study_directory(finished_study, tmp_path):
  out, study, frozen, _ = finished_study
  other = tmp_path / "other"
  cells = crossfit.load_cells(out)
  assert len(cells) == 15 and {c["method"] for c in cells} == {"prompt", "adapter"}
  # A "baseline study" whose none/full cells copy the prompt cells (same dev scores, so the same
  # selection) with test scores doubled: ARG of none/prompt is then (P - 2P) / 2P = -50 %.
  for c in cells:
    if c["upstream"] == "none" and c["method"] == "prompt":
      cell = crossfit.DownstreamCell("none", "full", c["target"], c["seed"], c["learning_rate"],
                                     c["batch_size"])
      record = {**c, **cell.fields(), "test_score": 2 * c["test_score"], "score": 2 * c["test_score"]}
      path = other / cell.key
      path.parent.mkdir(parents=True, exist_ok=True)
      path.write_text(json.dumps(record))
  report = crossfit.run_study(CONFIG, frozen, UNIVERSE, study, out, progress=False,
                              baseline_dir=other)
  text = report.read_text()
  assert f"Baseline of ARG: none/full from {other}" in text
  assert "| none      | prompt  | -50.0 ± 0.0" in text
  assert "| none      | full    | +0.0 ± 0.0" in text
  with pytest.raises(crossfit.CrossFitError, match="holds no finished none/full cells"):
    crossfit.run_study(CONFIG, frozen, UNIVERSE, study, out, progress=False,
                       baseline_dir=tmp_path / "empty")


def test_stacked_downstream_cells_write_what_single_runs_write_and_resume_exactly(tmp_path,
                                                                                monkeypatch):
  """2 seeds x 2 rates at batch 4: the measured rule stacks all 4 cells in one step; every cell's
  file holds the fields and (within float32 tolerance: 4 steps, before round-off grows) the scores
  of the one-at-a-time path."""
  study = crossfit.build_study(PRESETS, upstreams=("none",), methods=("prompt",), seeds=(0, 1),
                               steps=4, eval_every=2, batch_sizes=(4,))
  frozen = init_params(CONFIG, 0)
  groups = []
  original = crossfit.Runner.run_downstream_group

  def spy(self, cells, out):
    groups.append(len(cells))
    return original(self, cells, out)
  monkeypatch.setattr(crossfit.Runner, "run_downstream_group", spy)
  run = functools.partial(crossfit.run_study, CONFIG, frozen, UNIVERSE, study, progress=False)
  run(tmp_path / "single")  # the default: one at a time
  assert groups == []
  run = functools.partial(run, runs_per_step=None)  # the measured rule
  run(tmp_path / "stacked")
  assert groups == [4]

  def records(name):
    return {(r["seed"], r["learning_rate"]): r for r in crossfit.load_cells(tmp_path / name)}

  single, stacked = records("single"), records("stacked")
  assert len(single) == 4 and single.keys() == stacked.keys()
  for key, one in single.items():
    many = stacked[key]
    assert many.keys() == one.keys()
    for field in ("upstream", "method", "target", "seed", "learning_rate", "batch_size",
                  "best_step", "tunable_params", "frozen_params"):
      assert many[field] == one[field], (key, field)
    for field in ("score", "test_score", "dev_score"):
      np.testing.assert_allclose(many[field], one[field], rtol=1e-4, atol=1e-3)
    assert many["dev"].keys() == one["dev"].keys()
    np.testing.assert_allclose(list(many["dev"].values()), list(one["dev"].values()), rtol=1e-4,
                               atol=1e-3)
  assert len({r["score"] for r in stacked.values()}) == 4  # four different runs, not one copied

  # Resume: two of the four files lost -> only those two run (as a group of 2), same results.
  lost = [k for k in sorted(stacked)][:2]
  for r in stacked.values():
    if (r["seed"], r["learning_rate"]) in lost:
      cell = crossfit.DownstreamCell(r["upstream"], r["method"], r["target"], r["seed"],
                                     r["learning_rate"], r["batch_size"])
      (tmp_path / "stacked" / cell.key).unlink()
  groups.clear()
  run(tmp_path / "stacked")
  assert groups == [2]
  again = records("stacked")
  for key in stacked:
    np.testing.assert_allclose(again[key]["score"], stacked[key]["score"], rtol=1e-5, atol=1e-4)
  groups.clear()
  run(tmp_path / "stacked")  # all done: nothing runs
  assert groups == []
