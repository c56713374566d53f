"""SPoT's NLI, paraphrase/similarity and sentiment source tasks (paper Appendix B), text-to-text.

Task names: {dataset}[_{config}]_v{TFDS version without dots, trailing .0 dropped} for TFDS sources
(anli_r1_v01 .. anli_r3_v01, snli_v11, docnli_v1 (TFDS doc_nli), goemotions_v01, sentiment140_v1,
yelp_polarity_reviews_v02) and plain names for local-file sources (cxc_sts, cr), which have no TFDS
builder and are read from {local root}/{dataset}/ (spot_jax.data.local) when their data is read, not
at import.

Family mixtures `nli`, `paraphrase` and `sentiment` add the GLUE/SuperGLUE tasks of the same kind.
Conventions where the datasets need one:
  * SNLI: examples without a gold label (-1, no annotator consensus) are dropped in every split.
  * Sentiment140: polarity 0 -> negative, 4 -> positive; the neutral test examples (2) are dropped.
  * GoEmotions (multi-label): the target is the comma-joined names of the true emotions in the
    dataset's label order ("joy, love"), "neutral" when none is set; the metric is the accuracy of
    an exact match of the set of emotions.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional, Sequence

import seqio
import tensorflow as tf

from spot_jax.data import local, metrics, preprocessors
from spot_jax.errors import SpotError
from tasks import catalog

# ---------------------------------------------------------------- dataset-specific formats


def _drop_unlabeled(ds: tf.data.Dataset) -> tf.data.Dataset:
  """SNLI marks examples without annotator consensus with label -1: nothing to learn or score."""
  return ds.filter(lambda x: x["label"] >= 0)


def _sentiment140_binary(ds: tf.data.Dataset) -> tf.data.Dataset:
  """Sentiment140 polarity 0/4 -> label 0/1; the neutral (2) test examples have no binary label."""
  return ds.filter(lambda x: x["polarity"] != 2).map(
      lambda x: {**x, "label": tf.cast(x["polarity"] > 2, tf.int32)})


GOEMOTIONS = ("admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion",
              "curiosity", "desire", "disappointment", "disapproval", "disgust", "embarrassment",
              "excitement", "fear", "gratitude", "grief", "joy", "love", "nervousness", "optimism",
              "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral")


def _goemotions_text(ds: tf.data.Dataset) -> tf.data.Dataset:
  """"goemotions comment_text: ..." -> "joy, love" (the true emotions; "neutral" when none)."""
  def fn(x):
    names = tf.boolean_mask(tf.constant(GOEMOTIONS), tf.stack([x[e] for e in GOEMOTIONS]))
    joined = tf.strings.reduce_join(names, separator=", ")
    return {"inputs": tf.strings.join(["goemotions comment_text:", x["comment_text"]], " "),
            "targets": tf.where(tf.size(names) > 0, joined, "neutral")}
  return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def emotion_set(text: str, example=None, is_target=False) -> tuple[str, ...]:
  """Postprocessor: "love, joy" -> ("joy", "love"), so that order does not matter to the metric."""
  del example, is_target
  return tuple(sorted({name.strip() for name in text.split(",") if name.strip()}))


# ---------------------------------------------------------------- local-file sources


@dataclasses.dataclass(frozen=True)
class LocalTsv:
  """A published dataset as headerless TSV files under {local root}/{dataset}/."""
  dataset: str
  pattern: str  # file of a split, relative to the dataset directory, e.g. "sts/{split}.tsv"
  columns: Sequence[tuple[str, tf.dtypes.DType]]
  splits: Sequence[str]

  @property
  def layout(self) -> str:
    files = self.pattern.format(split="{" + ",".join(self.splits) + "}")
    return f"{files} with columns {'<TAB>'.join(name for name, _ in self.columns)}, no header"

  def path(self, split: str) -> str:
    """The split's file; dataset_dir raises the one-line SpotError when the directory is absent."""
    path = local.dataset_dir(self.dataset, self.layout) / self.pattern.format(split=split)
    if not path.exists():
      raise SpotError(f"local dataset {self.dataset!r}: {path} does not exist "
                      f"(expected {self.layout})")
    return str(path)

  def read(self, split: str, shuffle_files: bool = False, seed: Optional[int] = None
           ) -> tf.data.Dataset:
    del shuffle_files, seed  # one file per split
    names = [name for name, _ in self.columns]
    ds = tf.data.experimental.CsvDataset(self.path(split), [dtype for _, dtype in self.columns],
                                         field_delim="\t", use_quote_delim=False)
    return ds.map(lambda *values: dict(zip(names, values)))


class LocalTsvSource(seqio.FunctionDataSource):
  """FunctionDataSource whose split sizes are the files' line counts (counted when asked, so a
  changed data root is honoured), so that examples-proportional mixtures can include it."""

  def __init__(self, tsv: LocalTsv):
    super().__init__(tsv.read, splits=tsv.splits)
    self.tsv = tsv
    self.local_dataset = tsv.dataset  # for `spot-jax tasks`: is the data here?

  def num_input_examples(self, split: str) -> int:
    with tf.io.gfile.GFile(self.tsv.path(split)) as f:
      return sum(1 for line in f if line.strip())


CXC = LocalTsv("cxc", "sts/{split}.tsv", [("caption1", tf.string), ("caption2", tf.string),
                                          ("label", tf.float32)], ["train", "validation", "test"])
CR = LocalTsv("cr", "{split}.tsv", [("sentence", tf.string), ("label", tf.int32)],
              ["train", "test"])

# Tiny files (relative to the local root) that tests write to exercise the local sources.
SAMPLE_FILES: dict[str, str] = {
    **{f"cxc/sts/{split}.tsv": ("A man rides a horse.\tA person on a horse.\t4.2\n"
                                "Two dogs play in snow.\tA plate of food.\t0.0\n"
                                "A red bus on a street.\tA bus parked on the road.\t3.4\n")
       for split in CXC.splits},
    **{f"cr/{split}.tsv": ("the battery life is great .\t1\n"
                           "the screen broke after a week .\t0\n"
                           "works as advertised , very happy\t1\n")
       for split in CR.splits},
}

# ---------------------------------------------------------------- the table


@dataclasses.dataclass(frozen=True)
class Spec:
  name: str  # task name without the version suffix; its first word is the input prefix
  family: str
  source: str | LocalTsv  # "tfds_name:version", or local files
  features: Sequence[str]  # input fields in the order they are written
  labels: Optional[Sequence[str]]  # label words; None: regression (0.2-step string target)
  metric_fns: Sequence[Callable]
  splits: Optional[dict] = None  # canonical split -> TFDS split (default: train/validation/test)
  prepare: Sequence[Callable] = ()  # before the text format: filters, label mapping
  text: Optional[Callable] = None  # replaces the default text format (multi-label GoEmotions)
  postprocess: Optional[Callable] = None  # default: label word -> class id


_SPLITS = {"train": "train", "validation": "validation", "test": "test"}
_TRAIN_TEST = {"train": "train", "test": "test"}
_ACC = [metrics.accuracy]
_NLI = ["entailment", "neutral", "contradiction"]
_POLARITY = ["negative", "positive"]

SPECS = [
    *[Spec(f"anli_{r}", "nli", f"anli/{r}:0.1.0", ["hypothesis", "context"], _NLI, _ACC)
      for r in ("r1", "r2", "r3")],
    Spec("snli", "nli", "snli:1.1.0", ["hypothesis", "premise"], _NLI, _ACC,
         prepare=[_drop_unlabeled]),
    Spec("docnli", "nli", "doc_nli:1.0.0", ["hypothesis", "premise"],
         ["not_entailment", "entailment"], [metrics.with_average(metrics.f1_and_accuracy)]),
    Spec("cxc_sts", "paraphrase", CXC, ["caption1", "caption2"], None,
         [metrics.with_average(metrics.pearson_spearman)], postprocess=metrics.string_to_float),
    Spec("cr", "sentiment", CR, ["sentence"], _POLARITY, _ACC),
    Spec("goemotions", "sentiment", "goemotions:0.1.0", ["comment_text"], None, _ACC,
         text=_goemotions_text, postprocess=emotion_set),
    Spec("sentiment140", "sentiment", "sentiment140:1.0.0", ["text"], _POLARITY, _ACC,
         splits=_TRAIN_TEST, prepare=[_sentiment140_binary]),
    Spec("yelp_polarity_reviews", "sentiment", "yelp_polarity_reviews:0.2.0", ["text"], _POLARITY,
         _ACC, splits=_TRAIN_TEST),
]


def version_suffix(version: str) -> str:
  """TFDS version -> name suffix, as tasks/glue.py names them: 2.0.0 -> v2, 0.1.0 -> v01."""
  while version.endswith(".0") and version.count(".") > 0:
    version = version[:-2]
  return "v" + version.replace(".", "")


def _register(spec: Spec) -> str:
  if isinstance(spec.source, LocalTsv):
    name, source = spec.name, LocalTsvSource(spec.source)
  else:
    name = f"{spec.name}_{version_suffix(spec.source.split(':')[1])}"
    source = seqio.TfdsDataSource(tfds_name=spec.source, splits=spec.splits or _SPLITS)
  text = spec.text or functools.partial(preprocessors.preprocess, prefix=spec.name.split("_")[0],
                                        feature_names=spec.features, label_names=spec.labels)
  postprocess = spec.postprocess or functools.partial(preprocessors.label_to_class_id,
                                                      label_names=spec.labels)
  catalog.register_task(name, family=spec.family, source=source,
                        preprocessors=[*spec.prepare, text], postprocess_fn=postprocess,
                        metric_fns=spec.metric_fns)
  return name


TASKS = [_register(spec) for spec in SPECS]


def family_tasks(family: str) -> list[str]:
  return [name for name in TASKS if catalog.ENTRIES[name].family == family]


MIXTURES = {
    "nli": family_tasks("nli") + ["glue_mnli_v2", "glue_qnli_v2", "glue_rte_v2",
                                  "super_glue_cb_v102"],
    "paraphrase": family_tasks("paraphrase") + ["glue_mrpc_v2", "glue_qqp_v2", "glue_stsb_v2"],
    "sentiment": family_tasks("sentiment") + ["glue_sst2_v2"],
}
for _name, _tasks in MIXTURES.items():
  catalog.register_mixture(_name, _tasks)
