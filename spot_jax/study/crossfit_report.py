"""The CrossFit PEFT study's report: dev-based selection, per-task scores, ARG tables, CSV, figure.

Input: downstream cell records (dicts), one per (upstream, method, target, seed, learning_rate,
batch_size), with "dev" ({step: dev score}; keys may be str after JSON), "best_step", "dev_score"
(the best dev score), "test_score" (test at best_step), "tunable_params", "frozen_params" and
"seconds". The protocol follows CrossFit (Ye et al. 2021) and the seed paper (§4.4, eq. 4.4,
Table 3): for each (upstream, method, target, seed) the learning rate, batch size and step are
chosen by dev score; the test score at that choice is the cell's score; the average relative gain
(ARG) over targets against a baseline (by default full fine-tuning without upstream learning)
summarises an upstream × method, per seed, then mean ± std over seeds.

Every number is computed by pure functions (`select`, `task_scores`, `arg_table`, `directions`);
`write_report` only writes them: results.csv, selected.csv, report.md and arg.png.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, Iterable, Mapping, NamedTuple, Optional, Sequence

from etils import epath
import matplotlib
from matplotlib import figure as mfigure
import numpy as np

from spot_jax.errors import SpotError
from spot_jax.io import atomic_write
from spot_jax.study import figures, stats, tables

Record = Mapping[str, Any]

KEY_FIELDS = ("upstream", "method", "target", "seed")
FIELDS = (*KEY_FIELDS, "learning_rate", "batch_size", "best_step", "dev_score", "test_score",
          "tunable_params", "frozen_params", "seconds", "dev")
DEFAULT_BASELINE = ("none", "full")  # = spot_jax.study.crossfit.BASELINE
# Display order of the methods the study runs; other names follow alphabetically.
METHOD_ORDER = ("prompt", "prefix", "adapter", "full")
# Seed paper Table 3 (CrossFit classification split; the paper does not restate its PLM there):
# (upstream family, method, ARG %, tunable ratio %).
SEED_TABLE3 = (("maml", "prompt", -13.8, 0.05), ("maml", "adapter", -13.2, 4.0),
               ("mtl", "prompt", -3.5, 0.05), ("mtl", "adapter", 0.7, 4.0))


class ReportError(SpotError):
  """Records that cannot make the report: missing fields, duplicates, no baseline cells."""


class TaskScore(NamedTuple):
  """One (upstream, method, target)'s test score over seeds: mean, std (ddof=0), n seeds."""
  mean: float
  std: float
  n: int


class ArgRow(NamedTuple):
  """One upstream × method: ARG % (mean, std ddof=0 over seeds) against the baseline."""
  upstream: str
  method: str
  arg: float  # mean over seeds of ARG_s; NaN when no task is shared with the baseline
  std: float
  per_seed: dict  # {seed: ARG_s}
  tasks: tuple  # the targets averaged (present for every seed of the row and in the baseline)
  n_seeds: int
  tunable_params: int
  frozen_params: int
  ratio: float  # tunable / frozen params in percent; NaN when nothing is frozen
  seconds: float  # summed over all of the row's records (the whole grid, not only the selected)


class Direction(NamedTuple):
  """One of the seed's qualitative findings checked on our ARG table."""
  claim: str  # "a ≥ b", in the seed's direction
  seed: str  # what the seed paper reports for it
  ours: str  # our numbers
  holds: bool
  difference: float  # ARG(a) − ARG(b), in points
  noise: float  # sqrt(std_a² + std_b²): a difference within it is not a clear direction


def _key(record: Record) -> tuple[str, str, str, int]:
  try:
    return (str(record["upstream"]), str(record["method"]), str(record["target"]),
            int(record["seed"]))
  except (KeyError, TypeError, ValueError) as e:
    raise ReportError(f"record {_short(record)} needs upstream, method, target and an int seed "
                      f"({type(e).__name__}: {e})") from e


def _short(record: Record) -> str:
  return json.dumps({k: record.get(k) for k in (*KEY_FIELDS, "learning_rate", "batch_size")},
                    default=str)


def _float(record: Record, field: str) -> float:
  try:
    return float(record[field])
  except (KeyError, TypeError, ValueError) as e:
    raise ReportError(f"record {_short(record)} needs a number {field!r} "
                      f"({type(e).__name__}: {e})") from e


def _rank(record: Record) -> tuple:
  """Sort key: best first. Higher dev_score (NaN never wins); ties go to the earlier best_step,
  then the smaller learning_rate, then the smaller batch_size (the cheaper, gentler choice)."""
  dev = _float(record, "dev_score")
  return (-dev if math.isfinite(dev) else math.inf, int(_float(record, "best_step")),
          _float(record, "learning_rate"), int(_float(record, "batch_size")))


def _method_rank(method: str) -> tuple:
  return (METHOD_ORDER.index(method), "") if method in METHOD_ORDER else (len(METHOD_ORDER), method)


def _upstream_rank(upstream: str) -> tuple:
  return (0, "") if upstream == "none" else (1, upstream)


def _row_rank(upstream: str, method: str) -> tuple:
  return (_upstream_rank(upstream), _method_rank(method))


def select(records: Iterable[Record]) -> list[Record]:
  """Per (upstream, method, target, seed), the record with the best dev_score: CrossFit picks the
  learning rate, batch size and step on dev, and reports test there.

  Ties (equal dev_score) go to the earlier best_step, then the smaller learning rate, then the
  smaller batch size. Two records for the same (upstream, method, target, seed, learning_rate,
  batch_size) are an error (one would be silently dropped). Sorted by upstream ("none" first),
  method (prompt, prefix, adapter, full, then others), target, seed.
  """
  groups: dict[tuple, list[Record]] = {}
  seen = set()
  for record in records:
    key = _key(record)
    grid_point = (*key, _float(record, "learning_rate"), int(_float(record, "batch_size")))
    if grid_point in seen:
      raise ReportError(f"two records for {_short(record)}: remove the duplicate")
    seen.add(grid_point)
    _rank(record)  # validates the fields selection reads
    groups.setdefault(key, []).append(record)
  ordered = sorted(groups, key=lambda k: (_row_rank(k[0], k[1]), k[2], k[3]))
  return [min(groups[key], key=_rank) for key in ordered]


def _by_row(selected: Iterable[Record]) -> dict[tuple[str, str], dict[str, dict[int, Record]]]:
  """{(upstream, method): {target: {seed: record}}}, refusing two selected records per cell."""
  rows: dict[tuple[str, str], dict[str, dict[int, Record]]] = {}
  for record in selected:
    upstream, method, target, seed = _key(record)
    seeds = rows.setdefault((upstream, method), {}).setdefault(target, {})
    if seed in seeds:
      raise ReportError(f"two selected records for {upstream}/{method} on {target} seed {seed}: "
                        f"pass the output of select()")
    seeds[seed] = record
  return {k: rows[k] for k in sorted(rows, key=lambda k: _row_rank(*k))}


def task_scores(selected: Iterable[Record]) -> dict[tuple[str, str, str], TaskScore]:
  """{(upstream, method, target): TaskScore} of test_score over seeds.

  std is numpy's population std (ddof=0) over the seeds, as CrossFit's result collection reports
  it; 0.0 for one seed.
  """
  out = {}
  for (upstream, method), targets in _by_row(selected).items():
    for target in sorted(targets):
      values = [_float(targets[target][s], "test_score") for s in sorted(targets[target])]
      out[upstream, method, target] = TaskScore(float(np.mean(values)), float(np.std(values)),
                                                len(values))
  return out


def _params(upstream: str, method: str, records: Sequence[Record], field: str) -> int:
  values = sorted({int(_float(r, field)) for r in records})
  if len(values) != 1:
    raise ReportError(f"{upstream}/{method} records disagree on {field}: {values}; one method on "
                      f"one model has one parameter count")
  return values[0]


def arg_table(selected: Iterable[Record],
              baseline: tuple[Optional[str], str] = DEFAULT_BASELINE,
              seconds_from: Optional[Iterable[Record]] = None) -> list[ArgRow]:
  """One ArgRow per upstream × method (the baseline's own row included: its mean ARG is 0 by
  construction and its std shows the seed noise).

  ARG_s = stats.average_relative_gain({task: test score of seed s}, {task: the baseline's mean test
  score over its seeds}) over the tasks the row has for every one of its seeds and the baseline
  has; the row's ARG is mean ± std (ddof=0) of ARG_s over its seeds. `baseline` is (upstream,
  method); an upstream of None means each row's own upstream (e.g. (None, "full"): PEFT against
  full tuning from the same upstream model). `seconds_from`: the records to sum compute time over
  (e.g. the whole grid; default: `selected`).
  """
  selected = list(selected)
  rows = _by_row(selected)
  base_upstream, base_method = baseline
  bases = ([base_upstream] if base_upstream is not None else
           sorted({u for u, _ in rows}, key=_upstream_rank))
  for upstream in bases:
    if (upstream, base_method) not in rows:
      raise ReportError(f"no results for the baseline {upstream}/{base_method}: run method "
                        f"{base_method!r} from upstream {upstream!r} on the targets, or pass "
                        f"another baseline")
  base_means = {u: {t: float(np.mean([_float(r, "test_score") for r in seeds.values()]))
                    for t, seeds in rows[u, base_method].items()} for u in bases}
  seconds: dict[tuple[str, str], float] = {}
  for record in (selected if seconds_from is None else seconds_from):
    key = _key(record)[:2]
    seconds[key] = seconds.get(key, 0.0) + float(record.get("seconds", 0.0) or 0.0)

  out = []
  for (upstream, method), targets in rows.items():
    base = base_means[upstream if base_upstream is None else base_upstream]
    seeds = sorted({s for per_seed in targets.values() for s in per_seed})
    tasks = tuple(t for t in sorted(targets) if t in base and set(targets[t]) == set(seeds))
    per_seed = {}
    if tasks:
      for seed in seeds:
        scores = {t: _float(targets[t][seed], "test_score") for t in tasks}
        per_seed[seed] = stats.average_relative_gain(scores, base)
    values = list(per_seed.values())
    records = [r for per_target in targets.values() for r in per_target.values()]
    tunable = _params(upstream, method, records, "tunable_params")
    frozen = _params(upstream, method, records, "frozen_params")
    out.append(ArgRow(
        upstream=upstream, method=method,
        arg=float(np.mean(values)) if values else math.nan,
        std=float(np.std(values)) if values else math.nan,
        per_seed=per_seed, tasks=tasks, n_seeds=len(seeds), tunable_params=tunable,
        frozen_params=frozen, ratio=tunable / frozen * 100.0 if frozen > 0 else math.nan,
        seconds=seconds.get((upstream, method), 0.0)))
  return out


def _family(upstream: str) -> tuple[str, str]:
  """("mtl", "-best") from "mtl-best"; ("", upstream) when it is neither MTL nor MAML."""
  for family in ("mtl", "maml"):
    if upstream == family or upstream.startswith(family + "-"):
      return family, upstream[len(family):]
  return "", upstream


def _compare(claim: str, seed: str, a: ArgRow, b: ArgRow) -> Direction:
  difference = a.arg - b.arg
  noise = math.hypot(a.std, b.std)
  ours = (f"{a.upstream}/{a.method} {a.arg:+.1f} ± {a.std:.1f} vs {b.upstream}/{b.method} "
          f"{b.arg:+.1f} ± {b.std:.1f}")
  return Direction(claim, seed, ours, bool(difference >= 0), difference, noise)


def directions(arg: Sequence[ArgRow]) -> list[Direction]:
  """The seed's comparisons on our table, each stated in the seed's direction:

  - MTL ≥ MAML for each method (seed Table 3: MTL prompt −3.5 vs MAML −13.8; adapter +0.7 vs
    −13.2), pairing "mtl<suffix>" with "maml<suffix>" (mtl-best with maml-best, ...);
  - adapter ≥ prompt under each MTL upstream (seed: +0.7 vs −3.5);
  - full ≥ each PEFT method under the same upstream (seed §5.2: the full-model baselines beat
    prompt and adapter).
  Rows with a NaN ARG are skipped.
  """
  table = {(r.upstream, r.method): r for r in arg if not math.isnan(r.arg)}
  seed_arg = {(f, m): v for f, m, v, _ in SEED_TABLE3}
  out = []
  for (upstream, method), row in table.items():
    family, suffix = _family(upstream)
    if family == "mtl" and ("maml" + suffix, method) in table:
      seed = (f"MTL {seed_arg['mtl', method]:+.1f} vs MAML {seed_arg['maml', method]:+.1f}"
              if ("mtl", method) in seed_arg else "MTL ≥ MAML (CrossFit)")
      out.append(_compare(f"{upstream} ≥ maml{suffix} ({method})", seed, row,
                          table["maml" + suffix, method]))
  for (upstream, method), row in table.items():
    if _family(upstream)[0] == "mtl" and method == "adapter" and (upstream, "prompt") in table:
      out.append(_compare(f"adapter ≥ prompt under {upstream}",
                          f"MTL adapter {seed_arg['mtl', 'adapter']:+.1f} vs prompt "
                          f"{seed_arg['mtl', 'prompt']:+.1f}", row, table[upstream, "prompt"]))
  for (upstream, method), row in table.items():
    if method != "full" and (upstream, "full") in table:
      out.append(_compare(f"full ≥ {method} under {upstream}",
                          "full-model baseline above prompt and adapter (§5.2)",
                          table[upstream, "full"], row))
  return out


def _csv(rows: Iterable[Record]) -> str:
  rows = list(rows)
  extra = sorted({k for r in rows for k in r} - set(FIELDS))
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow([*FIELDS, *extra])
  for r in rows:
    dev = r.get("dev") or {}
    dev = {str(k): dev[k] for k in sorted(dev, key=lambda k: float(k))}
    cells = [json.dumps(dev) if f == "dev" else r.get(f, "") for f in FIELDS]
    cells += [json.dumps(r[k], default=str) if isinstance(r.get(k), (dict, list)) else r.get(k, "")
              for k in extra]
    writer.writerow(cells)
  return buf.getvalue()


def _pm(mean: float, std: float, fmt: str = ".1f", sign: str = "") -> str:
  return "n/a" if math.isnan(mean) else f"{mean:{sign}{fmt}} ± {std:{fmt}}"


def _ratio(ratio: float) -> str:
  return "n/a" if math.isnan(ratio) else f"{ratio:.3g} %"


def arg_figure(arg: Sequence[ArgRow], path: str | epath.PathLike, *,
               title: str = "Average relative gain (%) over the baseline",
               dpi: int = figures.DPI) -> epath.Path:
  """Grouped bars: one group per upstream, one bar per method, ARG ± std over seeds (error bar),
  each labelled with its ARG; NaN rows are left out (the baseline's own bar is 0 by construction,
  its error bar the seed noise). Drawn on a matplotlib Figure (Agg, no pyplot), written atomically."""
  rows = [r for r in arg if not math.isnan(r.arg)]
  if not rows:
    raise ReportError("no upstream × method has an ARG to draw: no task shared with the baseline")
  upstreams = sorted({r.upstream for r in rows}, key=_upstream_rank)
  methods = sorted({r.method for r in rows}, key=_method_rank)
  palette = matplotlib.colormaps["tab10"]
  width = 0.8 / len(methods)
  fig = mfigure.Figure(figsize=(2.0 + 1.1 * len(upstreams) * max(1, len(methods)) / 2, 3.6))
  ax = fig.add_subplot()
  table = {(r.upstream, r.method): r for r in rows}
  for j, method in enumerate(methods):
    xs, ys, errs = [], [], []
    for i, upstream in enumerate(upstreams):
      if (upstream, method) in table:
        xs.append(i - 0.4 + width * (j + 0.5))
        ys.append(table[upstream, method].arg)
        errs.append(table[upstream, method].std)
    bars = ax.bar(xs, ys, width, yerr=errs, capsize=3, label=method, color=palette(j % palette.N))
    ax.bar_label(bars, fmt="%+.1f", fontsize=7, padding=2)
  ax.axhline(0.0, color="black", linewidth=0.8)
  ax.set_xticks(range(len(upstreams)), labels=upstreams)
  ax.set_xlabel("upstream")
  ax.set_ylabel("ARG (%)")
  ax.set_title(title)
  ax.legend(title="method", fontsize=8, frameon=False)
  return figures.save(fig, path, dpi)


def write_report(records: Iterable[Record], out_dir: str | epath.PathLike, *,
                 baseline: tuple[Optional[str], str] = DEFAULT_BASELINE,
                 title: str = "CrossFit PEFT study", protocol_note: str = "") -> epath.Path:
  """results.csv (every record), selected.csv (the dev-selected ones), report.md (protocol,
  Table 3 and Table 1 analogues, the seed's directions) and arg.png in `out_dir`; returns
  report.md's path. Each file is written whole or not at all."""
  records = list(records)
  if not records:
    raise ReportError("no records to report: run the downstream grid first")
  out = epath.Path(out_dir)
  selected = select(records)
  arg = arg_table(selected, baseline, seconds_from=records)
  scores = task_scores(selected)
  found = directions(arg)
  atomic_write(out / "results.csv", _csv(records))
  atomic_write(out / "selected.csv", _csv(selected))
  arg_figure(arg, out / "arg.png")

  targets = sorted({t for _, _, t in scores})
  grid = {f: sorted({_float(r, f) for r in records}) for f in ("learning_rate", "batch_size")}
  seeds = sorted({_key(r)[3] for r in records})
  base = f"{baseline[0]}/{baseline[1]}" if baseline[0] is not None else f"<same upstream>/{baseline[1]}"
  lines = [f"# {title}", "", "## Protocol", ""]
  if protocol_note.strip():
    lines += [protocol_note.strip(), ""]
  lines += [
      f"{len(records)} downstream runs: upstreams {sorted({u for u, _ in _by_row(selected)}, key=_upstream_rank)}, "
      f"methods {sorted({m for _, m in _by_row(selected)}, key=_method_rank)}, {len(targets)} "
      f"targets, seeds {seeds}, learning rates {grid['learning_rate']}, batch sizes "
      f"{[int(b) for b in grid['batch_size']]}. Per (upstream, method, target, seed) the learning "
      f"rate, batch size and step with the best dev score are selected (ties: earlier step, then "
      f"smaller learning rate, then smaller batch) and the test score there is reported. ARG "
      f"(seed paper eq. 4.4) is the mean over targets of (P − P0) / P0 × 100 with P0 the baseline "
      f"{base}'s mean test score over its seeds, computed per seed; ± is the std over seeds "
      f"(ddof=0). Tunable ratio = tunable / frozen parameters.", "",
      "## ARG and tunable parameters (seed Table 3 analogue)", "",
      tables.markdown_table(
          ["upstream", "method", "ARG %", "tunable params", "ratio", "tasks", "seeds", "seconds"],
          [(r.upstream, r.method, _pm(r.arg, r.std, sign="+"), r.tunable_params, _ratio(r.ratio),
            len(r.tasks), r.n_seeds, r.seconds) for r in arg], floatfmt=".0f"),
      "", "Seed paper Table 3, for reference (its model, data and scale differ from ours):", "",
      tables.markdown_table(["combination", "ARG %", "tunable ratio"],
                            [(f"{f.upper()} {m}", f"{v:+.1f}", f"{ratio:g} %")
                             for f, m, v, ratio in SEED_TABLE3]),
      "", "![ARG per upstream and method](arg.png)", "",
      "## Test score per target, mean ± std over seeds (seed Table 1 / Fig. 2 analogue)", "",
      tables.markdown_table(
          ["upstream", "method", *targets],
          [(u, m, *(_pm(scores[u, m, t].mean, scores[u, m, t].std) if (u, m, t) in scores else ""
                    for t in targets)) for u, m in _by_row(selected)]),
      "", "## Which of the seed's directions reproduce", ""]
  if found:
    lines += [
        "A direction holds when the difference is ≥ 0; it is clear when the difference is larger "
        "than sqrt(std_a² + std_b²) of the two rows' seed stds.", "",
        tables.markdown_table(
            ["claim (seed's direction)", "seed", "ours", "holds", "clear"],
            [(d.claim, d.seed, d.ours, "yes" if d.holds else "no",
              "yes" if abs(d.difference) > d.noise else "no") for d in found])]
  else:
    lines.append("No pair of rows to compare (needs MTL and MAML upstreams, or a full row).")
  lines.append("")
  return atomic_write(out / "report.md", "\n".join(lines))
