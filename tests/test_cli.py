"""The `spot-jax` command line: help, version, convert (HF -> t5x -> HF), smoke, one-line errors."""

import json
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
