"""GLUE and SuperGLUE as seqio tasks, in T5's text-to-text formats, with their official metrics.

Task names: glue_{name}_v2 (TFDS glue 2.0.0) and super_glue_{name}_v102 (TFDS super_glue 1.0.2), e.g.
glue_rte_v2, super_glue_boolq_v102. Family mixtures `glue` and `super_glue` are examples-proportional.

Inputs, targets, postprocessors and metric values are those of Google's `t5` package (t5==0.9.4,
t5/data/tasks.py and glue_utils.py), checked in tests/tasks/test_t5_reference.py: features in
sorted name order ("boolq passage: .. question: .."), MultiRC without its HTML markup, WSC as the
marked text ("wsc text: # He # ... * the man * ..."), ReCoRD one example per gold answer with its
"@highlight" bullets flattened, and the SuperGLUE diagnostics AX-b and AX-g cast as RTE ("rte
hypothesis: .. premise: .."). A decoded label counts only when it is the label word exactly.
Beyond T5: each task's metrics also report their "average" (SPoT), AX-b and AX-g have a metric
(T5 gives them none), and STS-B's correlations are 0 rather than nan for a constant decode.
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
  features: Sequence[str]  # input fields in the order they are written (T5: sorted by name)
  labels: Optional[Sequence[str]]  # label words (TFDS's label_classes); None: regression (STS-B)
  metric_fns: Sequence[Callable]
  postprocess: Optional[Callable] = None  # default: label word -> class id
  splits: Optional[dict] = None  # canonical split -> TFDS split (default: train/validation/test)
  prefix: Optional[str] = None  # first input word (default: the config name)
  rekey: Optional[dict] = None  # new feature name -> TFDS feature name, applied first
  text: Optional[Callable] = None  # the text-to-text preprocessor, when not the generic one
  html: bool = False  # drop HTML markup from the input (MultiRC)


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

_AS_RTE = {"premise": "sentence1", "hypothesis": "sentence2", "label": "label", "idx": "idx"}

SUPER_GLUE = [
    Spec("boolq", ["passage", "question"], ["False", "True"], _ACC),
    Spec("cb", ["hypothesis", "premise"], ["entailment", "contradiction", "neutral"],
         [metrics.with_average(metrics.accuracy, metrics.macro_f1(3))]),
    Spec("copa", ["choice1", "choice2", "premise", "question"], ["choice1", "choice2"], _ACC),
    Spec("multirc", ["question", "answer", "paragraph"], ["False", "True"],
         [metrics.with_average(metrics.multirc_f1a_em)], html=True,
         postprocess=functools.partial(preprocessors.multirc_group, label_names=["False", "True"])),
    Spec("record", ["query", "entities", "passage"], None,
         [metrics.with_average(metrics.deduplicate(metrics.record))],
         postprocess=preprocessors.record_answers,
         text=functools.partial(preprocessors.preprocess_record,
                                feature_names=["query", "entities", "passage"])),
    Spec("rte", ["hypothesis", "premise"], ["entailment", "not_entailment"], _ACC),
    Spec("wic", ["sentence1", "sentence2", "word"], ["False", "True"], _ACC),
    Spec("wsc.fixed", ["text"], ["False", "True"], _ACC, text=preprocessors.wsc_preprocess),
    Spec("axb", ["hypothesis", "premise"], ["entailment", "not_entailment"],
         [metrics.matthews_corrcoef], splits={"test": "test"}, prefix="rte", rekey=_AS_RTE),
    Spec("axg", ["hypothesis", "premise"], ["entailment", "not_entailment"], _ACC,
         splits={"test": "test"}, prefix="rte"),
]


def _register(spec: Spec, benchmark: str, version: str, suffix: str) -> str:
  short = spec.name.replace(".", "_")
  name = f"{benchmark}_{short}_{suffix}"
  text = spec.text or functools.partial(
      preprocessors.preprocess, prefix=spec.prefix or short.split("_")[0],
      feature_names=spec.features, label_names=spec.labels, html=spec.html)
  rekey = [functools.partial(seqio.preprocessors.rekey, key_map=spec.rekey)] if spec.rekey else []
  postprocess = spec.postprocess or functools.partial(preprocessors.label_to_class_id,
                                                      label_names=spec.labels, strip=False)
  catalog.register_task(
      name, family=benchmark,
      source=seqio.TfdsDataSource(tfds_name=f"{benchmark}/{spec.name}:{version}",
                                  splits=spec.splits or _SPLITS),
      preprocessors=[*rekey, text], postprocess_fn=postprocess, metric_fns=spec.metric_fns)
  return name


GLUE_TASKS = [_register(s, "glue", "2.0.0", "v2") for s in GLUE]
SUPER_GLUE_TASKS = [_register(s, "super_glue", "1.0.2", "v102") for s in SUPER_GLUE]
