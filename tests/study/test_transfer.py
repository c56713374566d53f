"""The transfer study end to end on the embedded tasks with a tiny random frozen model: library,
target embeddings, grid, retrieval summary, report and figures; a rerun recomputes nothing."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from spot_jax.embedded import seqio_tasks
from spot_jax.errors import SpotError
from spot_jax.embedded import tasks as synthetic_tasks
from spot_jax.library import retrieval, similarity
from spot_jax.library.store import LibraryError, PromptLibrary
from spot_jax.model.config import get_config
from spot_jax.model.params import init_params
from spot_jax.peft import load_prompt_file
from spot_jax.study import runner, stats, transfer

SOURCES = ("synthetic_sent_opinion_v2", "synthetic_cola_order_v2", "synthetic_mc_usage_v2")
TARGET = "synthetic_sent_mood_v2"


@pytest.fixture(scope="module")
def tuner():
  config = get_config("t5_1_1_test")
  protocol = runner.Protocol(steps=4, eval_every=2, batch_size=8, prompt_length=4, embedding_step=2,
                             num_eval_examples=16, eval_batch_size=16, vocab_limit=279)
  return runner.Tuner(config, init_params(config, 0), protocol,
                      feature_lengths=seqio_tasks.feature_lengths, log=None)


def test_study_writes_report_and_resumes(tuner, tmp_path, monkeypatch):
  families = {n: s.family for n, s in synthetic_tasks.TASKS.items()}
  study = transfer.Study(sources=SOURCES, targets=(TARGET,), seeds=(0,), source_steps=4, top_k=2,
                         families=families, mixture=True)
  summary = transfer.run_study(tuner, study, tmp_path, vocabulary="test")
  library = PromptLibrary(tmp_path / "library")
  assert sorted(e.task for e in library.list()) == sorted(SOURCES)
  ranking = summary["rankings"][TARGET]
  assert sorted(s for s, _ in ranking) == sorted(SOURCES)
  assert [v for _, v in ranking] == sorted((v for _, v in ranking), reverse=True)
  methods = summary["methods"]
  assert set(methods) == {"baseline", "top-1", "best of top-2", "top-2 weighted average",
                          "top-2 multi-task mixture", "oracle"}
  assert methods["oracle"][TARGET][0] >= max(methods[m][TARGET][0] for m in ("top-1", "best of top-2"))
  for name in ("report.md", "transfer_heatmap.png", "task_similarity.png",
               "similarity_vs_transfer.png", "results.json"):
    assert (tmp_path / name).stat().st_size > 0, name
  report = (tmp_path / "report.md").read_text()
  assert "Table 3" in report and f"{stats.critical_r(len(SOURCES)):.3f}" in report  # 0.997
  written = json.loads((tmp_path / "results.json").read_text())
  assert set(written["pearson"]) == {TARGET} and written["pearson"][TARGET]["n"] == len(SOURCES)
  # summarize computed it (NaN r, p here: 3 sources that all score 0), the report only wrote it
  assert json.dumps(written["pearson"]) == json.dumps(summary["pearson"])
  snapshot = json.dumps(summary, default=float)
  transfer.write_report(tmp_path, summary, study)
  assert json.dumps(summary, default=float) == snapshot  # writing the report changes nothing

  def no_tuning(*args, **kwargs):
    raise AssertionError("a finished study must not tune again")
  monkeypatch.setattr(tuner, "tune", no_tuning)
  again = transfer.run_study(tuner, study, tmp_path, vocabulary="test")
  assert again["methods"] == summary["methods"]


def test_a_study_resumed_with_more_sources_reruns_only_what_changed(tuner, tmp_path, monkeypatch):
  families = {n: s.family for n, s in synthetic_tasks.TASKS.items()}
  first = transfer.Study(sources=SOURCES[:2], targets=(TARGET,), seeds=(0,), source_steps=4,
                         top_k=2, families=families)
  transfer.run_study(tuner, first, tmp_path, vocabulary="test")
  tuned = []
  real_tune = tuner.tune
  monkeypatch.setattr(tuner, "tune", lambda task, **kw: tuned.append((task, kw.get("label"))) or
                      real_tune(task, **kw))
  more = dataclasses.replace(first, sources=SOURCES)
  summary = transfer.run_study(tuner, more, tmp_path, vocabulary="test")
  # The new source is tuned and transferred; old transfer and baseline cells are reused; the
  # weighted average is recomputed because the retrieval it used has changed.
  assert (SOURCES[2], "(source)") in tuned and (TARGET, f"from {SOURCES[2]}") in tuned
  assert not [label for _, label in tuned if label in (f"from {SOURCES[0]}", "from baseline")]
  weighted = [json.loads(p.read_text()) for p in (tmp_path / "cells" / TARGET).glob("weighted_top2-*/seed0.json")]
  assert len(weighted) == 2
  assert [top for top in (w["retrieved"] for w in weighted)
          if [tuple(x) for x in top] == [tuple(x) for x in summary["rankings"][TARGET][:2]]]


def test_embedding_seeds_average_the_similarities_of_same_seed_embeddings(tuner, tmp_path,
                                                                         monkeypatch):
  families = {n: s.family for n, s in synthetic_tasks.TASKS.items()}
  study = transfer.Study(sources=SOURCES, targets=(TARGET,), seeds=(0,), source_steps=4, top_k=2,
                         families=families, embedding_seeds=(0, 1))
  summary = transfer.run_study(tuner, study, tmp_path, vocabulary="test")
  library = PromptLibrary(tmp_path / "library")
  assert {(e.task, e.run) for e in library.list()} == {(s, r) for s in SOURCES
                                                       for r in ("seed0", "seed1")}
  assert not library.get(SOURCES[0], "seed1").has("source_prompt")
  assert library.get(SOURCES[0]).run == "seed0"  # the run with the source prompt and its score
  expected = {}
  for run in ("seed0", "seed1"):
    embeddings = np.stack([library.get(s, run).task_embedding() for s in SOURCES])
    mean = embeddings.mean(0)
    query = load_prompt_file(tmp_path / "target_embeddings" / run / f"{TARGET}.npy")
    for source, embedding in zip(SOURCES, embeddings):
      expected.setdefault(source, []).append(
          similarity.similarity(embedding - mean, query - mean, "token_cosine"))
  ranking = summary["rankings"][TARGET]
  # float32 embeddings, means summed in another order: agreement to float32 rounding
  assert dict(ranking) == pytest.approx({s: np.mean(v) for s, v in expected.items()},
                                       rel=1e-5, abs=1e-6)
  assert [v for _, v in ranking] == sorted((v for _, v in ranking), reverse=True)
  assert summary["embedding_seeds"] == [0, 1]
  monkeypatch.setattr(tuner, "tune", lambda *a, **k: pytest.fail("a finished study tuned again"))
  # Recomputed from the same stored embeddings by the same code: equal bit for bit.
  assert transfer.run_study(tuner, study, tmp_path, vocabulary="test")["rankings"] == summary["rankings"]


def _random_library(tuner, path, *, index_last: bool = True) -> PromptLibrary:
  """A library of SOURCES (run seed0) with random prompts; `index_last=False`: the last add
  leaves the index out of date, as a kill between that add and the index update does."""
  library = PromptLibrary(path)
  identity = transfer.identity(tuner, "test")
  rng = np.random.default_rng(0)
  for task in SOURCES:
    library.add(task, "seed0", identity=identity, source_prompt=rng.normal(size=(4, 32)),
                task_embedding=rng.normal(size=(4, 32)),
                reindex=index_last or task != SOURCES[-1])
  return library


def test_rank_sources_puts_a_task_first_for_its_own_embedding(tuner, tmp_path):
  library = _random_library(tuner, tmp_path / "lib")
  query = library.get(SOURCES[1]).task_embedding()
  ranking = retrieval.rank_sources(library, query, "token_cosine", center=False)
  assert ranking[0][0] == SOURCES[1] and ranking[0][1] == pytest.approx(
      float(np.mean(query / np.linalg.norm(query, axis=1, keepdims=True), 0) @
            np.mean(query / np.linalg.norm(query, axis=1, keepdims=True), 0)), rel=1e-5, abs=1e-6)
  # The same arithmetic on the same arrays (one run selected): equal bit for bit.
  assert retrieval.rank_sources(library, {"seed0": query}, "token_cosine", center=False) == ranking
  with pytest.raises(LibraryError, match="no task embedding of run seed1 for synthetic_"):
    retrieval.rank_sources(library, {"seed1": query}, "token_cosine")


def test_a_resumed_library_whose_index_missed_its_last_add_is_reindexed(tuner, tmp_path):
  library = _random_library(tuner, tmp_path / "lib", index_last=False)
  assert not library.index_is_current()
  transfer.build_library(tuner, library, transfer.Study(SOURCES, ("t",)),  # tunes nothing
                         transfer.identity(tuner, "test"))
  assert library.index_is_current()


def test_retrieval_mixture_is_examples_proportional_over_sources_and_target():
  import seqio
  name = transfer.retrieval_mixture(TARGET, SOURCES[:2])
  mixture = seqio.get_mixture_or_task(name)
  assert sorted(t.name for t in mixture.tasks) == sorted([*SOURCES[:2], TARGET])
  sizes = {n: synthetic_tasks.TASKS[n].sizes[0] for n in (*SOURCES[:2], TARGET)}
  assert {t.name: mixture.get_rate(t) for t in mixture.tasks} == pytest.approx(sizes, rel=1e-9)
  lengths = [seqio_tasks.feature_lengths(n) for n in sizes]
  assert seqio_tasks.feature_lengths(name) == {k: max(l[k] for l in lengths) for k in lengths[0]}
  assert transfer.retrieval_mixture(TARGET, SOURCES[:2]) == name  # same sources, same mixture


def test_tune_without_validation_returns_the_final_prompt(tuner, monkeypatch):
  monkeypatch.setattr(tuner, "validate", lambda *a: pytest.fail("validated"))
  run = tuner.tune(SOURCES[0], seed=0, steps=2, validate=False)
  assert run.scores == {} and np.array_equal(run.source_prompt, run.final_prompt)


def test_a_study_resumed_with_another_protocol_is_refused_before_any_tuning(tuner, tmp_path,
                                                                           monkeypatch):
  study = transfer.Study(sources=SOURCES[:1], targets=(TARGET,), seeds=(0,), source_steps=4)
  transfer.run_study(tuner, study, tmp_path, vocabulary="test")
  before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
  monkeypatch.setattr(tuner, "tune", lambda *a, **k: pytest.fail("must refuse before tuning"))
  longer = runner.Tuner(tuner.config, tuner.frozen, dataclasses.replace(tuner.protocol, steps=6),
                        feature_lengths=seqio_tasks.feature_lengths, log=None)
  monkeypatch.setattr(longer, "tune", tuner.tune)
  with pytest.raises(SpotError, match=r"holds another run \(protocol .*'steps': 4.*'steps': 6"):
    transfer.run_study(longer, study, tmp_path, vocabulary="test")
  with pytest.raises(SpotError, match="source_steps 4 -> 5"):
    transfer.run_study(tuner, dataclasses.replace(study, source_steps=5), tmp_path, vocabulary="test")
  assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("change, message", [
    ({"source_steps": 1}, "source_steps 1 is below embedding_step 2"),
    ({"seeds": (0, 0)}, r"seeds must be non-empty and without repeats, got \[0, 0\]"),
    ({"targets": ()}, "targets must be non-empty"),
    ({"top_k": 0}, "top_k must be a positive integer"),
])
def test_bad_study_settings_fail_before_anything_is_written(tuner, tmp_path, change, message):
  study = dataclasses.replace(
      transfer.Study(sources=SOURCES[:1], targets=(TARGET,), seeds=(0,), source_steps=4), **change)
  with pytest.raises(SpotError, match=message):
    transfer.run_study(tuner, study, tmp_path / "out", vocabulary="test")
  assert not (tmp_path / "out").exists()
