"""Reading the real t5x fixture checkpoint, writing t5x checkpoints, and refusing bad ones."""

import shutil

import numpy as np
import pytest
import torch
from transformers import T5ForConditionalGeneration

from hf_reference import hf_logits, random_batch
from spot_jax.checkpoints import load_checkpoint
from spot_jax.checkpoints.hf import write_hf_checkpoint
from spot_jax.checkpoints.t5x import read_t5x_arrays, read_t5x_checkpoint, write_t5x_checkpoint
from spot_jax.errors import CheckpointError
from spot_jax.model import T5, decoding, get_config, param_shapes
from spot_jax.model.params import flatten

TINY = get_config("t5_1_1_tiny")


def test_fixture_loads_all_52_arrays(tiny_t5x_checkpoint):
  arrays, step = read_t5x_arrays(tiny_t5x_checkpoint)
  assert step == 3
  assert len(arrays) == 52
  assert {k: v.shape for k, v in arrays.items()} == param_shapes(TINY)
  assert all(np.isfinite(v).all() and v.dtype == np.float32 for v in arrays.values())
  # Inline (msgpack) and zarr arrays both carry trained, non-constant values.
  assert np.std(arrays["token_embedder/embedding"]) > 0.1
  assert np.abs(arrays["encoder/relpos_bias/rel_embedding"]).max() > 0.1


def test_fixture_exported_to_hf_gives_the_same_logits(tiny_t5x_checkpoint, tmp_path):
  config, params = read_t5x_checkpoint(tiny_t5x_checkpoint, TINY)
  write_hf_checkpoint(tmp_path / "hf", params, config)
  hf = T5ForConditionalGeneration.from_pretrained(tmp_path / "hf").eval()
  torch.testing.assert_close(hf.lm_head.weight.detach(),  # a float32 copy: exact
                             torch.tensor(np.asarray(params["decoder"]["logits_dense"]["kernel"]).T),
                             rtol=0, atol=0)
  inputs, decoder_inputs = random_batch(config.vocab_size, seed=1, in_len=20)
  ours = T5(config).apply({"params": params}, inputs, decoder_inputs)
  np.testing.assert_allclose(np.asarray(ours), hf_logits(hf, inputs, decoder_inputs), atol=1e-4)


def test_fixture_runs_text_end_to_end_with_the_t5_vocabulary(tiny_t5x_checkpoint, t5_vocab_path):
  import seqio
  vocab = seqio.SentencePieceVocabulary(str(t5_vocab_path), extra_ids=100)
  assert vocab.vocab_size == 32100
  config, params = load_checkpoint(tiny_t5x_checkpoint, TINY)
  ids = list(vocab.encode("rte sentence1: A cat sat. sentence2: An animal sat.")) + [1]
  inputs = np.array([ids], np.int32)
  out = np.asarray(decoding.greedy_decode(params, inputs, config=config, max_decode_len=6))
  assert out.shape == (1, 6) and (out < config.vocab_size).all()
  text = vocab.decode([int(t) for t in out[0] if t > 1])
  assert isinstance(text, str)
  labels = np.array([list(vocab.encode(w)) + [1] for w in ("entailment", "contradiction")],
                    dtype=object)
  width = max(map(len, labels))
  candidates = np.array([l + [0] * (width - len(l)) for l in labels], np.int32)
  scores = np.asarray(decoding.rank_classification(params, inputs, candidates, config=config))
  assert scores.shape == (1, 2) and np.isfinite(scores).all() and (scores < 0).all()


def test_t5x_write_read_round_trip_keeps_every_bit(tiny_t5x_checkpoint, tmp_path):
  config, params = read_t5x_checkpoint(tiny_t5x_checkpoint, TINY)
  write_t5x_checkpoint(tmp_path / "ck", params, config=config, step=7)
  arrays, step = read_t5x_arrays(tmp_path / "ck")
  assert step == 7
  original = flatten(params)
  assert set(arrays) == set(original)
  for k in arrays:
    np.testing.assert_array_equal(arrays[k], original[k])
  again, _ = read_t5x_checkpoint(tmp_path / "ck")  # config read from the sidecar
  assert again == config


def test_bf16_arrays_round_trip(tmp_path):
  import ml_dtypes
  config = get_config("t5_1_1_test", param_dtype="bfloat16")
  from spot_jax.model import init_params
  params = init_params(config, 0)
  assert flatten(params)["token_embedder/embedding"].dtype == ml_dtypes.bfloat16
  write_t5x_checkpoint(tmp_path / "bf16", params)
  arrays, _ = read_t5x_arrays(tmp_path / "bf16")
  for k, v in flatten(params).items():
    assert arrays[k].dtype == v.dtype
    np.testing.assert_array_equal(arrays[k].astype(np.float32), np.asarray(v).astype(np.float32))


def _one_line(err: pytest.ExceptionInfo) -> str:
  message = str(err.value)
  assert "\n" not in message
  return message


def test_a_directory_that_is_not_a_checkpoint(tmp_path):
  (tmp_path / "checkpoint_100").mkdir()
  with pytest.raises(CheckpointError) as err:
    read_t5x_arrays(tmp_path)
  assert "no 'checkpoint' file" in _one_line(err) and "checkpoint_100" in str(err.value)
  with pytest.raises(CheckpointError, match="does not exist"):
    read_t5x_arrays(tmp_path / "missing")
  (tmp_path / "junk").mkdir()
  (tmp_path / "junk" / "checkpoint").write_bytes(b"\x00not msgpack at all")
  with pytest.raises(CheckpointError) as err:
    read_t5x_arrays(tmp_path / "junk")
  assert "not a readable t5x checkpoint" in _one_line(err)
  with pytest.raises(CheckpointError, match="neither a t5x checkpoint"):
    load_checkpoint(tmp_path)


def test_a_checkpoint_for_a_different_config(tiny_t5x_checkpoint):
  with pytest.raises(CheckpointError) as err:
    read_t5x_checkpoint(tiny_t5x_checkpoint, get_config("t5_1_1_small"))
  message = _one_line(err)
  assert "does not fit model config 't5_1_1_small'" in message
  assert "mis-shaped" in message and "missing" in message  # 8 layers expected, 2 present


def test_a_truncated_zarr_chunk(tiny_t5x_checkpoint, tmp_path):
  copy = tmp_path / "checkpoint_3"
  shutil.copytree(tiny_t5x_checkpoint, copy)
  copy.chmod(0o755)
  chunk = copy / "target.token_embedder.embedding" / "3.0"
  chunk.parent.chmod(0o755)
  chunk.chmod(0o644)
  chunk.write_bytes(chunk.read_bytes()[:1000])
  with pytest.raises(CheckpointError) as err:
    read_t5x_arrays(copy)
  message = _one_line(err)
  assert "token_embedder/embedding" in message and "corrupt or truncated" in message
