"""The study's tables from cell results: pure functions over result records.

A result record is a mapping with "target", "source" (None or "baseline" for the baseline cell),
"seed" and "score" (0-100, higher is better), as written by `spot_jax.study.grid`. The tables follow
SPoT (Vu et al. 2022): relative error reduction over the baseline (Table 6, Figure 3), the pairs
with positive transfer (Table 7), and the retrieval summary with an oracle (Table 3).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from spot_jax.errors import SpotError

# The source label of baseline cells in every table (records may also spell it None).
BASELINE = "baseline"
# Scores are on a 0-100 scale; a larger one is a 0-1 score scaled twice or a different metric.
MAX_SCORE = 100.0

Result = Mapping[str, Any]


class TableError(SpotError):
  """Results that do not make the asked table: duplicates, missing cells, scores above 100."""


class Transfer(NamedTuple):
  """A source -> target pair's mean score over seeds against the target's baseline mean."""
  source: str
  target: str
  mean: float
  baseline: float
  gain: float  # mean - baseline, in score points


class RetrievalRow(NamedTuple):
  """One row of the retrieval summary (SPoT Table 3)."""
  method: str
  mean: float  # mean over targets of each target's mean over seeds
  std: float  # sample std over seeds of the across-target average
  abs_gain: float  # mean - the baseline row's mean, in score points
  rel_gain: float  # abs_gain as a percentage of the baseline row's mean
  n_targets: int


def _source(result: Result) -> str:
  source = result.get("source")
  return BASELINE if source is None else str(source)


def _std(values: Sequence[float]) -> float:
  """Sample std (ddof=1): seeds are a sample of the run-to-run noise; 0.0 for one value."""
  return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _by_cell(results: Iterable[Result]) -> dict[tuple[str, str], dict[int, float]]:
  """{(source, target): {seed: score}}, refusing a cell given twice (it would weigh double)."""
  cells: dict[tuple[str, str], dict[int, float]] = {}
  for r in results:
    try:
      key, seed, score = (_source(r), str(r["target"])), int(r["seed"]), float(r["score"])
    except (KeyError, TypeError, ValueError) as e:
      raise TableError(f"result {dict(r)!r} needs target, source, int seed and float score "
                       f"({type(e).__name__}: {e})") from e
    if score > MAX_SCORE + 1e-9:
      raise TableError(f"score {score} of {key[0]} -> {key[1]} seed {seed} is above {MAX_SCORE}: "
                       f"scores must be on a 0-100 scale")
    seeds = cells.setdefault(key, {})
    if seed in seeds:
      raise TableError(f"two results for source {key[0]}, target {key[1]}, seed {seed}")
    seeds[seed] = score
  return cells


def mean_std(results: Iterable[Result]) -> dict[tuple[str, str], tuple[float, float, int]]:
  """{(source, target): (mean, std, n)} over seeds, sorted by key; baseline's source: "baseline".

  std is the sample std (ddof=1) for n > 1 and 0.0 for a single seed. Means are rounded to 1e-9
  points so that equal means of different seed scores compare equal (k/n percentages are inexact
  in binary: two means of 506 right of 900 came out 7e-15 apart), not as a "gain".
  """
  cells = _by_cell(results)
  return {key: (round(float(np.mean(list(s.values()))), 9), _std(list(s.values())), len(s))
          for key, s in sorted(cells.items())}


def relative_error_reduction(score: Any, baseline: Any) -> Any:
  """(e_base - e) / e_base * 100 with e = 100 - score: SPoT's Table 6 metric, in percent.

  Positive when the score beats the baseline; 100 when it removes all of the baseline's error.
  A perfect baseline (100) has no error to reduce: the result is NaN there (no division by zero).
  Works elementwise on arrays; floats give a float.
  """
  score, baseline = np.asarray(score, np.float64), np.asarray(baseline, np.float64)
  e_base = MAX_SCORE - baseline
  with np.errstate(divide="ignore", invalid="ignore"):
    rer = np.where(e_base == 0, np.nan, (e_base - (MAX_SCORE - score)) / e_base * 100.0)
  return float(rer) if rer.ndim == 0 else rer


def transfer_table(results: Iterable[Result], sources: Optional[Sequence[str]] = None,
                   targets: Optional[Sequence[str]] = None
                   ) -> tuple[list[str], list[str], np.ndarray]:
  """(sources, targets, [S, T] relative error reduction of each pair's mean vs the baseline's).

  `sources`/`targets` fix the order (default: sorted names found in `results`). A pair without
  results, or a target without baseline results, is NaN.
  """
  stats = mean_std(results)
  if sources is None:
    sources = sorted({s for s, _ in stats if s != BASELINE})
  if targets is None:
    targets = sorted({t for _, t in stats})
  matrix = np.full((len(sources), len(targets)), np.nan)
  for j, target in enumerate(targets):
    if (BASELINE, target) not in stats:
      continue
    base = stats[BASELINE, target][0]
    for i, source in enumerate(sources):
      if (source, target) in stats:
        matrix[i, j] = relative_error_reduction(stats[source, target][0], base)
  return list(sources), list(targets), matrix


def positive_transfers(results: Iterable[Result], min_gain: float = 0.0) -> list[Transfer]:
  """Pairs whose mean score beats the target's baseline mean by more than `min_gain` points.

  Sorted by gain, largest first (ties by target, then source): SPoT's Table 7.
  """
  stats = mean_std(results)
  found = []
  for (source, target), (mean, _, _) in stats.items():
    if source == BASELINE or (BASELINE, target) not in stats:
      continue
    base = stats[BASELINE, target][0]
    if mean - base > min_gain:
      found.append(Transfer(source, target, mean, base, mean - base))
  return sorted(found, key=lambda t: (-t.gain, t.target, t.source))


def seed_scores(results: Iterable[Result], choice: Mapping[str, Optional[str]]
                ) -> dict[str, list[float]]:
  """{target: per-seed scores (by seed) of the source chosen for it} from the grid's results.

  This turns a retrieval method's choice of source per target into a `retrieval_summary` row;
  a chosen source None or "baseline" reads the baseline cells.
  """
  cells = _by_cell(results)
  scores = {}
  for target, source in choice.items():
    key = (BASELINE if source is None else source, target)
    if key not in cells:
      raise TableError(f"no results for source {key[0]} on target {target}")
    scores[target] = [cells[key][seed] for seed in sorted(cells[key])]
  return scores


def best_sources(results: Iterable[Result]) -> dict[str, str]:
  """{target: the source (not the baseline) with the best mean score over seeds}.

  Ties go to the first name in sorted order; NaN means never win; targets without a source with a
  finite mean are left out.
  """
  best: dict[str, tuple[float, str]] = {}
  for (source, target), (mean, _, _) in mean_std(results).items():
    if source == BASELINE or math.isnan(mean):
      continue
    if target not in best or mean > best[target][0]:  # keys arrive sorted: ties keep the first
      best[target] = (mean, source)
  return {target: source for target, (_, source) in sorted(best.items())}


def oracle(results: Iterable[Result]) -> dict[str, list[float]]:
  """{target: per-seed scores of its best source}: the retrieval oracle of SPoT's Table 3.

  The best source is picked by its mean over the same seeds it reports (as the paper's oracle
  does, an upper bound on any retrieval method).
  """
  results = list(results)
  return seed_scores(results, best_sources(results))


def _summary_row(method: str, scores: Mapping[str, Sequence[float]]) -> tuple[float, float, int]:
  per_target = []
  for target, values in scores.items():
    if len(values) == 0:
      raise TableError(f"method {method} has no scores for target {target}")
    per_target.append([float(v) for v in values])
  if not per_target:
    raise TableError(f"method {method} has no targets")
  mean = float(np.mean([np.mean(v) for v in per_target]))
  if len({len(v) for v in per_target}) == 1:
    # Seed i of every target makes one run of the whole benchmark; std over those runs.
    std = _std(np.mean(np.asarray(per_target), axis=0).tolist())
  else:
    std = math.nan  # seeds do not line up across targets
  return mean, std, len(per_target)


def retrieval_summary(method_scores: Mapping[str, Mapping[str, Sequence[float]]],
                      baseline: str = BASELINE) -> list[RetrievalRow]:
  """One row per method (SPoT Table 3): the baseline row first, then methods in the given order.

  method_scores[method][target] is the per-seed scores of that method on that target. The mean is
  over targets of each target's mean over seeds; the std is the sample std over seeds of the
  across-target average (seed i of every target together; NaN when targets have different seed
  counts). Gains are against the `baseline` method's row; every method needs its targets.
  """
  if baseline not in method_scores:
    raise TableError(f"no {baseline!r} method among {list(method_scores)}; the gains need it")
  targets = set(method_scores[baseline])
  base_mean = _summary_row(baseline, method_scores[baseline])[0]
  rows = []
  for method in [baseline] + [m for m in method_scores if m != baseline]:
    if set(method_scores[method]) != targets:
      raise TableError(f"method {method} has targets {sorted(method_scores[method])}, the "
                       f"baseline {sorted(targets)}: averages over different targets differ")
    mean, std, n = _summary_row(method, method_scores[method])
    gain = mean - base_mean
    rel = gain / base_mean * 100.0 if base_mean != 0 else math.nan
    rows.append(RetrievalRow(method, mean, std, gain, rel, n))
  return rows


def _is_number(value: Any) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _format(value: Any, floatfmt: str) -> str:
  if value is None:
    return ""
  if isinstance(value, numbers.Integral) and not isinstance(value, bool):
    return str(int(value))
  if _is_number(value):
    return format(float(value), floatfmt)
  return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]],
                   floatfmt: str = ".1f") -> str:
  """A GitHub-flavoured Markdown table; floats use `floatfmt`, numeric columns align right."""
  rows = [list(row) for row in rows]
  for row in rows:
    if len(row) != len(headers):
      raise TableError(f"row {row!r} has {len(row)} cells for {len(headers)} headers")
  cells = [[_format(v, floatfmt) for v in row] for row in rows]
  header_cells = [_format(h, floatfmt) for h in headers]
  widths = [max([3, len(h)] + [len(row[j]) for row in cells]) for j, h in enumerate(header_cells)]
  numeric = [bool(rows) and all(_is_number(row[j]) or row[j] is None for row in rows)
             for j in range(len(headers))]

  def line(values: Sequence[str]) -> str:
    padded = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
    return "| " + " | ".join(padded) + " |"

  rule = ["-" * (w - 1) + ":" if num else "-" * w for w, num in zip(widths, numeric)]
  return "\n".join([line(header_cells), line(rule)] + [line(row) for row in cells])
