"""CPU benchmark of prompt-library retrieval (spot_jax.library); one JSON object a line.

Run from the repository root:

  python tools/bench_library.py [--entries 1000000] [--embed 768] [--prompt-length 100]
                                [--library-entries 10000] [--library-dir DIR]

It times (1) "rank": `similarity.rank(query, library, k)` of one query vector [E] against `entries`
precomputed library vectors [N, E] float32 in memory (one BLAS gemv plus a top-k), median of
`repeats` calls after a warm-up; "gemv_s" is the matrix-vector product alone, so rank_s - gemv_s is
the top-k cost; (2) "precompute": `similarity.prompt_vectors` of `precompute-entries` random
prompts [P, E] for each metric, reported as entries/s; and (3) "retrieve_from_disk":
`retrieval.rank_sources` of one query task embedding [P, E] over a PromptLibrary of
`library-entries` random task embeddings on disk (tasks x runs seed0..seed2), opened afresh for
every call, centred, per metric and for a same-run query ({"seed0": q}) and an any-run one; the
time includes reading the index and computing the query's vectors. "first_s" is the first call
after the library was written, "seconds" the median of `repeats` more. The library is built once
through PromptLibrary.add(reindex=False) + reindex() ("build_s") in a temporary directory, or kept
in --library-dir and reused when it already holds `library-entries` entries.

Pure NumPy: no JAX, and nothing from tools/bench_model.py (its setup() parses model flags and
measures a JAX matmul peak, neither of which applies here). Timings come from a shared, possibly
busy machine: repeat the run before trusting a difference.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from spot_jax.library import retrieval, similarity  # noqa: E402
from spot_jax.library.store import ModelIdentity, PromptLibrary  # noqa: E402

RUNS = ("seed0", "seed1", "seed2")


def log(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


def timings(fn: Callable[[], Any], repeats: int) -> list[float]:
  """Seconds of each of `repeats` calls of fn(), after one untimed warm-up call."""
  fn()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    seconds.append(time.perf_counter() - start)
  return seconds


def random_library(entries: int, embed: int, seed: int, chunk: int = 65536) -> np.ndarray:
  """[entries, embed] float32 unit vectors, filled in place chunk by chunk: no float64 copy. Uniform
  in [-0.5, 0.5) rather than normal: 10x faster to draw, and the gemv time does not depend on it."""
  rng = np.random.default_rng(seed)
  library = np.empty((entries, embed), np.float32)
  for start in range(0, entries, chunk):
    block = library[start:start + chunk]
    rng.random(out=block, dtype=np.float32)
    block -= 0.5
    block /= np.sqrt(np.einsum("ne,ne->n", block, block))[:, None]
  return library


def bench_rank(args: argparse.Namespace, common: dict[str, Any]) -> dict[str, Any]:
  start = time.perf_counter()
  library = random_library(args.entries, args.embed, args.seed)
  log(f"generated {args.entries} x {args.embed} library in {time.perf_counter() - start:.1f} s")
  query = random_library(1, args.embed, args.seed + 1)[0]
  rank_s = timings(lambda: similarity.rank(query, library, k=args.k), args.repeats)
  gemv_s = timings(lambda: library @ query, args.repeats)
  seconds = statistics.median(rank_s)
  log(f"rank {args.entries} entries, k={args.k}: {seconds:.4f} s (median of {args.repeats})")
  return {"bench": "rank", "entries": args.entries, "embed": args.embed, "k": args.k,
          "dtype": "float32", "repeats": args.repeats, "seconds": seconds, "min_s": min(rank_s),
          "max_s": max(rank_s), "gemv_s": statistics.median(gemv_s),
          "entries_per_s": args.entries / seconds,
          "gb_per_s": library.nbytes / seconds / 1e9, **common}


def bench_precompute(args: argparse.Namespace, metric: str,
                     common: dict[str, Any]) -> dict[str, Any]:
  rng = np.random.default_rng(args.seed)
  shape = (args.precompute_entries, args.prompt_length, args.embed)
  prompts = rng.standard_normal(shape, dtype=np.float32)
  seconds = statistics.median(timings(lambda: similarity.prompt_vectors(prompts, metric),
                                      args.repeats))
  log(f"precompute {metric}: {args.precompute_entries / seconds:.0f} entries/s")
  return {"bench": "precompute", "metric": metric, "entries": args.precompute_entries,
          "prompt_length": args.prompt_length, "embed": args.embed, "dtype": "float32",
          "repeats": args.repeats, "seconds": seconds,
          "seconds_per_entry": seconds / args.precompute_entries,
          "entries_per_s": args.precompute_entries / seconds, **common}


def library_on_disk(args: argparse.Namespace, directory: str) -> tuple[PromptLibrary, float]:
  """(a library of `library_entries` random task embeddings in `directory`, seconds to build it;
  0 when it was there already)."""
  library = PromptLibrary(directory)
  if library.identity is not None and library.index_is_current():
    if len(library.index().row_task) == args.library_entries:
      return library, 0.0
    raise SystemExit(f"{directory} holds another library; give an empty --library-dir")
  identity = ModelIdentity(model="bench", frozen_checksum="sha256:bench", vocabulary="bench",
                           prompt_length=args.prompt_length, embed_dim=args.embed)
  rng = np.random.default_rng(args.seed)
  start = time.perf_counter()
  for i in range(args.library_entries):
    library.add(f"task{i // len(RUNS):06d}", RUNS[i % len(RUNS)], identity=identity, reindex=False,
                task_embedding=rng.standard_normal((args.prompt_length, args.embed), np.float32))
  library.reindex()
  return library, time.perf_counter() - start


def _retrieve(path, query: dict, metric: str) -> list[tuple[str, float]]:
  """One retrieval as `spot-jax retrieve` does it: open the library, rank its sources."""
  return retrieval.rank_sources(PromptLibrary(path), query, metric)


def bench_retrieve(args: argparse.Namespace, common: dict[str, Any]) -> list[dict[str, Any]]:
  with tempfile.TemporaryDirectory(prefix="bench_library_") as tmp:
    library, build_s = library_on_disk(args, args.library_dir or tmp)
    log(f"library of {args.library_entries} entries on disk in {build_s:.1f} s")
    query = np.random.default_rng(args.seed + 1).standard_normal(
        (args.prompt_length, args.embed), np.float32)
    rows = []
    for metric in similarity.METRICS:
      for run in ("seed0", None):
        call = functools.partial(_retrieve, library.path, {run: query}, metric)
        start = time.perf_counter()
        ranking = call()
        first_s = time.perf_counter() - start
        seconds = statistics.median(timings(call, args.repeats))
        log(f"retrieve from disk, {metric}, run {run}: {seconds:.4f} s (first {first_s:.4f} s)")
        rows.append({"bench": "retrieve_from_disk", "metric": metric, "run": run,
                     "entries": args.library_entries, "tasks": len(ranking),
                     "prompt_length": args.prompt_length, "embed": args.embed, "centred": True,
                     "repeats": args.repeats, "seconds": seconds, "first_s": first_s,
                     "build_s": build_s, "entries_per_s": args.library_entries / seconds, **common})
  return rows


def parse_args() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--entries", type=int, default=1_000_000, help="library size N for rank")
  parser.add_argument("--embed", type=int, default=768, help="embedding size E")
  parser.add_argument("--prompt-length", type=int, default=100, help="prompt length P")
  parser.add_argument("--precompute-entries", type=int, default=256,
                      help="random prompts [P, E] per timed prompt_vectors call")
  parser.add_argument("--k", type=int, default=10, help="top-k of rank")
  parser.add_argument("--repeats", type=int, default=7, help="timed calls; the median is reported")
  parser.add_argument("--library-entries", type=int, default=10_000,
                      help="task embeddings of the on-disk library for retrieve_from_disk")
  parser.add_argument("--library-dir", help="keep (and reuse) the on-disk library here "
                      "(default: a temporary directory, deleted after)")
  parser.add_argument("--seed", type=int, default=0)
  return parser.parse_args()


def main() -> None:
  args = parse_args()
  cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  common = {"numpy": np.__version__, "cpus": cpus}
  print(json.dumps(bench_rank(args, common)), flush=True)
  for metric in similarity.METRICS:
    print(json.dumps(bench_precompute(args, metric, common)), flush=True)
  for row in bench_retrieve(args, common):
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
  main()
