"""The transferability grid as independent, resumable jobs: one JSON result file per cell.

The SPoT study (Vu et al. 2022, §3.1) tunes a target prompt initialised from every source prompt,
for every source x target x seed, next to a baseline (the target prompt tuned from the default
init). That is hundreds of training runs, so each cell is its own job whose result lives in its own
file, `out_dir/<target>/<source or "baseline">/seed<seed>.json`. A file is written atomically (temp
file beside it, then a rename), so a file that exists is a finished cell: an interrupted grid (a
crash, a preempted VM) resumes by running the same `run_grid` again, and workers that split the
cells between them (e.g. `todo[i::n]`) can share one `out_dir` on GCS (`gs://...` paths work through
etils.epath). Two workers on the same cell both compute it (the last write wins) unless they
claim cells (`claim=True`): a worker then creates `<cell>.claim` exclusively before computing and
skips cells another live worker holds, so any number of processes can share one local out_dir.

Any cell type works that has a stable relative path `key` and `fields()` (the JSON fields that
identify it); `Cell` is the transfer grid's.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
import socket
import sys
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol, Sequence

from etils import epath
import tqdm

from spot_jax.io import atomic_write
from spot_jax.errors import SpotError

# The `source` of a baseline cell in its key, its path and its result record.
BASELINE = "baseline"
# Fields every result record carries (the cell's fields and the score run_cell returned).
CELL_FIELDS = ("target", "source", "seed")


class GridCell(Protocol):
  """What run_grid needs of a cell: where its result lives and the fields that identify it."""

  @property
  def key(self) -> str: ...

  def fields(self) -> dict[str, Any]: ...


class GridError(SpotError):
  """A bad cell name, a run_cell result without a score, or an unreadable result file."""


def _check_name(name: Any, what: str) -> None:
  # Names become path components: no separators, no dot-names (those mark temp files).
  if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
    raise GridError(f"{what} name {name!r} must be a non-empty string without '/' or a leading "
                    f"'.' (it becomes a directory name)")


@dataclasses.dataclass(frozen=True)
class Cell:
  """One job of the grid: tune a prompt for `target` initialised from `source`'s prompt.

  `source=None` (or "baseline") is the baseline cell: the default prompt init, no transfer.
  """
  target: str
  source: Optional[str]
  seed: int

  def __post_init__(self):
    if self.source == BASELINE:  # one spelling of the baseline: None
      object.__setattr__(self, "source", None)
    _check_name(self.target, "target")
    if self.source is not None:
      _check_name(self.source, "source")
    if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
      raise GridError(f"seed must be an int, got {self.seed!r}")
    object.__setattr__(self, "seed", int(self.seed))

  @property
  def is_baseline(self) -> bool:
    return self.source is None

  @property
  def source_name(self) -> str:
    """The source as stored in paths and records: "baseline" for the baseline cell."""
    return BASELINE if self.source is None else self.source

  @property
  def key(self) -> str:
    """The cell's result file, relative to the grid's out_dir; stable across runs."""
    return f"{self.target}/{self.source_name}/seed{self.seed}.json"

  def fields(self) -> dict[str, Any]:
    return {"target": self.target, "source": self.source_name, "seed": self.seed}


def cells(sources: Sequence[str], targets: Sequence[str], seeds: Iterable[int], *,
          baseline: bool = True, include_self: bool = True) -> list[Cell]:
  """Every target x (baseline, sources) x seed cell, target-major (a target's cells run together).

  `include_self=False` drops the cells whose source is the target itself.
  """
  seeds = list(seeds)
  for what, values in (("sources", sources), ("targets", targets), ("seeds", seeds)):
    if len(set(values)) != len(values):
      raise GridError(f"{what} has duplicates: {list(values)}")
  if BASELINE in sources:
    raise GridError(f"{BASELINE!r} is not a source task; pass baseline=True for baseline cells")
  grid = []
  for target in targets:
    inits = ([None] if baseline else []) + [s for s in sources if include_self or s != target]
    grid.extend(Cell(target, source, seed) for source in inits for seed in seeds)
  return grid


def _jsonable(value: Any) -> Any:
  """json.dumps fallback: NumPy/JAX scalars and arrays, paths."""
  if hasattr(value, "tolist"):  # np.ndarray, np.float32, jax.Array
    return value.tolist()
  if isinstance(value, epath.PathLike):
    return str(value)
  raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _record(cell: GridCell, result: Mapping[str, Any]) -> dict[str, Any]:
  """run_cell's result with the cell's fields: what the cell's file holds."""
  if not isinstance(result, Mapping) or "score" not in result:
    raise GridError(f"run_cell({cell.key}) must return a mapping with a 'score', got "
                    f"{type(result).__name__}")
  score = result["score"]
  try:
    if isinstance(score, (bool, str, bytes)):
      raise TypeError
    score = float(score)  # also NumPy and JAX scalars
  except (TypeError, ValueError):
    raise GridError(f"run_cell({cell.key}) returned score {score!r}; it must be a float") from None
  record = dict(result)
  for name, value in cell.fields().items():
    if name in record and record[name] != value and not (
        name == "source" and getattr(cell, "is_baseline", False) and record[name] is None):
      raise GridError(f"run_cell({cell.key}) returned {name}={record[name]!r}, not the cell's "
                      f"{value!r}")
    record[name] = value
  record["score"] = score
  return record


def _write_json_atomic(path: epath.Path, record: Mapping[str, Any]) -> None:
  """Writes `record` to `path` so that readers see the whole file or none of it."""
  atomic_write(path, json.dumps(record, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _read_record(path: epath.Path, fields: Sequence[str] = CELL_FIELDS) -> dict[str, Any]:
  try:
    record = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise GridError(f"cannot read result file {path} ({type(e).__name__}: {e}); delete it to "
                    f"recompute the cell") from e
  missing = [f for f in tuple(fields) + ("score",) if not isinstance(record, dict) or f not in record]
  if missing:
    raise GridError(f"result file {path} lacks {', '.join(missing)}; delete it to recompute the "
                    f"cell")
  return record


def claim_path(result: epath.Path) -> epath.Path:
  """Where run_grid(claim=True) marks the cell of `result` while a process computes it."""
  return result.parent / f"{result.name}.claim"


def _claim(path: epath.Path) -> bool:
  """Creates `path` exclusively with this process's host:pid; takes over a claim whose process is
  gone (same host, pid not running). False: another live process holds it."""
  me = f"{socket.gethostname()}:{os.getpid()}"
  for _ in range(2):
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
      try:
        host, pid = path.read_text().rsplit(":", 1)
      except (OSError, ValueError):
        return False  # being written right now
      if host != socket.gethostname() or _alive(int(pid)):
        return False
      path.unlink(missing_ok=True)  # a dead worker's claim
      continue
    with os.fdopen(fd, "w") as f:
      f.write(me)
    return True
  return False


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def run_grid(cells: Sequence[GridCell], run_cell: Callable[[Any], Mapping[str, Any]],
             out_dir: str | epath.PathLike, *, progress: bool = True,
             reverse: bool = False, claim: bool = False) -> list[dict[str, Any]]:
  """Runs each cell whose result file is missing; returns every cell's record, in `cells` order.

  A cell whose file exists is read, never recomputed. Otherwise `run_cell(cell)` returns a mapping
  with a float "score" (and anything else JSON-serializable, e.g. the checkpoint path or the step
  of the best score), written with the cell's fields (target, source: "baseline" for the baseline,
  seed). An exception in run_cell propagates; the cells finished before it are on disk, so calling
  run_grid again resumes there. `progress` shows a tqdm bar on stderr with the done (computed now)
  and skipped (read from disk) counts, the last cell and its score. `reverse` visits the cells last
  to first (records still come back in `cells` order): a second process on the same `out_dir`
  started with it meets the first once, in the middle, instead of computing the cells the first
  is about to compute. `claim`: skip cells another live process has claimed (their records are
  then `{}` in the returned list) and claim each cell before computing it; local out_dir only.
  """
  out_dir = epath.Path(out_dir)
  keys = [cell.key for cell in cells]
  if len(set(keys)) != len(keys):
    raise GridError("cells has duplicates; build the grid with spot_jax.study.grid.cells")
  records: list[dict[str, Any]] = [{}] * len(cells)
  done = skipped = elsewhere = 0
  bar = tqdm.tqdm(total=len(cells), desc="grid", unit="cell", file=sys.stderr,
                  disable=not progress, dynamic_ncols=True)
  try:
    for i in reversed(range(len(cells))) if reverse else range(len(cells)):
      cell = cells[i]
      path = out_dir / cell.key
      fields = cell.fields()
      lock = claim_path(path)
      if path.exists():
        record = _read_record(path, list(fields))
        if {f: record[f] for f in fields} != fields:
          raise GridError(f"result file {path} holds {({f: record[f] for f in fields})}, not "
                          f"cell {fields}; delete it to recompute the cell")
        skipped += 1
      else:
        if claim:
          path.parent.mkdir(parents=True, exist_ok=True)
          if not _claim(lock):
            elsewhere += 1
            bar.update()
            continue
        try:
          record = _record(cell, run_cell(cell))
          _write_json_atomic(path, record)
        finally:
          if claim:
            lock.unlink(missing_ok=True)
        done += 1
      records[i] = record
      bar.set_postfix_str(f"done={done} skipped={skipped}{f' elsewhere={elsewhere}' if claim else ''}"
                          f" {cell.key} score={record['score']:.2f}", refresh=False)
      bar.update()
  finally:
    bar.close()
  return records


def load_results(out_dir: str | epath.PathLike) -> list[dict[str, Any]]:
  """Every finished cell's record under `out_dir`, sorted by (target, source, seed).

  Temp files of writes under way (dot-names) are ignored; a missing `out_dir` has no results.
  """
  out_dir = epath.Path(out_dir)
  if not out_dir.exists():
    return []
  paths = [p for p in out_dir.glob("*/*/seed*.json")
           if not any(part.startswith(".") for part in p.relative_to(out_dir).parts)]
  records = [_read_record(p) for p in paths]
  return sorted(records, key=lambda r: (r["target"], r["source"], r["seed"]))
