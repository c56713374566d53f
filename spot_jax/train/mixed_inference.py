"""Mixed-task inference (`spot-jax infer --tasks A B ...`): one batch holds examples of several tasks
and every example is decoded with its own task's prompt from a prompt library.

Why this works without a model change: the encoder takes a prompt per example ([B, P, E],
spot_jax.model.t5.prepend_prompt) and nothing after the encoder reads it, so greedy decoding of a
mixed batch gives each example the tokens it gets when its task is decoded alone (tests check this
token for token). Only the prompts differ per example; P and E are the library's, one for all.

Which prompt a task gets (`choose_prompts`):
  own        the task's own source prompt: its best run by validation score (PromptLibrary.get:
             highest score, runs without a score last, ties to the first run name), or the run
             named by runs={task: run} (--run TASK=RUN).
  retrieval  the source prompt of the library task ranked first by SPoT retrieval
             (spot_jax.library.retrieval.rank_sources) against a task embedding of the task:
             one the user gives (embeddings={task: [P, E]}, --embedding TASK=EMB.npy; it forces
             retrieval even for a task with its own prompt), or else, for a task whose library runs
             hold task embeddings but no source prompt, those embeddings (compared run by run).
             The task itself is never its own retrieved source. A task with no source prompt and no
             task embedding cannot be served: the error says how to get one.

Outputs (written whole or not at all, after every check has passed):
  OUT                  one JSON line per example, in the interleaved order it was decoded:
                       {"task", "index" (in its task's split), "batch", "inputs", "target",
                        "prediction", "prompt": "<source task>/<run>"}
  OUT minus .jsonl + .metrics.json
                       {"split", "num_examples", "tasks": {task: {"prompt": {...}, "num_examples",
                        "metrics": {...}}}, "score": mean of the task scores}
The metrics are each task's seqio metric functions: predict metrics on the postprocessed decoded
text, score metrics on the log-likelihood of the target under the example's prompt.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
from etils import epath

from spot_jax.errors import SpotError
from spot_jax.io import atomic_write
from spot_jax.library import retrieval
from spot_jax.library.store import PromptLibrary
from spot_jax.model import decoding
from spot_jax.model.config import T5Config
from spot_jax.train.evaluation import score_of
from spot_jax.validation import check_split, resolve_task

DEFAULT_TARGET_LENGTH = 16  # runs/infer.gin's targets length


class InferError(SpotError):
  """A mixed-task inference that cannot run as asked: an unknown task, a task without a prompt,
  a library of another model."""


@dataclasses.dataclass(frozen=True)
class PromptChoice:
  """The prompt one task is decoded with, and where it came from."""

  task: str  # the task decoded with it
  source: str  # the library task whose source prompt it is
  run: str
  via: str  # "own" or "retrieval"
  similarity: Optional[float]  # the retrieval similarity (None for "own")
  prompt: np.ndarray  # [P, E] float32

  def describe(self) -> dict[str, Any]:
    """JSON-ready record of the choice (without the prompt)."""
    return {"source": self.source, "run": self.run, "via": self.via,
            "similarity": self.similarity}

  @property
  def name(self) -> str:
    return f"{self.source}/{self.run}"


@dataclasses.dataclass(frozen=True)
class Example:
  """One example of a task's split, tokenized, with the raw features its postprocessor may read."""

  task: str
  index: int  # position in the task's split
  inputs: np.ndarray  # [T] int32, EOS included
  targets: np.ndarray  # [L] int32, EOS included
  features: dict  # the dataset's example (pretokenized texts, ids, ...)

  def text(self, key: str) -> str:
    value = self.features.get(f"{key}_pretokenized", b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_assignments(items: Optional[Sequence[str]], flag: str, value: str) -> dict[str, str]:
  """["task_a=x", "task_b=y"] -> {"task_a": "x", "task_b": "y"}; SpotError on another shape."""
  parsed: dict[str, str] = {}
  for item in items or ():
    task, sep, rhs = item.partition("=")
    if not sep or not task or not rhs:
      raise InferError(f"{flag} takes TASK={value}, got {item!r}")
    parsed[task] = rhs
  return parsed


def resolve_tasks(names: Sequence[str]) -> list[str]:
  """The seqio tasks named (a mixture stands for its tasks), first occurrence order, no repeats."""
  import seqio
  tasks: list[str] = []
  for name in names:
    found = resolve_task(name)
    for task in (found.tasks if isinstance(found, seqio.Mixture) else [found]):
      if task.name not in tasks:
        tasks.append(task.name)
  if not tasks:
    raise InferError("no tasks to decode; name seqio tasks with --tasks")
  return tasks


def choose_prompts(library: PromptLibrary, tasks: Sequence[str], *,
                   runs: Optional[Mapping[str, str]] = None,
                   embeddings: Optional[Mapping[str, np.ndarray]] = None,
                   embedding_run: Optional[str] = None,
                   metric: str = "token_cosine") -> dict[str, PromptChoice]:
  """{task: PromptChoice} for every task (module docstring: own prompt, else retrieval)."""
  runs, embeddings = dict(runs or {}), dict(embeddings or {})
  if library.identity is None or not library.list():
    raise InferError(f"the library {library.path} is empty; add source prompts with `spot-jax "
                     "library add`, or drop --library to use the released one")
  for flag, named in (("--run", runs), ("--embedding", embeddings)):
    stray = sorted(set(named) - set(tasks))
    if stray:
      raise InferError(f"{flag} names {', '.join(stray)}, which --tasks does not; add them to "
                       "--tasks or drop them")
  both = sorted(set(runs) & set(embeddings))
  if both:
    raise InferError(f"{', '.join(both)} has both --run (its own prompt) and --embedding "
                     "(retrieval); give one")
  with_source = {e.task for e in library.list() if e.has("source_prompt")}
  choices = {}
  for task in tasks:
    if task in runs or (task in with_source and task not in embeddings):
      entry = library.get(task, runs.get(task), kind="source_prompt")
      choices[task] = PromptChoice(task, task, entry.run, "own", None, entry.source_prompt())
      continue
    query = _retrieval_query(library, task, embeddings.get(task), embedding_run)
    ranking = [(source, score) for source, score in retrieval.rank_sources(library, query, metric)
               if source in with_source and source != task]
    if not ranking:
      raise InferError(f"retrieval for {task} found no other library task with a source prompt "
                       f"in {library.path}; add source prompts with `spot-jax library add`")
    source, score = ranking[0]
    entry = library.get(source, kind="source_prompt")
    choices[task] = PromptChoice(task, source, entry.run, "retrieval", score,
                                 entry.source_prompt())
  return choices


def _retrieval_query(library: PromptLibrary, task: str, given: Optional[np.ndarray],
                     embedding_run: Optional[str]) -> retrieval.Query:
  """The task embedding retrieval ranks the sources by: the given one (compared with the runs
  `embedding_run`, or every run), else the task's own library embeddings, run by run."""
  if given is not None:
    return {embedding_run: np.asarray(given, np.float32)}
  own = {e.run: e.task_embedding() for e in library.list(task) if e.has("task_embedding")}
  if own:
    return own
  raise InferError(f"task {task} has no source prompt in {library.path} and no task embedding to "
                   f"retrieve one with; add a run of it (`spot-jax library add`) or give "
                   f"--embedding {task}=EMB.npy (`spot-jax embed` for an embedded task, or "
                   "`spot-jax export-prompt` of an early checkpoint of a short tuning run)")


def check_model(library: PromptLibrary, config: T5Config, frozen: Any,
                verify_checksum: bool = True) -> None:
  """The library's prompts fit this model: same embedding width and (if asked) the same frozen
  parameters they were tuned on."""
  identity = library.identity
  if identity.embed_dim != config.emb_dim:
    raise InferError(f"the prompts of {library.path} are {identity.embed_dim} wide but model "
                     f"{config.name} embeds {config.emb_dim}; use the library's model "
                     f"({identity.model}) with --checkpoint")
  if verify_checksum:
    from spot_jax.train.exports import params_checksum
    if params_checksum(frozen) != identity.frozen_checksum:
      raise InferError(f"the prompts of {library.path} were tuned on other frozen parameters "
                       f"({identity.model}, {identity.frozen_checksum[:19]}); give that "
                       "checkpoint with --checkpoint, or --no_model_check to decode anyway")


def read_examples(task_name: str, split: str, num_examples: Optional[int] = None) -> list[Example]:
  """The first `num_examples` (default: all) examples of a task's split, in order, untrimmed."""
  task = resolve_task(task_name)
  check_split(task, split, setting="--split")
  ds = task.get_dataset(None, split=split, shuffle=False, num_epochs=1)
  if num_examples:
    ds = ds.take(num_examples)
  return [Example(task_name, i, np.asarray(ex["inputs"], np.int32),
                  np.asarray(ex["targets"], np.int32), ex)
          for i, ex in enumerate(ds.as_numpy_iterator())]


def interleave(groups: Sequence[Sequence[Any]]) -> list[Any]:
  """Round robin over the groups (a0 b0 c0 a1 b1 ...), so that consecutive examples, hence every
  batch, come from different tasks while a group has examples left."""
  out = []
  for i in range(max((len(g) for g in groups), default=0)):
    out.extend(g[i] for g in groups if i < len(g))
  return out


def pad_tokens(rows: Sequence[np.ndarray], length: int) -> np.ndarray:
  """[N, length] int32: each row cut to `length` or padded with 0."""
  out = np.zeros((len(rows), length), np.int32)
  for i, row in enumerate(rows):
    out[i, :min(length, len(row))] = row[:length]
  return out


def _batched(n: int, batch_size: int):
  for start in range(0, n, batch_size):
    yield start, min(start + batch_size, n)


def _pad_rows(x: np.ndarray, batch_size: int) -> np.ndarray:
  """Zero rows up to `batch_size`: every batch has one shape, one compiled function serves all."""
  return np.pad(x, [(0, batch_size - len(x))] + [(0, 0)] * (x.ndim - 1))


def decode_mixed(params: Any, config: T5Config, inputs: np.ndarray, prompt_ids: np.ndarray,
                 prompts: np.ndarray, *, batch_size: int, max_decode_len: int,
                 progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
  """Greedy tokens [N, max_decode_len] of inputs [N, T], example i decoded with prompt
  prompts[prompt_ids[i]] (prompts [K, P, E]); `progress(done, total)` after each batch."""
  out = np.zeros((len(inputs), max_decode_len), np.int32)
  for start, stop in _batched(len(inputs), batch_size):
    batch_prompts = _pad_rows(prompts[prompt_ids[start:stop]], batch_size)  # [B, P, E]
    tokens = decoding.greedy_decode(params, _pad_rows(inputs[start:stop], batch_size),
                                    config=config, max_decode_len=max_decode_len,
                                    peft={"prompt": batch_prompts})
    out[start:stop] = np.asarray(tokens)[:stop - start]
    if progress:
      progress(stop, len(inputs))
  return out


def score_mixed(params: Any, config: T5Config, inputs: np.ndarray, targets: np.ndarray,
                prompt_ids: np.ndarray, prompts: np.ndarray, *, batch_size: int) -> np.ndarray:
  """Log-likelihood [N] of targets [N, L] given inputs [N, T], each under its own prompt."""
  out = np.zeros((len(inputs),), np.float32)
  for start, stop in _batched(len(inputs), batch_size):
    scores = decoding.score_targets(params, _pad_rows(inputs[start:stop], batch_size),
                                    _pad_rows(targets[start:stop], batch_size), config=config,
                                    peft={"prompt": _pad_rows(prompts[prompt_ids[start:stop]],
                                                              batch_size)})
    out[start:stop] = np.asarray(scores)[:stop - start]
  return out


def task_metrics(task_name: str, examples: Sequence[Example], predictions: Sequence[str],
                 scores: Optional[Sequence[float]] = None) -> dict[str, float]:
  """The task's seqio metrics: predict metric functions on the postprocessed predictions and
  targets (as seqio.Evaluator postprocesses them), score metric functions on `scores`."""
  task = resolve_task(task_name)
  targets = [task.postprocess_fn(ex.text("targets"), example=ex.features, is_target=True)
             for ex in examples]
  values: dict[str, float] = {}
  if task.predict_metric_fns:
    processed = [task.postprocess_fn(p, example=ex.features, is_target=False)
                 for p, ex in zip(predictions, examples)]
    for fn in task.predict_metric_fns:
      values.update(fn(targets, processed))
  if task.score_metric_fns and scores is not None:
    for fn in task.score_metric_fns:
      values.update(fn(targets, list(scores)))
  return {k: float(getattr(v, "value", v)) for k, v in values.items()}


def model_loader(library: PromptLibrary, checkpoint: Optional[str] = None,
                 config_name: Optional[str] = None) -> Callable[[], tuple[T5Config, Any]]:
  """A loader of the frozen model (called once the cheap checks have passed): `checkpoint` (t5x
  or HF; its config inferred, or `config_name`), by default the shipped embedded model when the
  library's prompts were tuned on it."""
  def load() -> tuple[T5Config, Any]:
    from spot_jax.checkpoints import load_checkpoint
    from spot_jax.model.config import get_config
    path = checkpoint
    if path is None:
      from spot_jax import embedded
      identity = library.identity
      if identity is None or identity.vocabulary != embedded.VOCABULARY_ID:
        raise InferError(f"the prompts of {library.path} were tuned on model "
                         f"{identity.model if identity else '?'}: give its checkpoint with "
                         "--checkpoint (the default is the shipped embedded model)")
      path = str(embedded.model_dir())
    return load_checkpoint(path, get_config(config_name) if config_name else None)
  return load


def infer_mixed(library: PromptLibrary, task_names: Sequence[str], output_file: str, *,
                model: Callable[[], tuple[T5Config, Any]], split: str = "validation",
                runs: Optional[Mapping[str, str]] = None,
                embeddings: Optional[Mapping[str, np.ndarray]] = None,
                embedding_run: Optional[str] = None, metric: str = "token_cosine",
                batch_size: int = 32, num_examples: Optional[int] = None,
                input_length: Optional[int] = None,
                target_length: int = DEFAULT_TARGET_LENGTH, verify_checksum: bool = True,
                progress: bool = True) -> dict:
  """Decodes `num_examples` (default: all) of each task's split in mixed batches, each example
  with its task's prompt; writes OUT and its metrics file; returns the metrics record.

  model: returns (config, frozen params), called after the tasks, prompts and examples are found
  (`model_loader`).

  input_length: the encoder length (default: the longest input read, nothing cut); target_length:
  the decoding length. Every check that a user can fail runs before anything is decoded or written.
  """
  if batch_size < 1 or target_length < 1 or (num_examples is not None and num_examples < 1):
    raise InferError("--batch_size, --target_length and --num_examples must be positive")
  tasks = resolve_tasks(task_names)
  choices = choose_prompts(library, tasks, runs=runs, embeddings=embeddings,
                           embedding_run=embedding_run, metric=metric)
  per_task = [read_examples(task, split, num_examples) for task in tasks]
  empty = [task for task, examples in zip(tasks, per_task) if not examples]
  if empty:
    raise InferError(f"split {split} of {', '.join(empty)} holds no examples; choose another "
                     "--split")
  config, frozen = model()
  check_model(library, config, frozen, verify_checksum)
  config = config.replace(dropout_rate=0.0)
  examples = interleave(per_task)
  length = input_length or max(len(ex.inputs) for ex in examples)
  inputs = pad_tokens([ex.inputs for ex in examples], length)
  prompts = np.stack([choices[task].prompt for task in tasks])  # [K, P, E]
  prompt_ids = np.array([tasks.index(ex.task) for ex in examples], np.int32)

  def report(done: int, total: int) -> None:
    print(f"\rspot-jax infer: {done}/{total} examples of {len(tasks)} tasks "
          f"(batch {-(-done // batch_size)}/{-(-total // batch_size)})", end="", file=sys.stderr,
          flush=True)

  tokens = decode_mixed(frozen, config, inputs, prompt_ids, prompts, batch_size=batch_size,
                        max_decode_len=target_length, progress=report if progress else None)
  if progress:
    print(file=sys.stderr)
  scores = None
  if any(resolve_task(t).score_metric_fns for t in tasks):
    targets = pad_tokens([ex.targets for ex in examples], max(len(ex.targets) for ex in examples))
    scores = score_mixed(frozen, config, inputs, targets, prompt_ids, prompts,
                         batch_size=batch_size)
  vocab = {task: resolve_task(task).output_features["targets"].vocabulary for task in tasks}
  predictions = [vocab[ex.task].decode(row.tolist()) for ex, row in zip(examples, tokens)]
  lines = [json.dumps({"task": ex.task, "index": ex.index, "batch": i // batch_size,
                       "inputs": ex.text("inputs"), "target": ex.text("targets"),
                       "prediction": prediction, "prompt": choices[ex.task].name})
           for i, (ex, prediction) in enumerate(zip(examples, predictions))]
  result: dict[str, Any] = {"split": split, "num_examples": len(examples), "tasks": {}}
  for task in tasks:
    rows = [i for i, ex in enumerate(examples) if ex.task == task]
    result["tasks"][task] = {
        "prompt": choices[task].describe(), "num_examples": len(rows),
        "metrics": task_metrics(task, [examples[i] for i in rows], [predictions[i] for i in rows],
                                None if scores is None else scores[rows])}
  result["score"] = score_of({t: r["metrics"] for t, r in result["tasks"].items()})
  out = epath.Path(output_file)
  atomic_write(out, "".join(line + "\n" for line in lines))
  atomic_write(metrics_path(out), json.dumps(result, indent=2))
  return result


def metrics_path(output_file: str | epath.PathLike) -> epath.Path:
  """Where the metrics of predictions file OUT go: OUT without .jsonl, plus .metrics.json."""
  out = epath.Path(output_file)
  return out.parent / (out.name.removesuffix(".jsonl") + ".metrics.json")
