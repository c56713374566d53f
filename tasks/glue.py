"""GLUE and SuperGLUE as seqio tasks, in T5's text-to-text formats, with their official metrics.

Task names: glue_{name}_v2 (TFDS glue 2.0.0) and super_glue_{name}_v102 (TFDS super_glue 1.0.2), e.g.
glue_rte_v2, super_glue_boolq_v102. Family mixtures `glue` and `super_glue` are examples-proportional.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional, Sequence

import seqio

from spot_jax.data import metrics, preprocessors
from tasks import catalog


@dataclasses.dataclass(frozen=True)
class Spec:
  name: str  # TFDS config name
  features: Sequence[str]  # input fields in the order they are written
  labels: Optional[Sequence[str]]  # label words; None: regression (STS-B)
  metric_fns: Sequence[Callable]
  postprocess: Optional[Callable] = None  # default: label word -> class id
  splits: Optional[dict] = None  # canonical split -> TFDS split (default: train/validation/test)


_SPLITS = {"train": "train", "validation": "validation", "test": "test"}
_BINARY_F1 = [metrics.with_average(metrics.f1_and_accuracy)]
_ACC = [metrics.accuracy]

GLUE = [
    Spec("cola", ["sentence"], ["unacceptable", "acceptable"], [metrics.matthews_corrcoef]),
    Spec("sst2", ["sentence"], ["negative", "positive"], _ACC),
    Spec("mrpc", ["sentence1", "sentence2"], ["not_equivalent", "equivalent"], _BINARY_F1),
    Spec("qqp", ["question1", "question2"], ["not_duplicate", "duplicate"], _BINARY_F1),
    Spec("stsb", ["sentence1", "sentence2"], None, [metrics.with_average(metrics.pearson_spearman)],
         postprocess=metrics.string_to_float),
    Spec("mnli", ["hypothesis", "premise"], ["entailment", "neutral", "contradiction"], _ACC,
         splits={"train": "train", "validation": "validation_matched",
                 "validation_mismatched": "validation_mismatched", "test": "test_matched"}),
    Spec("qnli", ["question", "sentence"], ["entailment", "not_entailment"], _ACC),
    Spec("rte", ["sentence1", "sentence2"], ["entailment", "not_entailment"], _ACC),
    Spec("wnli", ["sentence1", "sentence2"], ["not_entailment", "entailment"], _ACC),
]

SUPER_GLUE = [
    Spec("boolq", ["question", "passage"], ["False", "True"], _ACC),
    Spec("cb", ["hypothesis", "premise"], ["entailment", "contradiction", "neutral"],
         [metrics.with_average(metrics.accuracy, metrics.macro_f1(3))]),
    Spec("copa", ["choice1", "choice2", "premise", "question"], ["choice1", "choice2"], _ACC),
    Spec("multirc", ["question", "answer", "paragraph"], ["False", "True"],
         [metrics.with_average(metrics.multirc_f1a_em)],
         postprocess=functools.partial(preprocessors.multirc_group, label_names=["False", "True"])),
    Spec("record", ["query", "entities", "passage"], None, [metrics.with_average(metrics.record)],
         postprocess=preprocessors.answers_target),
    Spec("rte", ["hypothesis", "premise"], ["entailment", "not_entailment"], _ACC),
    Spec("wic", ["sentence1", "sentence2", "word"], ["False", "True"], _ACC),
    Spec("wsc.fixed", ["span1_text", "span2_text", "text"], ["False", "True"], _ACC),
    Spec("axb", ["sentence1", "sentence2"], ["entailment", "not_entailment"],
         [metrics.matthews_corrcoef], splits={"test": "test"}),
    Spec("axg", ["hypothesis", "premise"], ["entailment", "not_entailment"], _ACC,
         splits={"test": "test"}),
]


def _register(spec: Spec, benchmark: str, version: str, suffix: str) -> str:
  short = spec.name.replace(".", "_")
  name = f"{benchmark}_{short}_{suffix}"
  if spec.name == "record":
    text = functools.partial(preprocessors.preprocess_record, feature_names=spec.features)
  else:
    text = functools.partial(preprocessors.preprocess, prefix=short.split("_")[0],
                             feature_names=spec.features, label_names=spec.labels)
  postprocess = spec.postprocess or functools.partial(preprocessors.label_to_class_id,
                                                      label_names=spec.labels)
  catalog.register_task(
      name, family=benchmark,
      source=seqio.TfdsDataSource(tfds_name=f"{benchmark}/{spec.name}:{version}",
                                  splits=spec.splits or _SPLITS),
      preprocessors=[text], postprocess_fn=postprocess, metric_fns=spec.metric_fns)
  return name


GLUE_TASKS = [_register(s, "glue", "2.0.0", "v2") for s in GLUE]
SUPER_GLUE_TASKS = [_register(s, "super_glue", "1.0.2", "v102") for s in SUPER_GLUE]
