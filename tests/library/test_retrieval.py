"""Retrieval from a library: the index on disk gives the rankings of the definition (centring on
the compared embeddings' mean, same-seed runs, both metrics), stale or missing indexes are not
trusted, and the top-k mix uses SPoT's weights."""

import json

import numpy as np
import pytest

from spot_jax.library import index as index_lib
from spot_jax.library import retrieval, similarity
from spot_jax.library.store import (GENERATION_FILE, INDEX_DIR, LIBRARY_FILE, LibraryError,
                                    ModelIdentity, PromptLibrary)

P, E = 5, 6
IDENTITY = ModelIdentity(model="m", frozen_checksum="sha256:0", vocabulary="v", prompt_length=P,
                         embed_dim=E)
TASKS = ("t_a", "t_b", "t_c", "t_d")
RUNS = ("seed0", "seed1")


def _embedding(task: str, run: str) -> np.ndarray:
  # A shared offset per run (the init) plus a task part: what centring is for.
  rng = np.random.default_rng([TASKS.index(task), RUNS.index(run)])
  init = np.random.default_rng(100 + RUNS.index(run)).normal(size=(P, E))
  return (3 * init + rng.normal(size=(P, E))).astype(np.float32)


@pytest.fixture
def lib(tmp_path) -> PromptLibrary:
  lib = PromptLibrary(tmp_path / "lib")
  for task in TASKS:
    for run in RUNS:
      lib.add(task, run, identity=IDENTITY, task_embedding=_embedding(task, run),
              source_prompt=_embedding(task, run) + 1 if run == "seed0" else None,
              metadata={"score": 50.0} if run == "seed0" else None)
  return lib


def _naive(query, metric, center, runs=RUNS, tasks=TASKS):
  """The definition: per run, centre the compared embeddings and the query on their mean."""
  queries = query if isinstance(query, dict) else {None: query}
  sims = {t: [] for t in tasks}
  for run, q in queries.items():
    keys = [(t, r) for t in tasks for r in runs if run in (None, r)]
    stacked = np.stack([_embedding(t, r) for t, r in keys]).astype(np.float64)
    mean = stacked.mean(0) if center else 0.0
    for (t, _), x in zip(keys, stacked):
      sims[t].append(similarity.similarity(x - mean, q - mean, metric))
  return {t: np.mean(v) for t, v in sims.items()}


def _check(ranking, expected):
  assert dict(ranking) == pytest.approx(expected, abs=1e-5)
  assert [v for _, v in ranking] == sorted((v for _, v in ranking), reverse=True)


@pytest.mark.parametrize("metric", similarity.METRICS)
@pytest.mark.parametrize("center", [True, False])
def test_rankings_from_the_index_match_the_definition(lib, metric, center):
  assert lib.index_is_current()
  query = _embedding("t_c", "seed1") + 0.3 * np.random.default_rng(7).normal(size=(P, E))
  for q in ({"seed1": query}, {"seed0": query, "seed1": query}, query):
    _check(retrieval.rank_sources(lib, q, metric, center=center), _naive(q, metric, center))
  # A subset of the sources is centred on its own mean (computed from the stored embeddings).
  some = ("t_a", "t_c", "t_d")
  _check(retrieval.rank_sources(lib, {"seed1": query}, metric, sources=some, center=center),
         _naive({"seed1": query}, metric, center, tasks=some))


def test_centring_on_the_run_finds_the_task_despite_the_init(lib):
  query = _embedding("t_b", "seed0") + 0.1 * np.random.default_rng(3).normal(size=(P, E))
  assert retrieval.rank_sources(lib, {"seed0": query})[0][0] == "t_b"


def test_index_on_disk_equals_one_built_from_the_entries(lib):
  on_disk = index_lib.read(lib.path / INDEX_DIR)
  assert isinstance(on_disk.vectors, np.memmap)  # memory-mapped: only what is used is read
  entries = lib.list()
  built = index_lib.build([(e.task, e.run) for e in entries], lambda i: entries[i].task_embedding(),
                          (P, E))
  assert (on_disk.tasks, on_disk.runs) == (TASKS, RUNS)
  np.testing.assert_array_equal(on_disk.row_task, built.row_task)
  np.testing.assert_array_equal(on_disk.row_run, built.row_run)
  for name in ("embeddings", "means", "vectors"):
    np.testing.assert_array_equal(np.asarray(getattr(on_disk, name)), getattr(built, name))
  np.testing.assert_allclose(built.means[RUNS.index("seed1")],
                             np.mean([_embedding(t, "seed1") for t in TASKS], 0), atol=1e-6)
  np.testing.assert_allclose(built.vectors[index_lib.MODES.index("run"), 1, 0],
                             similarity.prompt_vectors(_embedding("t_a", "seed0") - built.means[0],
                                                       "token_cosine"), atol=1e-6)


def test_add_and_remove_keep_the_index_current_and_reuse_it(lib, monkeypatch):
  query = {"seed0": _embedding("t_d", "seed0")}
  before = retrieval.rank_sources(lib, query)
  # An add reads its own embedding only: the others come from the previous index.
  read = []
  real = type(lib.list()[0]).task_embedding
  monkeypatch.setattr(type(lib.list()[0]), "task_embedding",
                      lambda entry: read.append((entry.task, entry.run)) or real(entry))
  lib.add("t_e", "seed0", identity=IDENTITY, task_embedding=_embedding("t_a", "seed0") * -1)
  assert read == [("t_e", "seed0")] and lib.index_is_current()
  assert "t_e" in dict(retrieval.rank_sources(lib, query))
  lib.remove("t_e", "seed0")
  assert lib.index_is_current() and retrieval.rank_sources(lib, query) == before


def test_a_stale_index_is_not_used(lib):
  query = {"seed0": _embedding("t_d", "seed0")}
  lib.add("t_e", "seed0", identity=IDENTITY, task_embedding=_embedding("t_d", "seed0"),
          reindex=False)
  assert not lib.index_is_current()  # on disk: the index without t_e
  from_entries = retrieval.rank_sources(lib, query)
  assert dict(from_entries)["t_e"] == pytest.approx(dict(from_entries)["t_d"], abs=1e-6)
  lib.reindex()
  assert lib.index_is_current()
  assert dict(retrieval.rank_sources(lib, query)) == pytest.approx(dict(from_entries), abs=1e-6)


def test_a_format_1_library_is_read_and_upgraded_on_its_next_write(lib):
  # What an older spot_jax wrote: format 1, no index, no generation token.
  record = json.loads((lib.path / LIBRARY_FILE).read_text())
  (lib.path / LIBRARY_FILE).write_text(json.dumps({**record, "format": 1}))
  (lib.path / GENERATION_FILE).unlink()
  (lib.path / INDEX_DIR / "index.json").unlink()
  query = {"seed1": _embedding("t_a", "seed1")}
  assert retrieval.rank_sources(lib, query)[0][0] == "t_a" and not lib.index_is_current()
  lib.add("t_e", "seed1", identity=IDENTITY, task_embedding=_embedding("t_b", "seed1"))
  assert json.loads((lib.path / LIBRARY_FILE).read_text())["format"] == 2 and lib.index_is_current()


def test_weighted_prompt_mixes_the_top_k_source_prompts(lib):
  ranking = [("t_b", 0.6), ("t_a", 0.2), ("t_c", -0.1), ("t_d", 0.0)]
  alpha = retrieval.mixing_weights([0.6, 0.2, -0.1])
  np.testing.assert_allclose(alpha, np.array([0.6, 0.2, 1e-6]) / (0.8 + 1e-6), rtol=1e-12)
  mixed = retrieval.weighted_prompt(lib, ranking, 2)
  expected = (0.75 * (_embedding("t_b", "seed0") + 1) + 0.25 * (_embedding("t_a", "seed0") + 1))
  np.testing.assert_allclose(mixed, expected, atol=1e-5)
  np.testing.assert_array_equal(retrieval.weighted_prompt(lib, ranking, 1),
                                _embedding("t_b", "seed0") + 1)


def test_task_similarities_compare_like_rank_sources(lib):
  queries = {"x": {r: _embedding("t_a", r) + 0.5 for r in RUNS}}
  names, matrix = retrieval.task_similarities(lib, queries, TASKS[:3], "token_cosine")
  assert names == ["t_a", "t_b", "t_c", "x (target)"] and matrix.shape == (4, 4)
  ranking = retrieval.rank_sources(lib, queries["x"], "token_cosine", sources=TASKS[:3])
  np.testing.assert_allclose([dict(ranking)[t] for t in TASKS[:3]], matrix[3, :3], atol=1e-5)


def test_errors_name_the_fix(lib, tmp_path):
  with pytest.raises(LibraryError, match=r"has shape \(3, 6\) .* \(5, 6\).*--no_center"):
    retrieval.rank_sources(lib, np.ones((3, E)))
  assert retrieval.rank_sources(lib, np.ones((3, E)), center=False)  # other lengths: uncentred
  with pytest.raises(LibraryError, match="no task embedding of run seed7 for t_a"):
    retrieval.rank_sources(lib, {"seed7": np.ones((P, E))})
  with pytest.raises(LibraryError, match="holds no task_embedding"):
    retrieval.rank_sources(PromptLibrary(tmp_path / "empty"), np.ones((P, E)))
  with pytest.raises(similarity.SimilarityError, match="unknown similarity metric"):
    retrieval.rank_sources(lib, np.ones((P, E)), "l2")
  with pytest.raises(LibraryError, match="t_a.*no source_prompt.*seed1"):
    PromptLibrary(lib.path).remove("t_a", "seed0") or retrieval.weighted_prompt(
        lib, [("t_a", 1.0)], 1)
