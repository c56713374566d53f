"""The `spot-jax` command line: help, version, convert (HF -> t5x -> HF), smoke, one-line errors,
retrieve and the library subcommands."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from transformers import T5ForConditionalGeneration

from hf_reference import hf_logits, make_hf_model, random_batch
from spot_jax import cli


def test_help_and_version(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["--help"])
  assert exit_info.value.code == 0
  out = capsys.readouterr().out
  for command in ("version", "convert", "smoke"):
    assert command in out
  assert cli.main(["version"]) == 0
  assert capsys.readouterr().out.startswith("spot-jax 0.")


def test_console_script_is_installed():
  # The installed entry point, in a fresh process, as a user runs it.
  bin_dir = __import__("pathlib").Path(sys.executable).parent
  out = subprocess.run([str(bin_dir / "spot-jax"), "version"], capture_output=True, text=True,
                       check=True).stdout
  assert out.startswith("spot-jax ")


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_convert_hf_to_t5x_to_hf_reproduces_hf_logits(version, tmp_path, capsys):
  original = make_hf_model(version, seed=11)
  original.save_pretrained(tmp_path / "hf")
  assert cli.main(["convert", "--from", "hf", "--to", "t5x", str(tmp_path / "hf"),
                   str(tmp_path / "t5x")]) == 0
  assert (tmp_path / "t5x" / "checkpoint").exists()
  assert cli.main(["convert", "--from", "t5x", "--to", "hf", str(tmp_path / "t5x"),
                   str(tmp_path / "hf2")]) == 0
  assert "converted t5x" in capsys.readouterr().out
  config = json.loads((tmp_path / "hf2" / "config.json").read_text())
  assert config["num_layers"] != config["num_decoder_layers"]
  assert config["num_heads"] * config["d_kv"] != config["d_model"]
  restored = T5ForConditionalGeneration.from_pretrained(tmp_path / "hf2").eval()
  inputs, decoder_inputs = random_batch(config["vocab_size"], seed=12)
  np.testing.assert_allclose(hf_logits(restored, inputs, decoder_inputs),
                             hf_logits(original, inputs, decoder_inputs), atol=1e-5)


def test_convert_errors_are_one_line_with_exit_2(tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  assert cli.main(["convert", "--from", "t5x", "--to", "hf", str(tmp_path / "empty"),
                   str(tmp_path / "out")]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "no 'checkpoint' file" in err and "Traceback" not in err
  assert not (tmp_path / "out").exists()  # nothing written half
  assert cli.main(["convert", "--from", "hf", "--to", "t5x", str(tmp_path / "empty"),
                   str(tmp_path / "out")]) == 2
  assert "no config.json" in capsys.readouterr().err


def test_convert_refuses_to_overwrite(tmp_path, capsys):
  make_hf_model("1.1").save_pretrained(tmp_path / "hf")
  (tmp_path / "t5x").mkdir()
  args = ["convert", "--from", "hf", "--to", "t5x", str(tmp_path / "hf"), str(tmp_path / "t5x")]
  assert cli.main(args) == 2
  assert "already exists" in capsys.readouterr().err
  assert cli.main(args + ["--overwrite"]) == 0
  assert (tmp_path / "t5x" / "checkpoint").exists()


def test_smoke_runs_on_random_weights(capsys):
  assert cli.main(["smoke", "--prompt_length", "3", "--beam_size", "2", "--max_decode_len", "4"]) == 0
  out = capsys.readouterr().out
  assert "rank classification ->" in out and "beam[0]" in out


def test_retrieve_ranks_a_library_and_compares_one_run_when_asked(tmp_path, capsys):
  from spot_jax.library.store import ModelIdentity, PromptLibrary
  from spot_jax.peft import save_prompt_file
  library = PromptLibrary(tmp_path / "lib")
  identity = ModelIdentity(model="m", frozen_checksum="c", vocabulary="v", prompt_length=3,
                           embed_dim=4)
  rng = np.random.default_rng(0)
  query = rng.normal(size=(3, 4)).astype(np.float32)
  for task, run, embedding in [("near", "seed0", query + 0.01), ("far", "seed0", -query),
                               ("near", "seed1", -query), ("far", "seed1", query)]:
    library.add(task, run, identity=identity, task_embedding=embedding)
  save_prompt_file(tmp_path / "q.npy", query)
  assert cli.main(["retrieve", str(tmp_path / "lib"), str(tmp_path / "q.npy"), "--run", "seed0",
                   "--no_center", "--metric", "avg_cosine"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert [line.split()[1] for line in lines] == ["near", "far"]
  assert float(lines[0].split()[2]) == pytest.approx(1.0, abs=1e-3)
  assert cli.main(["retrieve", str(tmp_path / "lib"), str(tmp_path / "q.npy"), "--run", "seed2"]) == 2
  assert "no task embedding of run seed2" in capsys.readouterr().err


def test_library_add_of_an_export_prompt_output_then_list_retrieve_export_remove(tmp_path, capsys,
                                                                                monkeypatch):
  # A tiny training run (tests/train/toy_run.gin, 10 steps): checkpoints at steps 0 and 10.
  from spot_jax.library.store import PromptLibrary
  from spot_jax.train.exports import read_export
  toy_gin = str(pathlib.Path(__file__).parent / "train" / "toy_run.gin")
  run = tmp_path / "run"
  assert cli.main(["train", "--module", "toy_task", f"--gin_file={toy_gin}",
                   f"--gin.MODEL_DIR='{run}'", "--gin.train.num_train_steps=10"]) == 0
  monkeypatch.chdir(tmp_path)  # relative paths, as a user types them (orbax wants absolute ones)
  assert cli.main(["export-prompt", "run", "p10.npy"]) == 0
  prompt, sidecar = read_export(tmp_path / "p10.npy")
  assert sidecar["kind"] == "checkpoint_prompt" and sidecar["task"] == "spot_toy_contains_a"
  lib = str(tmp_path / "lib")
  capsys.readouterr()
  # The sidecar says which model; the kind of a checkpoint prompt is the user's to say.
  assert cli.main(["library", "add", lib, str(tmp_path / "p10.npy")]) == 2
  assert "checkpoint_prompt export; say what it is with kinds= (--kind)" in capsys.readouterr().err
  assert cli.main(["library", "add", lib, str(tmp_path / "p10.npy"), "--kind", "task_embedding",
                   "--run", "seed0"]) == 0
  assert cli.main(["library", "add", lib, str(tmp_path / "p10.npy"), "--kind", "task_embedding",
                   "--kind", "source_prompt", "--task", "other_task", "--run", "seed0"]) == 0
  assert cli.main(["library", "add", lib, str(run), "--family", "toy"]) == 0  # the run's exports
  out = capsys.readouterr().out
  assert "added spot_toy_contains_a/seed0 (task_embedding)" in out
  assert "added spot_toy_contains_a/run (source_prompt, task_embedding)" in out
  entry = PromptLibrary(lib).get("spot_toy_contains_a", "seed0")
  np.testing.assert_array_equal(entry.task_embedding(), prompt)
  assert entry.identity.model == "t5_1_1_test" and entry.identity.vocabulary == "byte"

  assert cli.main(["library", "list", lib]) == 0
  captured = capsys.readouterr()
  rows = [line.split() for line in captured.out.splitlines()]
  assert [row[:2] for row in rows] == [["other_task", "seed0"], ["spot_toy_contains_a", "run"],
                                       ["spot_toy_contains_a", "seed0"]]
  assert rows[1][-1] == "toy" and "3 entries of 2 tasks" in captured.err
  assert "index current" in captured.err

  assert cli.main(["retrieve", lib, str(tmp_path / "p10.npy"), "--run", "seed0",
                   "--save_prompt", str(tmp_path / "init.npy")]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert sorted(line.split()[1] for line in lines[:2]) == ["other_task", "spot_toy_contains_a"]
  np.testing.assert_array_equal(np.load(tmp_path / "init.npy"), prompt)  # top-1: either is p10

  assert cli.main(["library", "export-peft", lib, "other_task", str(tmp_path / "peft"),
                   "--base_model", "t5-test"]) == 0
  config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
  assert (config["num_virtual_tokens"], config["base_model_name_or_path"]) == (8, "t5-test")
  assert cli.main(["library", "export-peft", lib, "other_task", str(tmp_path / "peft"),
                   "--base_model", "t5-test"]) == 2
  assert "already exists; choose another directory or pass overwrite=True (--overwrite" in (
      capsys.readouterr().err)

  assert cli.main(["library", "remove", lib, "other_task", "seed0"]) == 0
  assert cli.main(["library", "remove", lib, "other_task", "seed0"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "no entry for task 'other_task'" in err
  assert [e.task for e in PromptLibrary(lib).list()] == ["spot_toy_contains_a"] * 2


def test_library_import_google_and_reindex(tmp_path, capsys):
  from conftest import fixture_path
  from spot_jax.library.store import PromptLibrary
  rte = fixture_path("pretrained_prompts", "t5_1_1_lm100k_base", "rte.npy")
  lib = str(tmp_path / "lib")
  assert cli.main(["library", "import-google", lib, str(rte), "--task", "rte"]) == 2
  assert "a new library: say which model" in capsys.readouterr().err
  assert cli.main(["library", "import-google", lib, str(rte), "--task", "rte",
                   "--model", "t5_1_1_lm100k_base", "--frozen_checksum", "sha256:released",
                   "--vocabulary", "cc_all.32000", "--kind", "task_embedding"]) == 0
  # The second prompt is vouched for as the library's model.
  assert cli.main(["library", "import-google", lib, str(rte), "--task", "rte2",
                   "--kind", "task_embedding"]) == 0
  library = PromptLibrary(lib)
  assert library.identity.shape == (100, 768) and len(library.list()) == 2
  library.add("rte3", "google", identity=library.identity, reindex=False,
              task_embedding=library.get("rte").task_embedding())
  assert not library.index_is_current()
  assert cli.main(["library", "reindex", lib]) == 0 and library.index_is_current()
