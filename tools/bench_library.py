"""CPU benchmark of prompt-library retrieval (spot_jax.library.similarity); one JSON object a line.

Run from the repository root:

  python tools/bench_library.py [--entries 1000000] [--embed 768] [--prompt-length 100]

It times (1) "rank": `similarity.rank(query, library, k)` of one query vector [E] against `entries`
precomputed library vectors [N, E] float32 (one BLAS gemv plus a top-k), median of `repeats` calls
after a warm-up; "gemv_s" is the matrix-vector product alone, so rank_s - gemv_s is the top-k cost;
and (2) "precompute": `similarity.prompt_vectors` of `precompute-entries` random prompts [P, E] for
each metric, reported as entries/s (the one-time cost of adding a prompt to the library).

Pure NumPy: no JAX, and nothing from tools/bench_model.py (its setup() parses model flags and
measures a JAX matmul peak, neither of which applies here). Timings come from a shared, possibly
busy machine: repeat the run before trusting a difference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from spot_jax.library import similarity  # noqa: E402


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


def parse_args() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--entries", type=int, default=1_000_000, help="library size N for rank")
  parser.add_argument("--embed", type=int, default=768, help="embedding size E")
  parser.add_argument("--prompt-length", type=int, default=100, help="prompt length P")
  parser.add_argument("--precompute-entries", type=int, default=256,
                      help="random prompts [P, E] per timed prompt_vectors call")
  parser.add_argument("--k", type=int, default=10, help="top-k of rank")
  parser.add_argument("--repeats", type=int, default=7, help="timed calls; the median is reported")
  parser.add_argument("--seed", type=int, default=0)
  return parser.parse_args()


def main() -> None:
  args = parse_args()
  cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  common = {"numpy": np.__version__, "cpus": cpus}
  print(json.dumps(bench_rank(args, common)), flush=True)
  for metric in similarity.METRICS:
    print(json.dumps(bench_precompute(args, metric, common)), flush=True)


if __name__ == "__main__":
  main()
