"""Targeted retrieval (SPoT, Vu et al. 2022, §3.2-3.3): rank a library's source tasks by the
similarity of their task embeddings to a target's, and mix the top-k source prompts.

Two choices of this implementation, both measured on the embedded universe (README):
  centring  every compared embedding, the query's included, has the mean of the compared library
            embeddings subtracted first. Short tunings from one shared init stay close to it, and
            raw cosines then mostly measure the init.
  same-seed a target embedded from the init of several seeds ({run: [P, E]}) is compared, per run,
            with the library's embeddings of that run ("seed<s>": tuned from the same init), and a
            source's similarity is the mean over runs.
The library's index (spot_jax.library.index) holds every vector these comparisons need, so a
ranking reads a few files, not every entry.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

import numpy as np

from spot_jax.library import similarity
from spot_jax.library.index import mean_embedding
from spot_jax.library.store import LibraryError, PromptLibrary

Query = Union[np.ndarray, Mapping[Optional[str], np.ndarray]]
Ranking = list[tuple[str, float]]
# Similarities at or below 0 (centred cosines can be negative) weigh this much in the top-k mix.
MIN_WEIGHT = 1e-6


def rank_sources(library: PromptLibrary, query: Query, metric: str = "token_cosine",
                 sources: Optional[Sequence[str]] = None, center: bool = True) -> Ranking:
  """Library tasks ranked by task-embedding similarity to `query`, best first (ties by name).

  query: one embedding [P, E], compared with every library embedding; or {run: [P, E]}, the target
  embedded from several inits, each compared with the library's embeddings of the same run (run
  None: every run). A task's similarity is the mean over all compared embeddings of its runs.
  sources: rank only these tasks (default: every task with a task embedding).
  center: subtract the mean of the compared library embeddings from them and from the query.
  """
  similarity.check_metric(metric)
  index = library.index()
  if not len(index.row_task):
    raise LibraryError(f"{library.path} holds no task_embedding; add runs to it first")
  wanted = sorted(set(sources)) if sources is not None else list(index.tasks)
  totals, counts = np.zeros(len(index.tasks)), np.zeros(len(index.tasks))
  for run, embedding in (query.items() if isinstance(query, Mapping) else [(None, query)]):
    embedding = _checked_query(embedding, index.prompt_shape, center)
    rows = index.rows(run, None if sources is None else wanted)
    missing = sorted(set(wanted) - {index.tasks[t] for t in index.row_task[rows]})
    if missing:
      raise LibraryError(f"{library.path} has no task embedding of run {run or 'any'} for "
                         f"{', '.join(missing)}")
    sims = index.similarities(embedding, metric, rows, run, center)
    totals += np.bincount(index.row_task[rows], weights=sims, minlength=len(index.tasks))
    counts += np.bincount(index.row_task[rows], minlength=len(index.tasks))
  ranking = [(index.tasks[t], float(totals[t] / counts[t])) for t in np.flatnonzero(counts)]
  return sorted(ranking, key=lambda item: (-item[1], item[0]))


def task_similarities(library: PromptLibrary, queries: Mapping[str, Mapping[str, np.ndarray]],
                      sources: Sequence[str], metric: str = "token_cosine",
                      center: bool = True) -> tuple[list[str], np.ndarray]:
  """(names, [S + T, S + T] similarity matrix) of `sources` and the targets of `queries`
  ({target: {run: [P, E]}}, every target embedded for the same runs), compared as rank_sources
  compares them: per run, centred on the mean of the sources' embeddings of that run; the mean
  over runs. Targets are named "<target> (target)"."""
  similarity.check_metric(metric)
  index = library.index()
  targets = list(queries)
  runs = list(queries[targets[0]]) if targets else []
  matrices = []
  for run in runs:
    rows = index.rows(run, sources)
    by_task = {index.tasks[t]: row for t, row in zip(index.row_task[rows], rows)}
    missing = [s for s in sources if s not in by_task]
    if missing:
      raise LibraryError(f"{library.path} has no task embedding of run {run} for "
                         f"{', '.join(missing)}")
    src = np.stack([index.embeddings[by_task[s]] for s in sources])
    prompts = np.concatenate([src, np.stack([queries[t][run] for t in targets])])
    prompts = prompts - (mean_embedding(src) if center else 0.0)
    matrices.append(similarity.similarity_matrix(prompts, prompts, metric))
  names = [*sources, *(f"{t} (target)" for t in targets)]
  return names, np.mean(matrices, axis=0)


def mixing_weights(scores: Sequence[float]) -> np.ndarray:
  """SPoT's top-k weights alpha_r = sim_r / sum sim, with every sim at least MIN_WEIGHT."""
  return similarity.weights(np.maximum(np.asarray(scores, np.float64), MIN_WEIGHT))


def weighted_prompt(library: PromptLibrary, ranking: Ranking, k: int) -> np.ndarray:
  """The top-k ranked tasks' source prompts (each task's best run) mixed by `mixing_weights`:
  SPoT's top-k weighted average, a [P, E] init for the target prompt."""
  top = ranking[:k]
  if not top:
    raise LibraryError("the ranking is empty: nothing to mix")
  prompts = np.stack([library.get(task, kind="source_prompt").source_prompt() for task, _ in top])
  return similarity.weighted_average(prompts, mixing_weights([score for _, score in top]))


def _checked_query(query: np.ndarray, shape: tuple[int, int], center: bool) -> np.ndarray:
  query = np.asarray(query, np.float32)
  fits = query.ndim == 2 and (query.shape == shape if center else query.shape[1] == shape[1])
  if not fits:
    raise LibraryError(f"the query task embedding has shape {query.shape} but the library's are "
                       f"{shape} (prompt_length, embed_dim); embed the query with the library's "
                       "model and prompt length (or compare uncentred: --no_center, a query of "
                       "another length)")
  return query
