"""A library's retrieval index: every task embedding's similarity vectors, computed once.

Retrieval compares a query task embedding q [P, E] with library embeddings X_i [P, E] by one of
similarity.METRICS, after centring all of them on the mean M [P, E] of the compared embeddings. The
metric's vector of (X_i - M) is not a function of X_i's own vector (token_cosine normalizes every
centred token), so the index keeps the vectors of each centring that retrieval uses, and the means
that centre a query:

  index/index.json      {"format", "generation", "tasks": [names], "runs": [names],
                         "row_task": [task id of row i], "row_run": [run id of row i],
                         "prompt_shape": [P, E], "modes": MODES, "metrics": METRICS}
  index/vectors.npy     float32 [len(MODES), len(METRICS), N, E]: the metric's vector of row i's
                          "raw"  X_i                          (no centring)
                          "run"  X_i - the mean of its run's rows  (same-seed retrieval)
                          "all"  X_i - the mean of all rows         (a query of no particular run)
  index/means.npy       float32 [R + 1, P, E]: each run's mean embedding, then all rows' mean
  index/embeddings.npy  float32 [N, P, E]: the embeddings, to compare with a subset of the rows
                          (centred on the subset's own mean) and to rebuild the index without
                          reading every entry again

Rows are the library's entries holding a task embedding, sorted by (task, run). Ranking from disk
reads index.json, means.npy and one [N, E] block of vectors.npy (memory-mapped: only what is used
is read), however large N is. The index is rebuilt whole by every add and remove, O(N P E) work
far below the cost of tuning the prompt being added, and replaced atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
from etils import epath

from spot_jax.io import atomic_directory, is_local
from spot_jax.library import similarity

FORMAT = 1
INDEX_FILE = "index.json"
VECTORS_FILE = "vectors.npy"
MEANS_FILE = "means.npy"
EMBEDDINGS_FILE = "embeddings.npy"
MODES = ("raw", "run", "all")

Key = tuple[str, str]  # (task, run)
Allocate = Callable[[str, tuple[int, ...]], np.ndarray]


@dataclasses.dataclass(frozen=True, eq=False)
class Index:
  """The rows' embeddings, group means and vectors; arrays may be read-only memory maps."""

  tasks: tuple[str, ...]  # distinct task names, sorted
  runs: tuple[str, ...]  # distinct run names, sorted
  row_task: np.ndarray  # int [N]: row i's task is tasks[row_task[i]]
  row_run: np.ndarray  # int [N]: row i's run is runs[row_run[i]]
  embeddings: np.ndarray  # float32 [N, P, E]
  means: np.ndarray  # float32 [R + 1, P, E]: means[r] over run r's rows, means[-1] over all rows
  vectors: np.ndarray  # float32 [len(MODES), len(METRICS), N, E]
  generation: str = ""  # the library state it was built from (see PromptLibrary)

  @property
  def prompt_shape(self) -> tuple[int, int]:
    return tuple(self.embeddings.shape[1:])

  def rows(self, run: Optional[str] = None, tasks: Optional[Sequence[str]] = None) -> np.ndarray:
    """Row numbers of `run` (None: any run) whose task is one of `tasks` (None: any task)."""
    keep = np.ones(len(self.row_task), bool)
    if run is not None:
      keep &= self.row_run == (self.runs.index(run) if run in self.runs else -1)
    if tasks is not None:
      ids = {task: i for i, task in enumerate(self.tasks)}
      keep &= np.isin(self.row_task, [ids[t] for t in set(tasks) if t in ids])
    return np.flatnonzero(keep)

  def similarities(self, query: np.ndarray, metric: str, rows: np.ndarray, run: Optional[str],
                   center: bool) -> np.ndarray:
    """The metric between `query` [P', E] and each of `rows`, some or all rows of `run` (None:
    of any run). With `center`, the query [P, E] and the rows are first centred on the rows' mean:
    precomputed when `rows` are all of the group, computed from the embeddings for a subset."""
    metric_id = similarity.METRICS.index(metric)
    if not center:
      return self._dot(self.vectors[MODES.index("raw"), metric_id], rows,
                       similarity.prompt_vectors(query, metric))
    if len(rows) < len(self.rows(run)):
      subset = np.asarray(self.embeddings[rows])
      mean = mean_embedding(subset)
      return (similarity.prompt_vectors(subset - mean, metric)
              @ similarity.prompt_vectors(query - mean, metric))
    if run is None:
      mode, mean = "all", self.means[-1]
    else:
      mode, mean = "run", self.means[self.runs.index(run)]
    return self._dot(self.vectors[MODES.index(mode), metric_id], rows,
                     similarity.prompt_vectors(query - mean, metric))

  def _dot(self, vectors: np.ndarray, rows: np.ndarray, query_vector: np.ndarray) -> np.ndarray:
    if len(rows) == len(self.row_task):  # every row: one contiguous block, no gather
      return np.asarray(vectors) @ query_vector
    return np.asarray(vectors[rows]) @ query_vector


def mean_embedding(embeddings: np.ndarray) -> np.ndarray:
  """[n, P, E] -> [P, E], summed in float64 (libraries hold 10^4+ embeddings), as float32."""
  return embeddings.mean(axis=0, dtype=np.float64).astype(np.float32)


def build(keys: Sequence[Key], load: Callable[[int], np.ndarray], prompt_shape: tuple[int, int],
          generation: str = "", allocate: Optional[Allocate] = None) -> Index:
  """The index of rows `keys` (sorted (task, run) pairs) whose embedding i is load(i) [P, E].

  `allocate(name, shape)` gives each float32 array to fill (default: in memory); `write` gives
  memory maps of the files, so an index larger than memory is built chunk by chunk.
  """
  allocate = allocate or (lambda name, shape: np.empty(shape, np.float32))
  tasks, runs = sorted({t for t, _ in keys}), sorted({r for _, r in keys})
  task_ids, run_ids = {t: i for i, t in enumerate(tasks)}, {r: i for i, r in enumerate(runs)}
  row_task = np.array([task_ids[t] for t, _ in keys], np.int64)
  row_run = np.array([run_ids[r] for _, r in keys], np.int64)
  n, (length, embed) = len(keys), prompt_shape
  embeddings = allocate(EMBEDDINGS_FILE, (n, length, embed))
  for i in range(n):
    embeddings[i] = load(i)
  means = allocate(MEANS_FILE, (len(runs) + 1, length, embed))
  sums, counts = np.zeros(means.shape), np.zeros(len(means))
  for start, stop in _chunks(n, length * embed):
    chunk, run_ids = np.asarray(embeddings[start:stop]), row_run[start:stop]
    for run in np.unique(run_ids):
      sums[run] += chunk[run_ids == run].sum(axis=0, dtype=np.float64)
      counts[run] += np.count_nonzero(run_ids == run)
    sums[-1] += chunk.sum(axis=0, dtype=np.float64)
    counts[-1] += stop - start
  means[:] = sums / np.maximum(counts, 1)[:, None, None]
  vectors = allocate(VECTORS_FILE, (len(MODES), len(similarity.METRICS), n, embed))
  for start, stop in _chunks(n, length * embed):
    chunk = np.asarray(embeddings[start:stop])
    centred = {"raw": chunk, "run": chunk - means[row_run[start:stop]], "all": chunk - means[-1]}
    for m, mode in enumerate(MODES):
      for k, metric in enumerate(similarity.METRICS):
        vectors[m, k, start:stop] = similarity.prompt_vectors(centred[mode], metric)
  return Index(tuple(tasks), tuple(runs), row_task, row_run, embeddings, means, vectors, generation)


def write(directory: str | epath.PathLike, keys: Sequence[Key], load: Callable[[int], np.ndarray],
          prompt_shape: tuple[int, int], generation: Optional[str]) -> str:
  """Builds the index of `keys` into `directory`, replacing what is there all at once; returns
  its generation: `generation`, or for None a digest of the keys and embeddings."""
  with atomic_directory(directory, overwrite=True) as tmp:
    with _array_files(tmp) as allocate:
      index = build(keys, load, prompt_shape, generation or "", allocate)
    if generation is None:
      generation = digest(index)
    header = {"format": FORMAT, "generation": generation, "tasks": list(index.tasks),
              "runs": list(index.runs), "row_task": index.row_task.tolist(),
              "row_run": index.row_run.tolist(), "prompt_shape": list(prompt_shape),
              "modes": list(MODES), "metrics": list(similarity.METRICS)}
    (tmp / INDEX_FILE).write_text(json.dumps(header))
  return generation


def digest(index: Index) -> str:
  """sha256 over the rows' (task, run) and their embeddings' bytes."""
  hasher = hashlib.sha256()
  for task, run in zip(index.row_task, index.row_run):
    hasher.update(f"{index.tasks[task]}/{index.runs[run]};".encode())
  for start, stop in _chunks(len(index.row_task), int(np.prod(index.prompt_shape))):
    hasher.update(np.ascontiguousarray(index.embeddings[start:stop], np.float32).tobytes())
  return "sha256:" + hasher.hexdigest()


def read(directory: str | epath.PathLike) -> Optional[Index]:
  """The index in `directory` (arrays memory-mapped where the file system allows); None when
  there is none or it has another layout. Raises ValueError or OSError for a damaged one."""
  directory = epath.Path(directory)
  if not (directory / INDEX_FILE).exists():
    return None
  header = json.loads((directory / INDEX_FILE).read_text())
  if (header.get("format") != FORMAT or header.get("modes") != list(MODES)
      or header.get("metrics") != list(similarity.METRICS)):
    return None
  n, (length, embed) = len(header["row_task"]), header["prompt_shape"]
  expected = {EMBEDDINGS_FILE: (n, length, embed),
              MEANS_FILE: (len(header["runs"]) + 1, length, embed),
              VECTORS_FILE: (len(MODES), len(similarity.METRICS), n, embed)}
  arrays = {name: _load(directory / name, n) for name in expected}
  for name, shape in expected.items():
    if arrays[name].shape != shape or arrays[name].dtype != np.float32:
      raise ValueError(f"{directory / name} holds {arrays[name].dtype} {arrays[name].shape}, "
                       f"expected float32 {shape}")
  return Index(tuple(header["tasks"]), tuple(header["runs"]), np.asarray(header["row_task"]),
               np.asarray(header["row_run"]), arrays[EMBEDDINGS_FILE], arrays[MEANS_FILE],
               arrays[VECTORS_FILE], header["generation"])


def _chunks(n: int, row_elements: int) -> Iterator[tuple[int, int]]:
  """[start, stop) row ranges of about similarity.CHUNK_ELEMENTS floats each."""
  step = max(1, similarity.CHUNK_ELEMENTS // max(1, row_elements))
  for start in range(0, n, step):
    yield start, min(n, start + step)


@contextlib.contextmanager
def _array_files(directory: epath.Path) -> Iterator[Allocate]:
  """Allocates float32 arrays saved as directory/NAME.npy on exit: memory maps of the files on a
  local file system, in memory otherwise (gs://), then written."""
  arrays = {}

  def allocate(name: str, shape: tuple[int, ...]) -> np.ndarray:
    if is_local(directory) and all(shape):
      arrays[name] = np.lib.format.open_memmap(os.fspath(directory / name), mode="w+",
                                               dtype=np.float32, shape=shape)
    else:
      arrays[name] = np.zeros(shape, np.float32)
    return arrays[name]

  yield allocate
  for name, array in arrays.items():
    if isinstance(array, np.memmap):
      array.flush()
    else:
      buffer = io.BytesIO()
      np.save(buffer, array, allow_pickle=False)
      (directory / name).write_bytes(buffer.getvalue())


def _load(path: epath.Path, rows: int) -> np.ndarray:
  if is_local(path) and rows:
    return np.load(os.fspath(path), mmap_mode="r", allow_pickle=False)
  with path.open("rb") as f:
    return np.load(io.BytesIO(f.read()), allow_pickle=False)
