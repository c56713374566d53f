"""Prompt library: round trips, one-model rule, overwrite rules, killed writes, google prompts."""

import json
import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT, fixture_path

from spot_jax.library.store import (FORMAT, GENERATION_FILE, KINDS, LIBRARY_FILE, Entry,
                                    LibraryError, ModelIdentity, PromptLibrary)
from spot_jax.peft import load_prompt_file
from spot_jax.train.exports import ExportInfo, export_prompt

P, E = 4, 8
IDENTITY = ModelIdentity(model="t5_1_1_test", frozen_checksum="sha256:aaaa",
                         vocabulary="vocab.model", prompt_length=P, embed_dim=E)
_PRETRAINED = ("pretrained_prompts", "t5_1_1_lm100k_base")


def _prompt(seed: int, shape=(P, E)) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _files(root) -> dict:
  """{relative path: bytes} of every file under root, '.'-names (work under way) included."""
  root = pathlib.Path(root)
  return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _visible_files(root) -> dict:
  files = _files(root)
  return {k: v for k, v in files.items() if not any(part.startswith(".") for part in k.split("/"))}


def _one_line(excinfo, *needles) -> None:
  msg = str(excinfo.value)
  assert "\n" not in msg
  for needle in needles:
    assert needle in msg, (needle, msg)


@pytest.fixture
def lib(tmp_path) -> PromptLibrary:
  """A library holding task_a/{run1, run2} and task_b/run1."""
  lib = PromptLibrary(tmp_path / "lib")
  lib.add("task_a", "run1", identity=IDENTITY, source_prompt=_prompt(1), task_embedding=_prompt(2),
          metadata={"score": 60.0, "family": "glue", "note": {"lr": 0.3}})
  lib.add("task_a", "run2", identity=IDENTITY, source_prompt=_prompt(3), metadata={"score": 75.5})
  lib.add("task_b", "run1", identity=IDENTITY, task_embedding=_prompt(4))
  return lib


def test_round_trip(lib):
  assert lib.identity == IDENTITY
  assert json.loads((lib.path / LIBRARY_FILE).read_text())["format"] == FORMAT == 2
  entries = lib.list()
  assert [(e.task, e.run) for e in entries] == [("task_a", "run1"), ("task_a", "run2"),
                                                ("task_b", "run1")]
  a1 = lib.get("task_a", "run1")
  for got, want in ((a1.source_prompt(), _prompt(1)), (a1.task_embedding(), _prompt(2))):
    assert got.dtype == np.float32 and got.tobytes() == want.tobytes()
  assert a1.kinds == KINDS and a1.family == "glue" and a1.score == 60.0
  assert a1.metadata["note"] == {"lr": 0.3} and a1.identity == IDENTITY
  sidecar = a1.sidecar("source_prompt")
  assert (sidecar["kind"], sidecar["task"], sidecar["frozen_checksum"],
          sidecar["prompt_length"]) == ("source_prompt", "task_a", "sha256:aaaa", P)
  b1 = lib.get("task_b")
  assert b1.kinds == ("task_embedding",) and b1.score is None
  with pytest.raises(LibraryError) as e:
    b1.source_prompt()
  _one_line(e, "task_b/run1", "no source_prompt", "task_embedding")
  assert lib.list("task_a") == entries[:2]
  assert PromptLibrary(str(lib.path)).list() == entries  # a fresh reader sees the same

  lib.remove("task_a", "run1")
  assert [(e.task, e.run) for e in lib.list()] == [("task_a", "run2"), ("task_b", "run1")]
  assert not [p for p in (lib.path / "entries" / "task_a").iterdir() if p.name.startswith(".")]
  with pytest.raises(LibraryError):
    lib.remove("task_a", "run1")


def test_get_picks_the_best_run_and_names_what_exists(lib):
  assert lib.get("task_a").run == "run2"  # score 75.5 beats 60.0
  lib.add("task_a", "run3", identity=IDENTITY, source_prompt=_prompt(5))  # no score: never best
  assert lib.get("task_a").run == "run2"
  with pytest.raises(LibraryError) as e:
    lib.get("task_c")
  _one_line(e, "'task_c'", "task_a, task_b")
  with pytest.raises(LibraryError) as e:
    lib.get("task_a", "run9")
  _one_line(e, "'run9'", "run1, run2, run3")
  with pytest.raises(LibraryError) as e:
    PromptLibrary(lib.path.parent / "empty").get("task_a")
  _one_line(e, "empty")


def test_stack(lib):
  entries, stacked = lib.stack("task_embedding")
  assert [(e.task, e.run) for e in entries] == [("task_a", "run1"), ("task_b", "run1")]
  assert stacked.shape == (2, P, E) and stacked.dtype == np.float32
  np.testing.assert_array_equal(stacked[1], _prompt(4))
  assert lib.stack("source_prompt")[1].shape == (2, P, E)
  with pytest.raises(LibraryError):
    lib.stack("final_prompt")
  with pytest.raises(LibraryError):
    PromptLibrary(lib.path.parent / "empty").stack("task_embedding")


def test_add_run_reads_the_exports(tmp_path):
  model_dir = tmp_path / "runs" / "rte_seed0"
  info = ExportInfo(task="glue_rte_v2", model="t5_1_1_test", frozen_checksum="sha256:aaaa",
                    vocabulary="vocab.model", seed=0)
  export_prompt(model_dir / "exports", "task_embedding", _prompt(1), info, step=10)
  export_prompt(model_dir / "exports", "source_prompt", _prompt(2), info, step=300,
                metrics={"accuracy": 71.2}, score=71.2)
  lib = PromptLibrary(tmp_path / "lib")
  entry = lib.add_run(model_dir, family="glue")
  assert (entry.task, entry.run, entry.family, entry.score) == (
      "glue_rte_v2", "rte_seed0", "glue", 71.2)
  assert lib.identity == IDENTITY and lib.list() == [entry]
  assert entry.task_embedding().tobytes() == _prompt(1).tobytes()
  assert entry.source_prompt().tobytes() == _prompt(2).tobytes()
  assert entry.sidecar("source_prompt")["step"] == 300
  assert entry.sidecar("source_prompt")["metrics"] == {"accuracy": 71.2}
  assert lib.add_run(model_dir, run="again").run == "again"
  with pytest.raises(LibraryError) as e:
    lib.add_run(tmp_path / "runs" / "missing")
  _one_line(e, "neither source_prompt.npy nor task_embedding.npy")


def test_refuses_another_model_or_shape_and_changes_nothing(lib):
  before = _files(lib.path)
  other = ModelIdentity(**{**IDENTITY.to_dict(), "frozen_checksum": "sha256:bbbb"})
  with pytest.raises(LibraryError) as e:
    lib.add("task_c", "run1", identity=other, source_prompt=_prompt(9))
  _one_line(e, "sha256:bbbb", "sha256:aaaa", "frozen_checksum")
  with pytest.raises(LibraryError) as e:
    lib.add("task_c", "run1", identity=IDENTITY, source_prompt=_prompt(9, (P + 1, E)))
  _one_line(e, f"({P + 1}, {E})", f"({P}, {E})")
  wider = ModelIdentity(**{**IDENTITY.to_dict(), "embed_dim": E * 2})
  with pytest.raises(LibraryError) as e:
    lib.add("task_c", "run1", identity=wider, source_prompt=_prompt(9, (P, E * 2)))
  _one_line(e, "embed_dim", str(E * 2), str(E))
  for bad in (dict(), dict(source_prompt=_prompt(9), metadata={"kinds": []}),
              dict(source_prompt=_prompt(9), metadata={"x": object()})):
    with pytest.raises(LibraryError):
      lib.add("task_c", "run1", identity=IDENTITY, **bad)
  for task, run in (("../x", "r"), ("t", ".hidden"), ("t", "a/b"), ("", "r")):
    with pytest.raises(LibraryError):
      lib.add(task, run, identity=IDENTITY, source_prompt=_prompt(9))
  assert _files(lib.path) == before


def test_refused_first_add_writes_nothing(tmp_path):
  with pytest.raises(LibraryError):
    PromptLibrary(tmp_path / "lib").add("t", "r", identity=IDENTITY,
                                        source_prompt=np.zeros((P, E + 1)))
  assert not (tmp_path / "lib").exists()


def test_overwrite_rules(lib):
  before = _files(lib.path)
  with pytest.raises(LibraryError) as e:
    lib.add("task_a", "run1", identity=IDENTITY, source_prompt=_prompt(9))
  _one_line(e, "task_a/run1", "overwrite=True")
  assert _files(lib.path) == before
  entry = lib.add("task_a", "run1", identity=IDENTITY, source_prompt=_prompt(9), overwrite=True)
  assert entry.kinds == ("source_prompt",)  # replaced whole: the old task embedding is gone
  assert lib.get("task_a", "run1") == entry
  assert entry.source_prompt().tobytes() == _prompt(9).tobytes()
  assert not (entry.path / "task_embedding.npy").exists()
  assert not [p for p in (lib.path / "entries" / "task_a").iterdir() if p.name.startswith(".")]


# Adds task_a/RUN in a child process that is killed while it writes: write_prompt sleeps after the
# first .npy + .json have been written into the entry's temporary directory.
_KILLED_ADD = """
import json, sys, time
import numpy as np
from spot_jax.library import store
real = store.write_prompt
def slow(*args, **kwargs):
  out = real(*args, **kwargs)
  print("writing", flush=True)
  time.sleep(600)
  return out
store.write_prompt = slow
identity = store.ModelIdentity(**json.loads(sys.argv[2]))
store.PromptLibrary(sys.argv[1]).add("task_a", sys.argv[3], identity=identity, overwrite=True,
    source_prompt=np.full((identity.prompt_length, identity.embed_dim), 7.0),
    task_embedding=np.zeros((identity.prompt_length, identity.embed_dim)))
"""


@pytest.mark.parametrize("run", ["run1", "run_new"])
def test_a_killed_add_leaves_the_library_unchanged(lib, run):
  entries, files = lib.list(), _visible_files(lib.path)
  child = subprocess.Popen([sys.executable, "-c", _KILLED_ADD, str(lib.path),
                            json.dumps(IDENTITY.to_dict()), run],
                           cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    line = child.stdout.readline()
    assert line == "writing\n", child.stderr.read() if child.poll() is not None else line
  finally:
    child.send_signal(signal.SIGKILL)
    child.wait()
  assert child.returncode == -signal.SIGKILL
  # The half-written entry is there, under a '.'-name that readers skip. The add had renewed the
  # generation token first, so retrieval no longer trusts the index (it reads the entries).
  assert [p.name for p in (lib.path / "entries" / "task_a").iterdir() if p.name.startswith(".")]
  after = _visible_files(lib.path)
  assert after.pop(GENERATION_FILE) != files.pop(GENERATION_FILE)
  assert lib.list() == entries and after == files
  assert not lib.index_is_current()
  kept = PromptLibrary(lib.path).get("task_a", "run1")
  assert kept.source_prompt().tobytes() == _prompt(1).tobytes()
  entry = lib.add("task_a", run, identity=IDENTITY, source_prompt=_prompt(9), overwrite=True)
  assert lib.get("task_a", run) == entry and entry.source_prompt().tobytes() == _prompt(9).tobytes()
  assert lib.index_is_current()


def test_import_google_prompts(tmp_path):
  paths = {task: fixture_path(*_PRETRAINED, f"{task}.npy") for task in ("sst2", "mrpc", "rte")}
  identity = ModelIdentity(model="t5_1_1_lm100k_base", frozen_checksum="sha256:released",
                           vocabulary="gs://t5-data/vocabs/cc_all.32000/sentencepiece.model",
                           prompt_length=100, embed_dim=768)
  lib = PromptLibrary(tmp_path / "lib")
  for task, path in paths.items():
    entry = lib.import_google_npy(path, task, "google", identity=identity)
    assert entry.metadata["source_file"] == str(path)
  entries, stacked = lib.stack("source_prompt")
  assert [e.task for e in entries] == ["mrpc", "rte", "sst2"]
  assert stacked.shape == (3, 100, 768) and stacked.dtype == np.float32
  for entry, prompt in zip(entries, stacked):
    np.testing.assert_array_equal(prompt, load_prompt_file(paths[entry.task]))
  assert isinstance(lib.get("rte"), Entry)
  with pytest.raises(LibraryError) as e:
    lib.import_google_npy(paths["rte"], "rte", "small", identity=identity, kind="final_prompt")
  _one_line(e, "final_prompt")


def test_add_export_takes_the_model_from_the_sidecar_and_names_what_is_missing(tmp_path):
  from spot_jax.train.exports import write_prompt
  identity = {k: v for k, v in IDENTITY.to_dict().items() if k not in ("prompt_length", "embed_dim")}
  write_prompt(tmp_path / "p.npy", _prompt(1), {"kind": "checkpoint_prompt", "task": "task_a",
                                                "seed": 3, **identity})
  lib = PromptLibrary(tmp_path / "lib")
  with pytest.raises(LibraryError) as e:
    lib.add_export(tmp_path / "p.npy")
  _one_line(e, "checkpoint_prompt export", "--kind")
  entry = lib.add_export(tmp_path / "p.npy", ["task_embedding", "source_prompt"])
  assert (entry.task, entry.run, entry.kinds, entry.metadata["seed"]) == ("task_a", "p", KINDS, 3)
  assert lib.identity == IDENTITY and entry.score is None
  write_prompt(tmp_path / "old.npy", _prompt(2), {"kind": "checkpoint_prompt", "task": "task_a"})
  with pytest.raises(LibraryError) as e:
    lib.add_export(tmp_path / "old.npy", ["task_embedding"])
  _one_line(e, "old.npy lacks model, frozen_checksum, vocabulary", "spot-jax export-prompt")


def test_add_entry_copies_an_entry_of_another_library(lib, tmp_path):
  copy = PromptLibrary(tmp_path / "copy")
  original = lib.get("task_a", "run1")
  entry = copy.add_entry(original)
  assert (entry.kinds, entry.metadata) == (original.kinds, original.metadata)
  assert entry.source_prompt().tobytes() == original.source_prompt().tobytes()
  assert entry.sidecar("task_embedding")["kind"] == "task_embedding"
  assert copy.index_is_current()
