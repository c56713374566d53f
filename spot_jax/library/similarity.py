"""Task-embedding similarity and retrieval (SPoT, Vu et al. 2022, §3.2-3.3).

A task embedding is a tuned prompt [P, E]. The paper compares two prompts a [P, E] and b [P', E]
with one of two metrics, and both reduce to ONE dot product of per-prompt vectors computed once:

  "avg_cosine"   the paper's "Cosine Similarity of Average Tokens":
                 cos(mean_i a_i, mean_j b_j) = unit(mean_i a_i) . unit(mean_j b_j)
  "token_cosine" the paper's "Per-token Average Cosine Similarity":
                 mean_ij cos(a_i, b_j) = (mean_i unit(a_i)) . (mean_j unit(b_j))
                 (bilinearity of the dot product; the mean of unit tokens is NOT re-normalized)

So a library of N prompts is stored as N vectors [N, E] (`prompt_vectors`), and retrieval for a new
task is one matrix-vector product plus a top-k (`rank`). The top-k prompts are then combined by the
paper's weighted average, alpha_r = sim_r / sum_r sim_r (`weights`, `weighted_average`).

All functions are pure NumPy on the host: a library of 10^6 prompts does not fit an accelerator's
memory as [N, P, E], and its [N, E] vectors rank fastest with BLAS gemv.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from spot_jax.errors import SpotError

METRICS = ("avg_cosine", "token_cosine")
# Norms below EPS count as zero: a zero token or zero mean contributes a zero vector, never NaN.
EPS = 1e-12
# Float32 elements of one chunk of prompts (64 MiB); bounds the working memory of `prompt_vectors`.
CHUNK_ELEMENTS = 1 << 24

ArrayLike = Union[np.ndarray, Sequence[np.ndarray]]


class SimilarityError(SpotError):
  """A bad metric name, a shape mismatch, or similarities that cannot be weights."""


def check_metric(metric: str) -> None:
  if metric not in METRICS:
    raise SimilarityError(f"unknown similarity metric {metric!r}; use one of {', '.join(METRICS)}")


def _chunk_vectors(x: np.ndarray, metric: str) -> np.ndarray:
  """[c, P, E] float32 -> [c, E]: the metric's vector of each prompt (see the module docstring)."""
  if metric == "avg_cosine":
    mean = x.mean(axis=1)
    norm = np.sqrt(np.einsum("ce,ce->c", mean, mean))
    return mean / np.maximum(norm, EPS)[:, None]
  # mean_i a_i / |a_i| as one batched [1, P] @ [P, E] product: no normalized copy of the chunk.
  norm = np.sqrt(np.einsum("cpe,cpe->cp", x, x))
  inv = (1.0 / np.maximum(norm, EPS)).astype(np.float32) / np.float32(x.shape[1])
  return np.matmul(inv[:, None, :], x)[:, 0, :]


def prompt_vectors(prompts: ArrayLike, metric: str, chunk_size: int | None = None) -> np.ndarray:
  """The metric's vector of each prompt, so similarities are dot products: [N, P, E] -> [N, E].

  `prompts` is an array [N, P, E] (a np.memmap works: it is read chunk by chunk), one prompt
  [P, E] (-> [E]), or a sequence of [P_i, E] prompts of possibly different lengths. Prompts are
  converted to float32 `chunk_size` at a time (default: 64 MiB worth), so a big N stays in memory.
  """
  check_metric(metric)
  if isinstance(prompts, (list, tuple)):
    if not prompts:
      raise SimilarityError("no prompts given: pass at least one [P, E] prompt")
    vectors = [prompt_vectors(p, metric) for p in prompts]
    if any(v.ndim != 1 for v in vectors) or len({v.shape for v in vectors}) != 1:
      raise SimilarityError(f"prompts in a sequence must all be [P_i, E] with one E, got shapes "
                            f"{[np.shape(p) for p in prompts]}")
    return np.stack(vectors)
  if not hasattr(prompts, "shape"):
    prompts = np.asarray(prompts)
  if len(prompts.shape) == 2:
    return prompt_vectors(prompts[None], metric)[0]
  if len(prompts.shape) != 3 or 0 in prompts.shape[1:]:
    raise SimilarityError(f"prompts must be [N, P, E] or [P, E] with P, E > 0, got shape "
                          f"{tuple(prompts.shape)}")
  n, length, embed = prompts.shape
  if chunk_size is None:
    chunk_size = max(1, CHUNK_ELEMENTS // (length * embed))
  out = np.empty((n, embed), np.float32)
  for start in range(0, n, chunk_size):
    chunk = np.asarray(prompts[start:start + chunk_size], dtype=np.float32)
    out[start:start + chunk_size] = _chunk_vectors(chunk, metric)
  if not np.isfinite(out).all():
    bad = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
    raise SimilarityError(f"prompt {bad} has non-finite (NaN or inf) values")
  return out


def similarity(a: np.ndarray, b: np.ndarray, metric: str) -> float:
  """The metric between two prompts a [P, E] and b [P', E] (P may differ from P')."""
  va, vb = prompt_vectors(a, metric), prompt_vectors(b, metric)
  if va.ndim != 1 or vb.ndim != 1 or va.shape != vb.shape:
    raise SimilarityError(f"similarity takes two prompts [P, E] with one E, got shapes "
                          f"{np.shape(a)} and {np.shape(b)}")
  return float(np.dot(va.astype(np.float64), vb.astype(np.float64)))


def similarity_matrix(prompts_a: ArrayLike, prompts_b: ArrayLike, metric: str) -> np.ndarray:
  """[Na, Nb] similarities between two sets of prompts (e.g. the task-embedding heatmap)."""
  va, vb = prompt_vectors(prompts_a, metric), prompt_vectors(prompts_b, metric)
  if va.ndim != 2 or vb.ndim != 2 or va.shape[1] != vb.shape[1]:
    raise SimilarityError(f"similarity_matrix takes two sets of prompts [N, P, E] with one E, got "
                          f"vectors {va.shape} and {vb.shape}")
  return va @ vb.T


def rank(query_vector: np.ndarray, library_vectors: np.ndarray,
         k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """The library entries most similar to the query: (indices [k], scores [k]), best first.

  Scores are one gemv of the precomputed vectors (`prompt_vectors`, same metric for both sides);
  the library matrix is used as is (no copy, no dtype change), the query is cast to its dtype.
  Equal scores are ordered by ascending index, so the result is deterministic. k=None means all
  entries; a k above N returns all N.
  """
  library_vectors = np.asarray(library_vectors)
  query = np.asarray(query_vector)
  if library_vectors.ndim != 2 or query.shape != library_vectors.shape[1:]:
    raise SimilarityError(f"rank takes a query vector [E] and library vectors [N, E], got shapes "
                          f"{query.shape} and {library_vectors.shape}")
  if not np.isfinite(query).all():
    raise SimilarityError("the query vector has non-finite (NaN or inf) values")
  n = library_vectors.shape[0]
  if k is None:
    k = n
  if k < 0:
    raise SimilarityError(f"k must be >= 0 or None, got {k}")
  k = min(int(k), n)
  if np.issubdtype(library_vectors.dtype, np.floating):
    query = query.astype(library_vectors.dtype, copy=False)
  scores = library_vectors @ query
  if np.isnan(scores).any():  # a NaN would break the partition below; 1M scores take ~1 ms
    bad = int(np.flatnonzero(np.isnan(scores))[0])
    raise SimilarityError(f"library vector {bad} has non-finite (NaN or inf) values")
  if k == 0:
    return np.empty(0, np.int64), scores[:0]
  if k < n:
    # Every entry scoring >= the k-th best, ties at the boundary included, then a stable sort.
    kth = np.partition(scores, n - k)[n - k]
    candidates = np.flatnonzero(scores >= kth)
  else:
    candidates = np.arange(n)
  order = candidates[np.argsort(-scores[candidates], kind="stable")[:k]]
  return order.astype(np.int64, copy=False), scores[order]


def weights(sims: np.ndarray) -> np.ndarray:
  """The paper's top-k mixing weights alpha_r = sim_r / sum_r sim_r ([k] -> [k], sums to 1)."""
  sims = np.asarray(sims, dtype=np.float64)
  if sims.ndim != 1 or sims.size == 0:
    raise SimilarityError(f"similarities must be a non-empty vector [k], got shape {sims.shape}")
  if not np.isfinite(sims).all() or (sims < 0).any():
    raise SimilarityError(f"similarities must be finite and >= 0 to be mixing weights, got "
                          f"{np.array2string(sims, precision=4, threshold=8)}")
  total = sims.sum()
  if total <= 0:
    raise SimilarityError("similarities sum to 0: no prompt to weight (pick sources with sim > 0)")
  return sims / total


def weighted_average(prompts: np.ndarray, sims: np.ndarray) -> np.ndarray:
  """The top-k prompts [k, P, E] mixed by `weights(sims)` into one prompt [P, E] (SPoT §3.3)."""
  prompts = np.asarray(prompts)
  alpha = weights(sims)
  if prompts.ndim != 3 or prompts.shape[0] != alpha.shape[0]:
    raise SimilarityError(f"weighted_average takes prompts [k, P, E] and similarities [k], got "
                          f"shapes {prompts.shape} and {alpha.shape}")
  dtype = prompts.dtype if np.issubdtype(prompts.dtype, np.floating) else np.float32
  return np.tensordot(alpha, prompts, axes=1).astype(dtype)
