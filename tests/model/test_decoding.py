"""Greedy = HF generate; beam search is exact where it can be; rank classification = scoring."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from hf_reference import make_hf_model, random_batch, to_ours
from spot_jax.model import decoding


@pytest.fixture(scope="module")
def hf_and_ours():
  hf = make_hf_model("1.1", seed=3)
  with torch.no_grad():  # make EOS likely so that some sequences finish early and some do not
    hf.lm_head.weight[1] = 2.0 * hf.lm_head.weight[2]
  config, params = to_ours(hf)
  return hf, config, params


def test_greedy_matches_hf_generate(hf_and_ours):
  hf, config, params = hf_and_ours
  inputs, _ = random_batch(config.vocab_size, seed=4, batch=6, in_len=14)
  ours = np.asarray(decoding.greedy_decode(params, jnp.asarray(inputs), config=config,
                                           max_decode_len=12))
  with torch.no_grad():
    # use_cache=False: HF's cache assumes as many decoder as encoder layers, ours differ here.
    ref = hf.generate(input_ids=torch.tensor(inputs), attention_mask=torch.tensor(inputs > 0).long(),
                      do_sample=False, num_beams=1, max_new_tokens=12, use_cache=False).numpy()
  ref = ref[:, 1:]  # drop the decoder start token
  ref = np.pad(ref, ((0, 0), (0, 12 - ref.shape[1])))
  np.testing.assert_array_equal(ours, ref)
  finished = (ours == decoding.EOS_ID).any(axis=1)
  assert finished.any() and not finished.all(), "the test should cover both kinds of sequence"


def test_beam_size_one_is_greedy_and_beams_are_sorted(hf_and_ours):
  _, config, params = hf_and_ours
  inputs, _ = random_batch(config.vocab_size, seed=5, batch=4, in_len=10)
  greedy = decoding.greedy_decode(params, inputs, config=config, max_decode_len=8)
  one = decoding.beam_search(params, inputs, config=config, beam_size=1, max_decode_len=8)
  np.testing.assert_array_equal(np.asarray(one.sequences[:, 0]), np.asarray(greedy))
  beams = decoding.beam_search(params, inputs, config=config, beam_size=4, max_decode_len=8)
  scores = np.asarray(beams.scores)
  assert np.all(np.diff(scores, axis=1) <= 0)
  assert np.all(scores[:, 0] >= np.asarray(one.scores[:, 0]) - 1e-5)
  # Each reported score is the model's log-likelihood of the reported sequence (where the scorer,
  # which reads 0 as padding, can score it).
  sequences = np.asarray(beams.sequences)
  checked = 0
  for k in range(4):
    rescored = np.asarray(decoding.score_targets(params, inputs, sequences[:, k], config=config))
    ok = ~np.array([_has_inner_pad(s) for s in sequences[:, k]])
    np.testing.assert_allclose(rescored[ok], scores[ok, k], atol=1e-4)
    checked += ok.sum()
  assert checked >= 8


def _has_inner_pad(seq: np.ndarray) -> bool:
  """True if token 0 was generated as a real token (before EOS, or anywhere without EOS)."""
  seq = list(seq)
  body = seq[:seq.index(decoding.EOS_ID)] if decoding.EOS_ID in seq else seq
  return 0 in body


def _all_sequences(vocab: int, length: int, eos: int) -> np.ndarray:
  """Every distinct output of length <= `length`: EOS-terminated ones, then padded with 0."""
  seqs = []
  for n in range(1, length + 1):
    for body in itertools.product([t for t in range(vocab) if t != eos], repeat=n - 1):
      seqs.append(list(body) + [eos] + [0] * (length - n))
  seqs += [list(s) for s in itertools.product([t for t in range(vocab) if t != eos], repeat=length)]
  return np.array(seqs, np.int32)


def test_wide_beam_search_is_exhaustive_search():
  # A 6-token vocabulary and 3 steps: with beams >= all prefixes, beam search must return the
  # exact best sequences, which we find by scoring every possible output.
  hf = make_hf_model("1.0", seed=7, vocab_size=6)
  config, params = to_ours(hf)
  inputs, _ = random_batch(6, seed=8, batch=2, in_len=7)
  k = 36
  beams = decoding.beam_search(params, inputs, config=config, beam_size=k, max_decode_len=3)
  candidates = _all_sequences(6, 3, decoding.EOS_ID)
  scores = np.asarray(decoding.rank_classification(params, inputs, candidates, config=config))
  # Token 0 inside a sequence would be read as padding by the scorer: compare the best sequences
  # without one, found by exhaustive scoring and by the beam.
  for b in range(2):
    valid = [i for i, s in enumerate(candidates) if not _has_inner_pad(s)]
    best = np.sort(scores[b, valid])[::-1][:5]
    beam_ok = [j for j in range(k) if not _has_inner_pad(np.asarray(beams.sequences[b, j]))][:5]
    np.testing.assert_allclose(np.asarray(beams.scores[b, beam_ok]), best, atol=1e-4)


def test_rank_classification_equals_per_candidate_scoring(hf_and_ours):
  _, config, params = hf_and_ours
  inputs, _ = random_batch(config.vocab_size, seed=9, batch=3, in_len=9)
  candidates = np.array([[5, 6, 1, 0], [7, 1, 0, 0], [8, 9, 10, 1]], np.int32)
  peft = {"prompt": jnp.asarray(np.random.RandomState(0).randn(4, config.emb_dim).astype(np.float32))}
  ranked = np.asarray(decoding.rank_classification(params, inputs, candidates, config=config,
                                                   peft=peft))
  assert ranked.shape == (3, 3)
  for c in range(3):
    targets = np.broadcast_to(candidates[c], (3, 4))
    direct = decoding.score_targets(params, inputs, targets, config=config, peft=peft)
    np.testing.assert_allclose(ranked[:, c], np.asarray(direct), atol=1e-4)
  per_example = np.broadcast_to(candidates, (3, 3, 4))
  np.testing.assert_allclose(
      np.asarray(decoding.rank_classification(params, inputs, per_example, config=config,
                                              peft=peft)), ranked, atol=1e-5)
