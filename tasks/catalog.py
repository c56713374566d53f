"""The catalog: every registered task with its family, source and metrics, for `spot-jax tasks`.

Registration goes through `register_task` so the catalog knows each task's family; the T5
SentencePiece vocabulary is read from $SPOT_VOCABULARY (default: the public T5 vocabulary on GCS;
loaded lazily, only when a task is tokenized).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable, Optional, Sequence

import seqio

DEFAULT_VOCABULARY = "gs://t5-data/vocabs/cc_all.32000/sentencepiece.model"


@dataclasses.dataclass(frozen=True)
class Entry:
  name: str
  family: str
  source: str  # e.g. "tfds:glue/rte:2.0.0"


ENTRIES: dict[str, Entry] = {}


def vocabulary() -> seqio.SentencePieceVocabulary:
  return seqio.SentencePieceVocabulary(os.environ.get("SPOT_VOCABULARY", DEFAULT_VOCABULARY),
                                       extra_ids=100)


def output_features() -> dict[str, seqio.Feature]:
  vocab = vocabulary()
  return {"inputs": seqio.Feature(vocab, add_eos=True, required=False),
          "targets": seqio.Feature(vocab, add_eos=True)}


def register_task(name: str, *, family: str, source: seqio.DataSource,
                  preprocessors: Sequence[Callable], metric_fns: Sequence[Callable],
                  postprocess_fn: Optional[Callable] = None,
                  features: Optional[dict[str, seqio.Feature]] = None) -> seqio.Task:
  """Registers a text-to-text task: given preprocessors, then tokenize + EOS (T5's recipe).
  `features` defaults to the T5 vocabulary's `output_features()`."""
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  task = seqio.TaskRegistry.add(
      name, source=source, output_features=features or output_features(),
      preprocessors=[*preprocessors, seqio.preprocessors.tokenize, seqio.CacheDatasetPlaceholder(),
                     seqio.preprocessors.append_eos_after_trim],
      postprocess_fn=postprocess_fn, metric_fns=list(metric_fns))
  tfds_name = getattr(source, "tfds_dataset", None)
  ENTRIES[name] = Entry(name, family, f"tfds:{tfds_name.name}" if tfds_name else type(source).__name__)
  return task


_mixture_limit = 2**19  # K of examples-proportional mixing (T5, SPoT)


def set_mixture_limit(k: int) -> None:
  """Sets K for every mixture registered without an explicit `max_examples`; read when rates are
  computed, so a gin binding (`set_mixture_limit.k = 65536`) applies after `import tasks`."""
  global _mixture_limit
  _mixture_limit = int(k)


def _limited_rate(task: seqio.Task, max_examples: Optional[int]) -> float:
  return seqio.mixing_rate_num_examples(task, maximum=max_examples or _mixture_limit)


def register_mixture(name: str, tasks: Sequence[str], *, max_examples: Optional[int] = None) -> None:
  """Examples-proportional mixture: rate = min(num_examples, K), K = `max_examples` or the
  process-wide limit (default 2^19)."""
  if name in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.remove(name)
  seqio.MixtureRegistry.add(name, list(tasks),
                            default_rate=functools.partial(_limited_rate, max_examples=max_examples))


def families() -> dict[str, list[str]]:
  out: dict[str, list[str]] = {}
  for entry in ENTRIES.values():
    out.setdefault(entry.family, []).append(entry.name)
  return out


def describe(family: Optional[str] = None) -> list[dict]:
  """One row per task: name, family, source, splits, metrics, whether its data is prepared here.

  Example row: {"name": "glue_rte_v2", "family": "glue", "source": "tfds:glue/rte:2.0.0",
                "splits": ["test", "train", "validation"], "metrics": ["accuracy"], "local": false}
  """
  rows = []
  for entry in sorted(ENTRIES.values(), key=lambda e: (e.family, e.name)):
    if family and entry.family != family:
      continue
    task = seqio.get_mixture_or_task(entry.name)
    rows.append({"name": entry.name, "family": entry.family, "source": entry.source,
                 "splits": sorted(task.splits), "metrics": [_metric_name(m) for m in task.metric_fns],
                 "local": _is_local(task.source)})
  return rows


def _metric_name(fn: Callable) -> str:
  return getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", repr(fn))


def _is_local(source: seqio.DataSource) -> bool:
  """True when the data can be read without a download: local files present, or TFDS prepared."""
  if isinstance(source, seqio.FunctionDataSource):  # generated in code (tasks/synthetic.py)
    return True
  if getattr(source, "local_dataset", None):
    from spot_jax.data import local
    return (local.data_dir() / source.local_dataset).exists()
  loader = getattr(source, "tfds_dataset", None)
  if loader is None:
    return False
  try:
    import tensorflow_datasets as tfds
    return tfds.builder(loader.name, data_dir=loader.data_dir).is_prepared()
  except Exception:  # an unknown builder or unreadable dir: not usable here
    return False
