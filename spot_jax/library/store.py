"""A prompt library in a directory (local or gs://): SPoT's source prompts and task embeddings.

  LIB/library.json                           {"format": 2, "model": {model identity}}; the first add
                                             writes it and it never changes
  LIB/entries/{task}/{run}/entry.json        {format: 1, task, run, model, kinds, score, family?}
  LIB/entries/{task}/{run}/source_prompt.npy   best validation checkpoint's prompt [P, E] (+ .json)
  LIB/entries/{task}/{run}/task_embedding.npy  early checkpoint's prompt [P, E] (+ .json), SPoT §3
  LIB/index/                                 the retrieval index of the task embeddings
                                             (spot_jax.library.index), rebuilt by add and remove
  LIB/generation                             a token every add and remove renews before it writes;
                                             the index records the token it was built at

Retrieval trusts the index only while its token is the library's: an add or remove killed before
it rebuilt the index (or made with reindex=False) leaves an index that retrieval ignores, ranking
from the entries instead (same results, slower) until the next add, remove or `reindex()`. One
writer at a time: two concurrent writers may leave an index that misses an entry.
Format 1 libraries (no index) are read as they are and become format 2 on their next write.

Every prompt of a library was tuned on one frozen model (same parameter bytes, vocabulary, P and E):
prompts and task embeddings only mean something next to the model they were tuned on, so an add for
another model is refused. An entry directory is built under a '.'-name and renamed into place, and a
removed one is renamed away before it is deleted, so readers (which skip '.'-names and directories
without entry.json, written last) never see half an entry, and a killed writer changes nothing they
see. (On gs:// a directory rename is a copy; entry.json, written last, still marks a whole entry.)
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import uuid
from typing import Any, Iterable, Mapping, Optional

import numpy as np
from etils import epath

from spot_jax.errors import SpotError
from spot_jax.io import atomic_directory, atomic_write, temporary_name
from spot_jax.library import index as index_lib
from spot_jax.peft.prompts import PromptError, load_prompt_file
from spot_jax.train.exports import read_export, write_prompt

FORMAT = 2  # of library.json
READABLE_FORMATS = (1, 2)  # format 1: the same entries, no index
ENTRY_FORMAT = 1  # of entry.json
KINDS = ("source_prompt", "task_embedding")
LIBRARY_FILE = "library.json"
ENTRY_FILE = "entry.json"
INDEX_DIR = "index"
GENERATION_FILE = "generation"
# entry.json keys the library owns; free metadata may not set them.
_RESERVED = frozenset({"format", "task", "run", "model", "kinds"})
# Task and run names become directory names: no separators, no leading '.' (temporary names).
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.,:+=@-]*")


class LibraryError(SpotError):
  """A library operation that cannot be done: another model, a wrong shape, a missing entry."""


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
  """The frozen model a prompt was tuned on; prompts transfer and compare only within one."""

  model: str
  frozen_checksum: str
  vocabulary: str
  prompt_length: int
  embed_dim: int

  @classmethod
  def from_sidecar(cls, sidecar: Mapping[str, Any],
                   where: str = "the prompt record") -> ModelIdentity:
    """The identity an export sidecar (or library.json's "model" record) carries."""
    missing = [f.name for f in dataclasses.fields(cls) if sidecar.get(f.name) is None]
    if missing:
      raise LibraryError(f"{where} lacks {', '.join(missing)}: it does not say which frozen model "
                         "the prompt was tuned on; re-export it with `spot-jax export-prompt` from "
                         "its training run, or pass a ModelIdentity in Python")
    return cls(model=str(sidecar["model"]), frozen_checksum=str(sidecar["frozen_checksum"]),
               vocabulary=str(sidecar["vocabulary"]), prompt_length=int(sidecar["prompt_length"]),
               embed_dim=int(sidecar["embed_dim"]))

  @property
  def shape(self) -> tuple[int, int]:
    """(prompt_length, embed_dim): the shape of every prompt of the library."""
    return (self.prompt_length, self.embed_dim)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def check_same_model(self, other: ModelIdentity, where: str) -> None:
    """Raises LibraryError naming the first field in which `other` differs from this identity."""
    for field in ("frozen_checksum", "model", "vocabulary", "prompt_length", "embed_dim"):
      ours, theirs = getattr(self, field), getattr(other, field)
      if ours != theirs:
        raise LibraryError(f"{where}: its {field} is {theirs!r} but the library's is {ours!r}; a "
                           "library holds prompts of one frozen model only, use another library")


@dataclasses.dataclass(frozen=True)
class Entry:
  """One (task, run) of a library; its prompts are read from disk only when asked for."""

  task: str
  run: str
  path: epath.Path
  metadata: dict  # the contents of entry.json

  def __hash__(self) -> int:  # the metadata dict is not hashable; (task, run, path) names an entry
    return hash((self.task, self.run, str(self.path)))

  @property
  def kinds(self) -> tuple[str, ...]:
    """Which of KINDS this entry holds."""
    return tuple(self.metadata.get("kinds", ()))

  @property
  def score(self) -> Optional[float]:
    """Validation score of the source prompt (higher is better), if known."""
    score = self.metadata.get("score")
    return None if score is None else float(score)

  @property
  def family(self) -> Optional[str]:
    return self.metadata.get("family")

  @property
  def identity(self) -> ModelIdentity:
    return ModelIdentity.from_sidecar(self.metadata["model"])

  def has(self, kind: str) -> bool:
    return kind in self.kinds

  def load(self, kind: str) -> np.ndarray:
    """The float32 [P, E] prompt of `kind` (one of KINDS)."""
    _check_kind(kind)
    if not self.has(kind):
      raise LibraryError(f"entry {self.task}/{self.run} has no {kind}; it holds "
                         f"{', '.join(self.kinds) or 'nothing'}")
    try:
      prompt = load_prompt_file(self.path / f"{kind}.npy")
    except PromptError as e:
      raise LibraryError(f"entry {self.task}/{self.run} is damaged: {e}") from e
    if prompt.shape != self.identity.shape:
      raise LibraryError(f"entry {self.task}/{self.run} is damaged: its {kind} has shape "
                         f"{prompt.shape}, expected {self.identity.shape}")
    return prompt

  def sidecar(self, kind: str) -> dict:
    """The JSON sidecar of `kind`: where the prompt came from (step, metrics, seed, ...)."""
    _check_kind(kind)
    return _read_json(self.path / f"{kind}.json")

  def source_prompt(self) -> np.ndarray:
    """Best-checkpoint prompt [P, E]: what SPoT transfers to a target task."""
    return self.load("source_prompt")

  def task_embedding(self) -> np.ndarray:
    """Early-checkpoint prompt [P, E]: what SPoT compares to rank source tasks."""
    return self.load("task_embedding")


class PromptLibrary:
  """A prompt library at `path` (local or gs://); nothing is written before the first add."""

  def __init__(self, path: str | epath.PathLike):
    self.path = epath.Path(path)

  def __repr__(self) -> str:
    return f"PromptLibrary({str(self.path)!r})"

  @property
  def identity(self) -> Optional[ModelIdentity]:
    """The frozen model of every prompt here; None for a library nothing was added to yet."""
    path = self.path / LIBRARY_FILE
    if not path.exists():
      return None
    record = _read_json(path)
    if record.get("format") not in READABLE_FORMATS:
      raise LibraryError(f"{path} has format {record.get('format')!r}; this spot_jax reads formats "
                         f"{', '.join(map(str, READABLE_FORMATS))}, upgrade spot_jax")
    return ModelIdentity.from_sidecar(record.get("model", {}), str(path))

  def add(self, task: str, run: str, *, identity: ModelIdentity,
          source_prompt: Any = None, task_embedding: Any = None,
          metadata: Optional[Mapping[str, Any]] = None,
          sidecars: Optional[Mapping[str, Mapping[str, Any]]] = None,
          overwrite: bool = False, reindex: bool = True) -> Entry:
    """Adds (task, run) with its prompts ([P, E] each; one may be None), all or nothing.

    `metadata` lands in entry.json: "score" (higher is better) picks the run `get` returns,
    "family" groups tasks. `sidecars` maps a kind to extra fields of its .json sidecar.
    reindex=False leaves the retrieval index out of date (retrieval then reads every entry) for
    many adds in a row: call `reindex()` after the last.
    """
    where = f"cannot add {task}/{run} to {self.path}"
    _check_name(task, "task")
    _check_name(run, "run")
    given = {"source_prompt": source_prompt, "task_embedding": task_embedding}
    given = {kind: prompt for kind, prompt in given.items() if prompt is not None}
    if not given:
      raise LibraryError(f"{where}: give a source_prompt, a task_embedding or both")
    library = self.identity
    if library is not None:
      library.check_same_model(identity, where)
    prompts = {kind: _checked_prompt(prompt, kind, identity.shape, where)
               for kind, prompt in given.items()}
    metadata = dict(metadata or {})
    reserved = sorted(_RESERVED & set(metadata))
    if reserved:
      raise LibraryError(f"{where}: metadata may not set {', '.join(reserved)}; the library does")
    record = {**metadata, "format": ENTRY_FORMAT, "task": task, "run": run,
              "model": identity.to_dict(), "kinds": sorted(prompts)}
    try:
      text = json.dumps(record, indent=2, sort_keys=True)
    except (TypeError, ValueError) as e:
      raise LibraryError(f"{where}: metadata is not JSON-serializable ({e})") from e
    path = self._entry_dir(task, run)
    if path.exists() and not overwrite:
      raise LibraryError(f"{where}: the entry exists; pass overwrite=True (--overwrite) to "
                         "replace it")
    before = self._begin_write(identity if library is None else None)
    with atomic_directory(path, overwrite=overwrite) as tmp:
      for kind, prompt in prompts.items():
        sidecar = {**(sidecars or {}).get(kind, {}), "kind": kind, "task": task,
                   "model": identity.model, "frozen_checksum": identity.frozen_checksum,
                   "vocabulary": identity.vocabulary}
        write_prompt(tmp / f"{kind}.npy", prompt, sidecar)
      (tmp / ENTRY_FILE).write_text(text)  # last: a directory without it is not an entry
    if reindex:
      self._write_index(changed={(task, run)}, trusted=before)
    return Entry(task, run, path, json.loads(text))

  def add_run(self, model_dir: str | epath.PathLike, run: Optional[str] = None,
              family: Optional[str] = None, *, metadata: Optional[Mapping[str, Any]] = None,
              overwrite: bool = False) -> Entry:
    """Adds a training run's MODEL_DIR/exports; task and model come from the sidecars, the run
    name defaults to MODEL_DIR's name and the score is the source prompt's."""
    model_dir = epath.Path(model_dir)
    exports = model_dir / "exports"
    found = {kind: _read_export(exports / f"{kind}.npy") for kind in KINDS
             if (exports / f"{kind}.npy").exists()}
    if not found:
      raise LibraryError(f"{exports} holds neither source_prompt.npy nor task_embedding.npy; "
                         "train the run first or export a checkpoint with `spot-jax export-prompt`")
    return self._add_exports(found, str(exports), None, run or model_dir.name, family,
                             {"model_dir": str(model_dir), **(metadata or {})}, overwrite)

  def add_export(self, path: str | epath.PathLike, kinds: Optional[Iterable[str]] = None, *,
                 task: Optional[str] = None, run: Optional[str] = None,
                 family: Optional[str] = None, metadata: Optional[Mapping[str, Any]] = None,
                 overwrite: bool = False) -> Entry:
    """Adds one exported prompt PATH (.npy + .json sidecar, e.g. from `spot-jax export-prompt`)
    as each of `kinds` (default: the sidecar's kind). Task and model come from the sidecar
    unless `task` is given; the run name defaults to the file's name without .npy."""
    path = epath.Path(path)
    prompt, sidecar = _read_export(path)
    kinds = tuple(kinds or ())
    if not kinds:
      if sidecar.get("kind") not in KINDS:
        raise LibraryError(f"{path} is a {sidecar.get('kind') or 'prompt'} export; say what it "
                           f"is with kinds= (--kind): {' or '.join(KINDS)}")
      kinds = (sidecar["kind"],)
    for kind in kinds:
      _check_kind(kind)
    return self._add_exports({kind: (prompt, sidecar) for kind in kinds}, str(path), task,
                             run or path.name.removesuffix(".npy"), family,
                             {"source_file": str(path), **(metadata or {})}, overwrite)

  def _add_exports(self, found: Mapping[str, tuple[np.ndarray, dict]], source: str,
                   task: Optional[str], run: str, family: Optional[str],
                   metadata: Mapping[str, Any], overwrite: bool) -> Entry:
    """Adds {kind: (prompt, sidecar)} read from `source`, taking the model (and the task, unless
    given) from the sidecars, which must agree."""
    sidecars = {kind: sidecar for kind, (_, sidecar) in found.items()}
    identities = {ModelIdentity.from_sidecar(sidecar, f"the sidecar of {source}")
                  for sidecar in sidecars.values()}
    tasks = {task} if task else {sidecar.get("task") for sidecar in sidecars.values()}
    if len(identities) > 1 or len(tasks) > 1:
      raise LibraryError(f"the exports in {source} disagree on their task or model; "
                         "re-export them from one run")
    task = tasks.pop()
    if not task:
      raise LibraryError(f"the sidecar of {source} names no task; re-export it from its training "
                         "run or give the task (--task)")
    first = next(iter(sidecars.values()))
    extra = {"score": sidecars.get("source_prompt", {}).get("score"), "seed": first.get("seed")}
    if family is not None:
      extra["family"] = family
    return self.add(task, run, identity=identities.pop(), metadata={**extra, **metadata},
                    sidecars=sidecars, overwrite=overwrite,
                    **{kind: prompt for kind, (prompt, _) in found.items()})

  def add_entry(self, entry: Entry, *, overwrite: bool = False, reindex: bool = True) -> Entry:
    """Copies `entry` of another library (e.g. the released one, into a library of your own):
    its prompts, metadata and sidecars."""
    return self.add(entry.task, entry.run, identity=entry.identity, overwrite=overwrite,
                    reindex=reindex,
                    metadata={k: v for k, v in entry.metadata.items() if k not in _RESERVED},
                    sidecars={kind: entry.sidecar(kind) for kind in entry.kinds},
                    **{kind: entry.load(kind) for kind in entry.kinds})

  def import_google_npy(self, path: str | epath.PathLike, task: str, run: str, *,
                        identity: ModelIdentity, kind: str = "source_prompt",
                        metadata: Optional[Mapping[str, Any]] = None,
                        overwrite: bool = False) -> Entry:
    """Adds a released google prompt-tuning .npy ([P, E] or [1, P, E], no sidecar) as `kind`;
    the caller vouches for `identity`, the model the prompt was tuned on."""
    _check_kind(kind)
    try:
      prompt = load_prompt_file(path)
    except PromptError as e:
      raise LibraryError(f"cannot import {path}: {e}") from e
    origin = {"origin": "google-research/prompt-tuning", "source_file": str(path)}
    return self.add(task, run, identity=identity, metadata={**origin, **(metadata or {})},
                    sidecars={kind: origin}, overwrite=overwrite, **{kind: prompt})

  def list(self, task: Optional[str] = None) -> list[Entry]:
    """Entries sorted by (task, run); only those of `task` when given."""
    root = self.path / "entries"
    if task is not None:
      _check_name(task, "task")
      task_dirs = [root / task] if (root / task).exists() else []
    else:
      task_dirs = _visible_children(root)
    entries = []
    for task_dir in task_dirs:
      for run_dir in _visible_children(task_dir):
        if (run_dir / ENTRY_FILE).exists():
          entries.append(Entry(task_dir.name, run_dir.name, run_dir,
                               _read_json(run_dir / ENTRY_FILE)))
    return sorted(entries, key=lambda e: (e.task, e.run))

  def get(self, task: str, run: Optional[str] = None, *, kind: Optional[str] = None) -> Entry:
    """The entry (task, run). With run None: the task's only run, or else its best by score
    (highest; runs without a score come last, ties go to the first run name), among the runs
    holding `kind` when given."""
    entries = self.list(task)
    if not entries:
      tasks = sorted({e.task for e in self.list()})
      raise LibraryError(f"{self.path} has no entry for task {task!r}; tasks: "
                         f"{', '.join(tasks) or 'none (the library is empty)'}")
    if run is None:
      holding = [e for e in entries if kind is None or e.has(kind)]
      if not holding:
        raise LibraryError(f"task {task!r} has no {kind} in {self.path}: none of its runs "
                           f"({', '.join(e.run for e in entries)}) holds one")
      return max(holding, key=_rank)  # max keeps the first of equal keys
    for entry in entries:
      if entry.run == run:
        return entry
    raise LibraryError(f"task {task!r} has no run {run!r} in {self.path}; runs: "
                       f"{', '.join(e.run for e in entries)}")

  def remove(self, task: str, run: str, *, reindex: bool = True) -> None:
    """Deletes (task, run): renamed to a '.'-name first, so readers never see half of it."""
    path = self.get(task, run).path
    before = self._begin_write()
    trash = temporary_name(path, "removed")
    path.rename(trash)
    trash.rmtree()
    if reindex:
      self._write_index(changed=set(), trusted=before)

  def stack(self, kind: str) -> tuple[list[Entry], np.ndarray]:
    """(entries holding `kind`, their prompts [N, P, E]) in list() order, for ranking."""
    _check_kind(kind)
    entries = [e for e in self.list() if e.has(kind)]
    if not entries:
      raise LibraryError(f"{self.path} holds no {kind}; add runs to it first")
    return entries, np.stack([e.load(kind) for e in entries])  # [N, P, E]

  def index(self) -> index_lib.Index:
    """The retrieval index of the task embeddings: read from LIB/index/ (memory-mapped) when it
    is up to date, else built in memory from the entries (the same numbers, but every entry is
    read); see spot_jax.library.index."""
    current = self._current_index(self._generation())
    if current is not None:
      return current
    entries = [e for e in self.list() if e.has("task_embedding")]
    identity = self.identity
    shape = identity.shape if identity is not None else (0, 0)
    return index_lib.build([(e.task, e.run) for e in entries],
                           lambda i: entries[i].task_embedding(), shape)

  def index_is_current(self) -> bool:
    """Whether LIB/index/ matches the entries, so retrieval reads it instead of every entry."""
    return self._current_index(self._generation()) is not None

  def reindex(self) -> None:
    """Rebuilds LIB/index/ from every entry: after adds with reindex=False, or to repair."""
    if self.identity is not None:  # else nothing was added yet
      self._write_library_file()
      # The token of a rebuilt index is a digest of what it holds: rebuilding the same library
      # gives the same bytes (tools/release_library.py is reproducible).
      generation = self._write_index(changed=None, trusted=None, generation=None)
      atomic_write(self.path / GENERATION_FILE, generation + "\n")

  def _entry_dir(self, task: str, run: str) -> epath.Path:
    return self.path / "entries" / task / run

  def _generation(self) -> str:
    path = self.path / GENERATION_FILE
    return path.read_text().strip() if path.exists() else ""

  def _write_library_file(self, identity: Optional[ModelIdentity] = None) -> None:
    """Writes library.json for a first add (of `identity`), or for a format 1 library."""
    record = _read_json(self.path / LIBRARY_FILE) if identity is None else None
    if record is None or record.get("format") != FORMAT:
      identity = identity or ModelIdentity.from_sidecar(record["model"], str(self.path))
      atomic_write(self.path / LIBRARY_FILE, json.dumps(
          {"format": FORMAT, "model": identity.to_dict()}, indent=2, sort_keys=True))

  def _begin_write(self, identity: Optional[ModelIdentity] = None) -> str:
    """Writes library.json if needed, then renews the generation token, so the index stops
    counting as current before any entry changes. Returns the previous token."""
    self._write_library_file(identity)
    before = self._generation()
    atomic_write(self.path / GENERATION_FILE, uuid.uuid4().hex + "\n")
    return before

  def _current_index(self, generation: str) -> Optional[index_lib.Index]:
    """LIB/index/ if it was built at `generation` (and that is not empty), else None."""
    if not generation:
      return None
    try:
      found = index_lib.read(self.path / INDEX_DIR)
    except (OSError, ValueError) as e:
      raise LibraryError(f"the index of {self.path} is damaged ({type(e).__name__}: {e}); "
                         "rebuild it with `spot-jax library reindex`") from e
    return found if found is not None and found.generation == generation else None

  def _write_index(self, changed: Optional[set[tuple[str, str]]], trusted: Optional[str],
                   generation: Optional[str] = "") -> str:
    """Writes LIB/index/ for the entries now on disk, at `generation` (default: the current
    one; None: a digest of the index). Rows of the index that was current at generation
    `trusted` are reused, except those in `changed`. Returns the index's generation."""
    identity = self.identity
    if generation == "":
      generation = self._generation()
    old = self._current_index(trusted) if trusted else None
    old_rows = {} if old is None else {
        (old.tasks[t], old.runs[r]): i for i, (t, r) in enumerate(zip(old.row_task, old.row_run))}
    entries = [e for e in self.list() if e.has("task_embedding")]
    keys = [(e.task, e.run) for e in entries]

    def load(i: int) -> np.ndarray:
      if keys[i] in old_rows and keys[i] not in (changed or ()):
        return old.embeddings[old_rows[keys[i]]]
      return entries[i].task_embedding()

    return index_lib.write(self.path / INDEX_DIR, keys, load, identity.shape, generation)


def _check_name(name: str, what: str) -> None:
  if not isinstance(name, str) or not _NAME.fullmatch(name):
    raise LibraryError(f"{what} name {name!r} is not usable as a directory name; use letters, "
                       "digits and _ . , : + = @ - (not starting with '.' or '-')")


def _check_kind(kind: str) -> None:
  if kind not in KINDS:
    raise LibraryError(f"unknown prompt kind {kind!r}; use one of {', '.join(KINDS)}")


def _checked_prompt(prompt: Any, kind: str, shape: tuple[int, int], where: str) -> np.ndarray:
  """`prompt` as float32 [P, E], or LibraryError naming its shape and the expected one."""
  prompt = np.asarray(prompt)
  if not np.issubdtype(prompt.dtype, np.number):
    raise LibraryError(f"{where}: its {kind} is not a numeric array (dtype {prompt.dtype})")
  if prompt.shape != shape:
    raise LibraryError(f"{where}: its {kind} has shape {tuple(prompt.shape)} but prompts here "
                       f"are (prompt_length, embed_dim) = {shape}")
  prompt = prompt.astype(np.float32)
  if not np.all(np.isfinite(prompt)):
    raise LibraryError(f"{where}: its {kind} contains NaN or inf values")
  return prompt


def _read_export(path: epath.Path) -> tuple[np.ndarray, dict]:
  try:
    return read_export(path)
  except (PromptError, OSError, ValueError) as e:
    raise LibraryError(f"cannot read the export {path} and its .json sidecar: {e}") from e


def _rank(entry: Entry) -> tuple[bool, float]:
  score = entry.score
  known = score is not None and not math.isnan(score)
  return (known, score if known else -math.inf)


def _visible_children(directory: epath.Path) -> list[epath.Path]:
  """Sub-directories, without '.'-names (writes and removals under way)."""
  if not directory.exists():
    return []
  return sorted((p for p in directory.iterdir() if not p.name.startswith(".") and p.is_dir()),
                key=lambda p: p.name)


def _read_json(path: epath.Path) -> dict:
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise LibraryError(f"cannot read {path} ({type(e).__name__}: {e})") from e
