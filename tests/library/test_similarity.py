"""Task-embedding similarity: the one-dot-product identities against the paper's definitions."""

from __future__ import annotations

import numpy as np
import pytest

from spot_jax.errors import SpotError
from spot_jax.library import similarity as sim
from spot_jax.library.similarity import SimilarityError


def naive(a: np.ndarray, b: np.ndarray, metric: str) -> float:
  """The paper's definitions in float64, with explicit loops over tokens."""
  a, b = a.astype(np.float64), b.astype(np.float64)
  if metric == "avg_cosine":
    ma = sum(a[i] for i in range(len(a))) / len(a)
    mb = sum(b[j] for j in range(len(b))) / len(b)
    return float(ma @ mb / (np.linalg.norm(ma) * np.linalg.norm(mb)))
  total = 0.0
  for i in range(len(a)):
    for j in range(len(b)):
      total += a[i] @ b[j] / (np.linalg.norm(a[i]) * np.linalg.norm(b[j]))
  return total / (len(a) * len(b))


def random_prompt(rng: np.random.Generator, length: int, embed: int = 16) -> np.ndarray:
  # A shared offset makes the similarities spread out instead of all being ~0.
  return (rng.normal(size=(length, embed)) + rng.normal(size=embed)).astype(np.float32)


@pytest.mark.parametrize("metric", sim.METRICS)
def test_identity_matches_naive_definition_for_different_lengths(metric):
  rng = np.random.default_rng(0)
  for len_a, len_b in [(1, 1), (3, 7), (10, 4), (20, 20)]:
    a, b = random_prompt(rng, len_a), random_prompt(rng, len_b)
    assert sim.similarity(a, b, metric) == pytest.approx(naive(a, b, metric), abs=1e-6)


@pytest.mark.parametrize("metric", sim.METRICS)
def test_similarity_matrix_matches_naive_with_ragged_prompts(metric):
  rng = np.random.default_rng(1)
  set_a = [random_prompt(rng, n) for n in (2, 5, 9)]
  set_b = rng.normal(size=(4, 6, 16)).astype(np.float32)
  got = sim.similarity_matrix(set_a, set_b, metric)
  want = [[naive(a, b, metric) for b in set_b] for a in set_a]
  assert got.shape == (3, 4)
  np.testing.assert_allclose(got, want, atol=1e-6)


def test_prompt_vectors_shapes_chunks_and_dtype():
  rng = np.random.default_rng(2)
  prompts = rng.normal(size=(7, 5, 8))  # float64 in, float32 out
  for metric in sim.METRICS:
    whole = sim.prompt_vectors(prompts, metric)
    assert whole.shape == (7, 8) and whole.dtype == np.float32
    np.testing.assert_allclose(sim.prompt_vectors(prompts, metric, chunk_size=3), whole, atol=1e-7)
    np.testing.assert_allclose(sim.prompt_vectors(prompts[4], metric), whole[4], atol=1e-7)
  # avg_cosine vectors are unit; token_cosine vectors are means of unit tokens, at most 1 long.
  np.testing.assert_allclose(np.linalg.norm(sim.prompt_vectors(prompts, "avg_cosine"), axis=1), 1,
                             rtol=1e-6)
  assert (np.linalg.norm(sim.prompt_vectors(prompts, "token_cosine"), axis=1) < 1).all()


def test_token_cosine_is_invariant_to_token_scaling():
  rng = np.random.default_rng(3)
  a, b = random_prompt(rng, 6), random_prompt(rng, 4)
  scaled = a * rng.uniform(0.01, 100, size=(6, 1)).astype(np.float32)
  assert sim.similarity(scaled, b, "token_cosine") == pytest.approx(
      sim.similarity(a, b, "token_cosine"), abs=1e-6)
  # ...which the cosine of average tokens is not: scaling one token moves the average.
  assert abs(sim.similarity(scaled, b, "avg_cosine") - sim.similarity(a, b, "avg_cosine")) > 1e-3


def test_zero_tokens_give_zero_not_nan():
  a = np.zeros((3, 4), np.float32)
  b = np.ones((2, 4), np.float32)
  half = np.concatenate([np.zeros((1, 4)), np.ones((1, 4))]).astype(np.float32)
  for metric in sim.METRICS:
    assert sim.similarity(a, b, metric) == 0.0
  # The zero token counts in the token mean: mean_ij cos = (0 + 1) / 2.
  assert sim.similarity(half, b, "token_cosine") == pytest.approx(0.5, abs=1e-6)
  assert sim.similarity(half, b, "avg_cosine") == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("metric", sim.METRICS)
def test_rank_orders_like_naive_similarities(metric):
  rng = np.random.default_rng(4)
  library = [random_prompt(rng, int(rng.integers(1, 8))) for _ in range(40)]
  query = random_prompt(rng, 5)
  naive_scores = np.array([naive(query, p, metric) for p in library])
  indices, scores = sim.rank(sim.prompt_vectors(query, metric), sim.prompt_vectors(library, metric))
  np.testing.assert_array_equal(indices, np.argsort(-naive_scores, kind="stable"))
  np.testing.assert_allclose(scores, naive_scores[indices], atol=1e-6)
  for k in (0, 1, 5, 40, 100):
    top, top_scores = sim.rank(sim.prompt_vectors(query, metric),
                               sim.prompt_vectors(library, metric), k=k)
    np.testing.assert_array_equal(top, indices[:k])
    np.testing.assert_array_equal(top_scores, scores[:k])


def test_rank_breaks_ties_by_index():
  # Integer-valued vectors: every score is exact whatever order BLAS sums in.
  library = np.array([[1, 0], [2, 0], [1, 0], [0, 1], [2, 0], [1, 0], [2, 0]], np.float32)
  query = np.array([1, 0], np.float32)
  indices, scores = sim.rank(query, library)
  np.testing.assert_array_equal(indices, [1, 4, 6, 0, 2, 5, 3])
  np.testing.assert_array_equal(scores, [2, 2, 2, 1, 1, 1, 0])
  for k in range(len(library) + 1):  # the boundary can fall inside a run of ties
    np.testing.assert_array_equal(sim.rank(query, library, k=k)[0], indices[:k])
  assert sim.rank(query, library, k=2)[0].dtype == np.int64


def test_rank_does_not_convert_the_library():
  library = np.random.default_rng(5).normal(size=(30, 8)).astype(np.float32)
  query = np.ones(8, np.float64)
  _, scores = sim.rank(query, library, k=3)
  assert scores.dtype == np.float32


def test_weights_and_weighted_average_match_hand_formula():
  rng = np.random.default_rng(6)
  prompts = rng.normal(size=(3, 4, 5)).astype(np.float32)
  sims = np.array([0.5, 0.3, 0.0])
  alpha = sim.weights(sims)
  np.testing.assert_allclose(alpha, [0.625, 0.375, 0.0], rtol=1e-12, atol=1e-12)  # float64
  assert alpha.sum() == pytest.approx(1.0, abs=1e-12)
  mixed = sim.weighted_average(prompts, sims)
  assert mixed.shape == (4, 5) and mixed.dtype == np.float32
  np.testing.assert_allclose(mixed, 0.625 * prompts[0] + 0.375 * prompts[1], atol=1e-6)
  np.testing.assert_allclose(sim.weighted_average(prompts[:1], [0.2]), prompts[0], atol=1e-7)


@pytest.mark.parametrize("call,match", [
    (lambda: sim.prompt_vectors(np.ones((2, 3, 4)), "cosine"), "unknown similarity metric"),
    (lambda: sim.prompt_vectors(np.ones(4), "avg_cosine"), r"\[N, P, E\] or \[P, E\]"),
    (lambda: sim.prompt_vectors(np.ones((2, 0, 4)), "avg_cosine"), "P, E > 0"),
    (lambda: sim.prompt_vectors([], "avg_cosine"), "no prompts"),
    (lambda: sim.prompt_vectors([np.ones((2, 4)), np.ones((2, 5))], "avg_cosine"), "one E"),
    (lambda: sim.prompt_vectors(np.full((1, 2, 3), np.nan), "avg_cosine"),
     "prompt 0 has non-finite"),
    (lambda: sim.similarity(np.ones((2, 4)), np.ones((2, 5)), "avg_cosine"), "one E"),
    (lambda: sim.similarity(np.ones((1, 2, 4)), np.ones((2, 4)), "avg_cosine"), "two prompts"),
    (lambda: sim.similarity_matrix(np.ones((2, 3, 4)), np.ones((2, 3, 5)), "token_cosine"),
     "one E"),
    (lambda: sim.rank(np.ones(4), np.ones((3, 5))), r"query vector \[E\]"),
    (lambda: sim.rank(np.ones((1, 4)), np.ones((3, 4))), r"query vector \[E\]"),
    (lambda: sim.rank(np.ones(4), np.ones((3, 4)), k=-1), "k must be"),
    (lambda: sim.rank(np.full(4, np.nan), np.ones((3, 4))), "query vector has non-finite"),
    (lambda: sim.rank(np.ones(2), np.array([[1, 0], [np.nan, 0]])), "library vector 1"),
    (lambda: sim.weights([]), "non-empty"),
    (lambda: sim.weights([0.5, -0.1]), ">= 0"),
    (lambda: sim.weights([0.0, 0.0]), "sum to 0"),
    (lambda: sim.weights([np.nan, 1.0]), "finite"),
    (lambda: sim.weighted_average(np.ones((3, 2, 4)), [0.5, 0.5]), r"\[k, P, E\]"),
    (lambda: sim.weighted_average(np.ones((2, 4)), [0.5, 0.5]), r"\[k, P, E\]"),
])
def test_errors_are_one_line_spot_errors(call, match):
  with pytest.raises(SimilarityError, match=match) as info:
    call()
  assert isinstance(info.value, SpotError) and "\n" not in str(info.value)
