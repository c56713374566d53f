"""The library released with spot_jax: 16 sources x 3 runs of the shipped model, its index current,
and retrieval + a target init from it on a fresh install (no source tuned)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spot_jax import cli, embedded
from spot_jax.checkpoints import load_checkpoint
from spot_jax.embedded import tasks as synthetic_tasks
from spot_jax.embedded.protocol import DEMO_PROTOCOL
from spot_jax.library import retrieval
from spot_jax.embedded.released import PATH, RUNS, released_library
from spot_jax.peft import load_prompt_file, save_prompt_file
from spot_jax.train.exports import params_checksum


@pytest.fixture(scope="module")
def library():
  return released_library()


def test_holds_every_source_for_every_run_of_the_shipped_model(library):
  config, params = load_checkpoint(embedded.model_dir())
  identity = library.identity
  assert identity.frozen_checksum == params_checksum(params)
  assert (identity.model, identity.shape) == (config.name, (DEMO_PROTOCOL.prompt_length,
                                                            config.emb_dim))
  entries = library.list()
  assert len(synthetic_tasks.SOURCE_TASKS) == 16
  assert {(e.task, e.run) for e in entries} == {(t, r) for t in synthetic_tasks.SOURCE_TASKS
                                                for r in RUNS}
  for e in entries:
    assert e.kinds == (("source_prompt", "task_embedding") if e.run == "seed0"
                       else ("task_embedding",)), (e.task, e.run)
    assert e.family == synthetic_tasks.TASKS[e.task].family
  assert all(e.score > 0 for e in entries if e.run == "seed0")
  record = json.loads((PATH / "release.json").read_text())
  assert record["sources"] == list(synthetic_tasks.SOURCE_TASKS) and record["runs"] == list(RUNS)
  assert sum(p.stat().st_size for p in PATH.rglob("*") if p.is_file()) <= 2e6
  assert library.index_is_current()  # retrieval reads the index, not the 64 prompt files


def test_retrieve_ranks_over_it_and_gives_a_target_init(library, tmp_path, capsys):
  task = synthetic_tasks.SOURCE_TASKS[5]
  query = library.get(task, "seed1").task_embedding()
  noisy = query + 0.05 * np.random.default_rng(0).normal(size=query.shape).astype(np.float32)
  ranking = retrieval.rank_sources(library, {"seed1": noisy})
  assert len(ranking) == 16 and ranking[0][0] == task
  save_prompt_file(tmp_path / "q.npy", noisy)
  # No LIBRARY_DIR: the released library.
  assert cli.main(["retrieve", str(tmp_path / "q.npy"), "--run", "seed1", "-k", "3",
                   "--save_prompt", str(tmp_path / "init.npy")]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert [line.split()[1] for line in lines[:3]] == [t for t, _ in ranking[:3]]
  init = load_prompt_file(tmp_path / "init.npy")
  np.testing.assert_array_equal(init, library.get(task, "seed0").source_prompt())
  assert cli.main(["library", "list", "--task", task]) == 0
  assert [line.split()[:2] for line in capsys.readouterr().out.splitlines()] == [
      [task, run] for run in RUNS]
