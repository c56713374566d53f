"""Text-to-text formats in the T5 style, and the postprocessors that undo them for metrics.

Example (glue/rte): {"sentence1": "A cat sat.", "sentence2": "An animal sat.", "label": 0, "idx": 7}
  -> {"inputs": "rte sentence1: A cat sat. sentence2: An animal sat.", "targets": "entailment",
      "idx": 7}
Examples without a label (label -1, the test splits) get the target "<unk>".
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf

NO_LABEL = "<unk>"


def _field(x: Mapping[str, tf.Tensor], key: str) -> tf.Tensor:
  """Feature `key` ("a/b" for nested features) as one string: numbers formatted, sequences (ragged
  ones too, e.g. ReCoRD entities, GEM dialog act values) flattened and joined with ", "."""
  value = x
  for part in key.split("/"):
    value = value[part]
  if isinstance(value, tf.RaggedTensor):
    value = value.flat_values
  if value.dtype != tf.string:  # e.g. integer span indices
    value = tf.strings.as_string(value)
  if value.shape.rank:
    value = tf.strings.reduce_join(tf.reshape(value, [-1]), separator=", ")
  return value


def fields_text(x: Mapping[str, tf.Tensor], prefix: str, keys: Sequence[str]) -> tf.Tensor:
  """"{prefix} {field}: value ..."; a nested field is labelled by the last part of its key."""
  parts = [prefix] + [tf.strings.join([f"{key.split('/')[-1]}:", _field(x, key)], separator=" ")
                      for key in keys]
  return tf.strings.join(parts, separator=" ")


def text_to_text(x: Mapping[str, tf.Tensor], *, prefix: str, feature_names: Sequence[str],
                 label_names: Optional[Sequence[str]] = None, label_key: str = "label",
                 keep: Sequence[str] = ("idx",)) -> dict[str, Any]:
  """"{prefix} {name}: {value} ..." -> the label word (or the label as a 0.2-step string for
  regression when `label_names` is None)."""
  out = {"inputs": fields_text(x, prefix, feature_names)}
  label = x[label_key]
  if label_names is None:  # STS-B: round to the nearest 0.2, T5's string format
    out["targets"] = tf.strings.as_string(tf.round(tf.cast(label, tf.float32) * 5) / 5, precision=1)
  else:
    names = tf.constant(list(label_names))
    out["targets"] = tf.where(label < 0, NO_LABEL,
                              tf.gather(names, tf.maximum(tf.cast(label, tf.int32), 0)))
  out.update({k: x[k] for k in keep if k in x})
  return out


def preprocess(ds: tf.data.Dataset, **kwargs) -> tf.data.Dataset:
  """seqio preprocessor form of `text_to_text`."""
  return ds.map(lambda x: text_to_text(x, **kwargs), num_parallel_calls=tf.data.AUTOTUNE)


def record_text_to_text(x: Mapping[str, tf.Tensor], *, feature_names: Sequence[str]) -> dict:
  """ReCoRD: "record query: ... entities: a, b passage: ..." -> the first gold answer; all
  answers are kept for max-over-answers metrics."""
  answers = x["answers"]
  padded = tf.concat([answers, [NO_LABEL]], axis=0)  # no answers (test split) -> "<unk>"
  return {"inputs": fields_text(x, "record", feature_names), "targets": padded[0], "idx": x["idx"],
          "answers": answers}


def preprocess_record(ds: tf.data.Dataset, **kwargs) -> tf.data.Dataset:
  return ds.map(lambda x: record_text_to_text(x, **kwargs), num_parallel_calls=tf.data.AUTOTUNE)


def answers_target(text: str, example=None, is_target: bool = False):
  """Postprocessor for extractive QA / ReCoRD / CrossFit: a target is the list of all gold answers
  (the example's kept "answers" feature), so EM/F1 take the max over them; predictions stay text."""
  if is_target and example is not None:
    return [a.decode() if isinstance(a, bytes) else str(a) for a in example["answers"]]
  return text


def label_to_class_id(text: str, label_names: Sequence[str], example=None, is_target=False) -> int:
  """Postprocessor: a decoded label word -> its class index, -1 if it is no label (always wrong)."""
  del example, is_target
  try:
    return list(label_names).index(text.strip())
  except ValueError:
    return -1


def multirc_group(text: str, label_names: Sequence[str], example=None, is_target=False) -> dict:
  """Postprocessor for MultiRC: the class id with its question group, for grouped F1a / EM."""
  value = label_to_class_id(text, label_names)
  if example is None:
    return {"group": None, "value": value}
  idx = example["idx"]
  return {"group": (int(idx["paragraph"]), int(idx["question"])), "value": value}
