"""The embedded universe's tasks (spot_jax.embedded.tasks) as seqio tasks `synthetic_*_v2`.

Importing this module registers them (`import tasks` does, like the rest of the catalog).
Tokenized with the shipped model's SentencePiece vocabulary (spot_jax/embedded), generated lazily
in code (no files), deterministic for a seed. Classification and extractive tasks score exact-match
accuracy of the decoded text; the similarity regressions score Pearson/Spearman of the decoded number.
Mixture `synthetic_sources_v2`: all 16 source tasks, examples-proportional (SPoT's generic source
prompt). Importing it also registers the universe's CrossFit-style k-shot tasks
(spot_jax.embedded.crossfit).
"""

from __future__ import annotations

import functools

import seqio
import tensorflow as tf

from spot_jax import embedded
from spot_jax.data import metrics
from spot_jax.embedded import tasks as synthetic_tasks
from tasks import catalog


@functools.lru_cache(maxsize=1)
def vocabulary() -> seqio.SentencePieceVocabulary:
  return seqio.SentencePieceVocabulary(str(embedded.VOCABULARY), extra_ids=embedded.EXTRA_IDS)


def output_features() -> dict[str, seqio.Feature]:
  """The shipped model's vocabulary for inputs and targets, EOS appended (every synthetic task)."""
  vocab = vocabulary()
  return {"inputs": seqio.Feature(vocab, add_eos=True, required=False),
          "targets": seqio.Feature(vocab, add_eos=True)}


CHUNK = 1000  # examples generated per call; seqio's shuffle buffer holds 1000
COLUMNS = ("inputs", "targets", "idx")


@functools.lru_cache(maxsize=None)
def _chunk(name: str, split: str, start: int) -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]:
  """Examples start .. start+CHUNK-1 of the split as columns, generated once per process."""
  size = synthetic_tasks.TASKS[name].size(split)
  rows = [synthetic_tasks.example(name, split, i) for i in range(start, min(start + CHUNK, size))]
  return tuple(tuple(row[key] for row in rows) for key in COLUMNS)


def _dataset_fn(split: str, shuffle_files: bool, seed=None, *, name: str) -> tf.data.Dataset:
  """The split in index order, as in-memory chunks of CHUNK examples: a chunk is generated when
  the stream first reaches it and kept, so a short run generates little and later epochs and the
  other runs of a study generate nothing (200 batches of a target: 6.6 s with a Python generator
  per example, 2.1 s this way, one core)."""
  del shuffle_files, seed  # examples are indexed; seqio shuffles the stream itself
  size = synthetic_tasks.TASKS[name].size(split)

  def chunk(start: tf.Tensor) -> tf.data.Dataset:
    columns = tf.py_function(lambda s: _chunk(name, split, int(s)), [start],
                             (tf.string, tf.string, tf.int32))
    return tf.data.Dataset.from_tensor_slices(
        {key: tf.ensure_shape(column, [None])
         for key, column in zip(COLUMNS, columns)})

  return tf.data.Dataset.range(0, size, CHUNK).flat_map(chunk)


def register(spec: synthetic_tasks.TaskSpec) -> seqio.Task:
  source = seqio.FunctionDataSource(
      functools.partial(_dataset_fn, name=spec.name), splits=synthetic_tasks.SPLITS,
      num_input_examples=dict(zip(synthetic_tasks.SPLITS, spec.sizes)))
  regression = spec.kind == "regression"
  return catalog.register_task(
      spec.name, family=f"synthetic_{spec.family}", source=source, preprocessors=[],
      metric_fns=[metrics.pearson_spearman if regression else metrics.accuracy],
      postprocess_fn=metrics.string_to_float if regression else None, features=output_features())


for _spec in synthetic_tasks.TASKS.values():
  register(_spec)
catalog.register_mixture(synthetic_tasks.SOURCES_MIXTURE, synthetic_tasks.SOURCE_TASKS)


@functools.lru_cache(maxsize=None)
def feature_lengths(name: str) -> dict[str, int]:
  """Tight lengths for one synthetic task or a mixture of them: the longest of 300 examples per
  split in word pieces (the vocabulary has one piece per word) + EOS, rounded up to a multiple of 8.
  Shorter than tasks.FEATURE_LENGTHS, so studies spend less time on padding."""
  if name in seqio.MixtureRegistry.names():
    lengths = [feature_lengths(t.name) for t in seqio.get_mixture_or_task(name).tasks]
    return {key: max(length[key] for length in lengths) for key in synthetic_tasks.FEATURE_LENGTHS}
  longest = {"inputs": 0, "targets": 0}
  for split in synthetic_tasks.SPLITS:
    for ex in synthetic_tasks.examples(name, split, limit=300):
      for key in longest:
        longest[key] = max(longest[key], len(ex[key].split()) + 1)
  return {key: min(-(-n // 8) * 8, synthetic_tasks.FEATURE_LENGTHS[key]) for key, n in longest.items()}


# The CrossFit-style k-shot tasks sample these tasks; imported last, as it uses this module.
from spot_jax.embedded import crossfit  # noqa: F401
