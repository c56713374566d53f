"""The embedded universe in CrossFit's few-shot form: k-shot train/dev samples of its tasks.

CrossFit's Gym (tasks/fewshot_gym_dataset.py, FewshotGymClassificationDataset) makes a k-shot
task from a dataset by shuffling its train split with a seed, grouping the examples by label
(labels in the order they first appear), and taking the first k of every label as the k-shot train
set and the next k as the k-shot dev set; the dataset's own validation split becomes the test set.
`k_shot_indices` applies that rule to an embedded task's train split, and the k-shot tasks are
registered as `synthetic_{short}_{k}_{seed}_v2` with splits
- train: the k-shot train set, validation: the k-shot dev set (disjoint from it),
- test: the embedded task's validation split (CrossFit's test is the original dev split),
- train_dev (UPSTREAM_SPLIT): train then validation, what CrossFit's multi-task upstream reads.

Targets (TARGETS, the analogues of CrossFit's classification test tasks) score CrossFit's macro-F1
("Classification-F1") except nli_cb, the superglue-cb analogue, which scores accuracy as in the ADL
report's Table 1. Upstream (UPSTREAM): the universe's classification source tasks (para_sts is a
regression, qa_* and mc_* are extractive) in the same k-shot form for every seed, because
CrossFit's upstream loaders (dataloader/fewshot_gym_multitask.py, fewshot_gym_metalearn.py) read
every k-shot file the Gym wrote for a task, the 5 seeds. Mixture `synthetic_crossfit_upstream_v2`:
those tasks, examples-proportional.

Registering reads nothing and generates nothing: a task's examples are generated (and cached for
the process) when its data is first asked for, and only as many train examples as the sample needs.
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import numpy as np
import seqio
import tensorflow as tf

from spot_jax.embedded import seqio_tasks
from spot_jax.embedded import tasks as synthetic_tasks
from spot_jax.errors import SpotError
from tasks import catalog
from tasks import crossfit as gym

K = gym.K
SEEDS = gym.SEEDS
UPSTREAM_SEEDS = gym.UPSTREAM_SEEDS
UPSTREAM_SPLIT = gym.UPSTREAM_SPLIT
SPLITS = ("train", "validation", "test", UPSTREAM_SPLIT)
TARGETS = ("sent_mood", "sent_story", "nli_cb", "nli_rte", "para_mrpc", "cola_judge", "wsd_wic")
ACCURACY_TARGETS = ("nli_cb",)  # superglue-cb is scored by accuracy; every other target by F1
UPSTREAM_SOURCES = tuple(
    spec.stream.removeprefix("synthetic_") for spec in synthetic_tasks.TASKS.values()
    if spec.role == "source" and spec.kind == "classification")
MIXTURE = synthetic_tasks.task_name("crossfit_upstream")
FAMILY = "synthetic_crossfit"

# ---------------------------------------------------------------- metrics


def macro_f1(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
  """CrossFit's "Classification-F1" on single-string targets: sklearn's macro F1 over every string
  among targets and stripped decodes (a decode that is no label is a class of F1 0)."""
  return gym.crossfit_macro_f1([[t] for t in targets], [p.strip() for p in predictions])


def accuracy(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
  """CrossFit's "ACC" on single-string targets (case-insensitive, stripped decodes)."""
  return gym.crossfit_accuracy([[t] for t in targets], [p.strip() for p in predictions])


# ---------------------------------------------------------------- k-shot sampling


@functools.lru_cache(maxsize=None)
def _train_example(name: str, index: int) -> dict:
  """Train example `index` of embedded task `name`, generated once per process (the 5 seeds of a
  small task draw mostly the same examples)."""
  return synthetic_tasks.example(name, "train", index)


@functools.lru_cache(maxsize=None)
def k_shot_indices(name: str, k: int, seed: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """(train, dev) indices into the train split of embedded task `name` (registered or unversioned
  name), CrossFit's rule: a seeded shuffle of the split, grouped by label word in order of first
  appearance; k per label for train, the next k per label for dev. The shuffle is streamed and
  stops once every label has 2k examples, so a large split costs about 2k x labels examples.
  A label with fewer than 2k examples in the split is a SpotError naming it."""
  (name,) = synthetic_tasks.resolve([name])
  spec = synthetic_tasks.TASKS[name]
  if spec.kind != "classification":
    raise SpotError(f"{name} is a {spec.kind} task; k-shot sampling per label needs a "
                    "classification task")
  if k < 1:
    raise SpotError(f"k must be at least 1, got {k}")
  by_label: dict[str, list[int]] = {}
  wanting = set(spec.classes)  # labels with fewer than 2k so far
  for index in np.random.default_rng(seed).permutation(spec.size("train")):
    label = _train_example(name, int(index))["targets"]
    picked = by_label.setdefault(label, [])
    if len(picked) < 2 * k:
      picked.append(int(index))
      if len(picked) == 2 * k:
        wanting.discard(label)
    if not wanting:
      break
  if wanting:
    counts = ", ".join(f"{label!r}: {len(by_label.get(label, []))}" for label in sorted(wanting))
    raise SpotError(f"{name}: fewer than 2k = {2 * k} train examples of label(s) {counts}; "
                    "choose a smaller k")
  train = tuple(i for picked in by_label.values() for i in picked[:k])
  dev = tuple(i for picked in by_label.values() for i in picked[k:2 * k])
  return train, dev


# ---------------------------------------------------------------- seqio tasks


def name_of(short: str, k: int, seed: int) -> str:
  """The registered k-shot task: sent_mood, 16, 13 -> synthetic_sent_mood_16_13_v2."""
  return synthetic_tasks.task_name(f"{short}_{k}_{seed}")


def target_name(short: str, seed: int) -> str:
  """The registered k = K target: target_name("nli_cb", 13) -> synthetic_nli_cb_16_13_v2."""
  return name_of(short, K, seed)


def upstream_names(seed: Optional[int] = None) -> list[str]:
  """The registered upstream k-shot tasks for `seed`; None: every seed (CrossFit's upstream)."""
  seeds = UPSTREAM_SEEDS if seed is None else (seed,)
  return [name_of(short, K, s) for short in UPSTREAM_SOURCES for s in seeds]


_BASE: dict[str, str] = {}  # registered k-shot task -> its embedded task


def base_task(name: str) -> str:
  """The embedded task a k-shot task samples: synthetic_sent_mood_16_13_v2 ->
  synthetic_sent_mood_v2."""
  if name not in _BASE:
    raise SpotError(f"{name} is no embedded k-shot task; registered: {', '.join(sorted(_BASE))}")
  return _BASE[name]


def _dataset_fn(split: str, shuffle_files: bool, seed=None, *, name: str, k: int, kseed: int
                ) -> tf.data.Dataset:
  """The split's examples (their "idx" is the example's index in the embedded split it comes
  from), generated on the first call."""
  del shuffle_files, seed  # small, in memory; seqio shuffles the stream itself
  if split == "test":
    return seqio.get_mixture_or_task(name).source.get_dataset(split="validation", shuffle=False)
  train, dev = k_shot_indices(name, k, kseed)
  indices = {"train": train, "validation": dev, UPSTREAM_SPLIT: train + dev}[split]
  rows = [_train_example(name, i) for i in indices]
  return tf.data.Dataset.from_tensor_slices({
      "inputs": tf.constant([r["inputs"] for r in rows], tf.string),
      "targets": tf.constant([r["targets"] for r in rows], tf.string),
      "idx": tf.constant(list(indices), tf.int32)})


def register(short: str, k: int, seed: int) -> str:
  """Registers the k-shot task of embedded task `short` (e.g. "nli_cb"); returns its name. Split
  sizes are known without generating anything (exactly k per label)."""
  spec = synthetic_tasks.TASKS[synthetic_tasks.task_name(short)]
  name = name_of(short, k, seed)
  shots = k * len(spec.classes)
  source = seqio.FunctionDataSource(
      functools.partial(_dataset_fn, name=spec.name, k=k, kseed=seed), splits=SPLITS,
      num_input_examples={"train": shots, "validation": shots,
                          "test": spec.size("validation"), UPSTREAM_SPLIT: 2 * shots})
  metric = accuracy if short in ACCURACY_TARGETS else macro_f1
  catalog.register_task(name, family=FAMILY, source=source, preprocessors=[],
                        metric_fns=[metric], features=seqio_tasks.output_features())
  _BASE[name] = spec.name
  return name


TASKS = [register(short, K, seed) for short in TARGETS for seed in SEEDS]
UPSTREAM = [register(short, K, seed) for short in UPSTREAM_SOURCES for seed in UPSTREAM_SEEDS]
catalog.register_mixture(MIXTURE, UPSTREAM)
# Upstream selection: the k-shot dev sets of one seed's upstream tasks (11 tasks, ~500 examples;
# all five seeds' would be 2,500 per check).
DEV_MIXTURE = synthetic_tasks.task_name("crossfit_upstream_dev")
catalog.register_mixture(DEV_MIXTURE, upstream_names(SEEDS[0]))


def feature_lengths(name: str) -> dict[str, int]:
  """Tight feature lengths of a k-shot task or a mixture of them: those of the embedded task(s)
  they sample (seqio_tasks.feature_lengths), which hold for any sample of them."""
  if name in seqio.MixtureRegistry.names():
    lengths = [feature_lengths(t.name) for t in seqio.get_mixture_or_task(name).tasks]
    return {key: max(length[key] for length in lengths) for key in lengths[0]}
  return seqio_tasks.feature_lengths(base_task(name))
