"""Text-to-text formats in the T5 style, and the postprocessors that undo them for metrics.

Example (glue/rte): {"sentence1": "A cat sat.", "sentence2": "An animal sat.", "label": 0, "idx": 7}
  -> {"inputs": "rte sentence1: A cat sat. sentence2: An animal sat.", "targets": "entailment",
      "idx": 7}
Examples without a label (label -1, the test splits) get the target "<unk>".

GLUE and SuperGLUE formats are those of Google's `t5` package (t5.data.preprocessors.glue, wsc,
record and t5.data.postprocessors), checked string for string in tests/tasks/test_t5_reference.py.
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


def remove_html(text: tf.Tensor) -> tf.Tensor:
  """MultiRC's markup as T5 drops it: "<br>" becomes a space, "<b>" and "</b>" vanish."""
  text = tf.strings.regex_replace(text, "<br>", " ")
  return tf.strings.regex_replace(text, "</?b>", "")


def text_to_text(x: Mapping[str, tf.Tensor], *, prefix: str, feature_names: Sequence[str],
                 label_names: Optional[Sequence[str]] = None, label_key: str = "label",
                 keep: Sequence[str] = ("idx",), html: bool = False) -> dict[str, Any]:
  """"{prefix} {name}: {value} ..." -> the label word (or the label as a 0.2-step string for
  regression when `label_names` is None). `html`: drop MultiRC's markup from the whole input."""
  inputs = fields_text(x, prefix, feature_names)
  out = {"inputs": remove_html(inputs) if html else inputs}
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


def wsc_text_to_text(x: Mapping[str, tf.Tensor]) -> dict[str, Any]:
  """WSC as T5 writes it: the text alone, the candidate noun wrapped in "*" and the pronoun in "#",
  "wsc text: # This # is a * test * sentence ." -> "False" / "True".

  A span is marked where its text starts the word at its index (words separated by one whitespace
  character each); one that is not found there is left unmarked. Marking span 1 inserts two words,
  so span 2's index moves by two when it lies after span 1 (even if span 1 was not found)."""
  text = _mark_span(x["text"], x["span1_text"], x["span1_index"], "*")
  shift = 2 * tf.cast(x["span1_index"] < x["span2_index"], x["span2_index"].dtype)
  text = _mark_span(text, x["span2_text"], x["span2_index"] + shift, "#")
  label = tf.cast(x["label"], tf.int32)
  target = tf.where(label < 0, NO_LABEL, tf.gather(["False", "True"], tf.maximum(label, 0)))
  return {"inputs": tf.strings.join(["wsc text:", text], separator=" "), "targets": target,
          "idx": x["idx"]}


def _mark_span(text: tf.Tensor, span: tf.Tensor, index: tf.Tensor, mark: str) -> tf.Tensor:
  """`text` with `span` wrapped as "{mark} span {mark}" where it starts word `index`.

  The span text is read as an RE2 pattern, as T5 reads it, so that every example comes out as in
  T5: "Mr. X" also matches "Mrs X", and a span that is no valid pattern ("C++") fails in both."""
  pattern = tf.strings.join([r"^((?:\S+\s){", tf.strings.as_string(index), "})(", span, ")"])
  return tf.strings.regex_replace(text, pattern, rf"\1{mark} \2 {mark}")


def wsc_preprocess(ds: tf.data.Dataset) -> tf.data.Dataset:
  """seqio preprocessor form of `wsc_text_to_text`."""
  return ds.map(wsc_text_to_text, num_parallel_calls=tf.data.AUTOTUNE)


def record_passage(passage: tf.Tensor) -> tf.Tensor:
  """ReCoRD's "\\n@highlight\\n" bullet separators as T5 flattens them: after a sentence's final
  punctuation (. ? ! " ') a space, otherwise ". "."""
  passage = tf.strings.regex_replace(passage, "([.?!\"'])\n@highlight\n", r"\1 ")
  return tf.strings.regex_replace(passage, "\n@highlight\n", ". ")


def record_text_to_text(x: Mapping[str, tf.Tensor], *, feature_names: Sequence[str]) -> dict:
  """ReCoRD as T5 writes it: "record query: ... entities: a, b passage: ...", ONE EXAMPLE PER GOLD
  ANSWER (its target), so every answer is trained on; "<unk>" alone when there is none (test
  split). Returns the examples batched along a new first axis (`preprocess_record` unbatches them);
  each keeps all answers and its idx, which eval uses to score one copy per query."""
  answers = x["answers"]
  count = tf.maximum(tf.size(answers), 1)
  inputs = fields_text({**x, "passage": record_passage(x["passage"])}, "record", feature_names)

  def copies(value: tf.Tensor) -> tf.Tensor:
    return tf.broadcast_to(value, tf.concat([[count], tf.shape(value)], axis=0))

  return {"inputs": copies(inputs), "targets": tf.concat([answers, [NO_LABEL]], axis=0)[:count],
          "idx": tf.nest.map_structure(copies, x["idx"]), "answers": copies(answers)}


def preprocess_record(ds: tf.data.Dataset, **kwargs) -> tf.data.Dataset:
  """seqio preprocessor form of `record_text_to_text`: one example per gold answer."""
  ds = ds.map(lambda x: record_text_to_text(x, **kwargs), num_parallel_calls=tf.data.AUTOTUNE)
  return ds.unbatch()


def record_answers(text: str, example=None, is_target: bool = False) -> dict:
  """Postprocessor for ReCoRD: {"group": (passage idx, query idx), "value": ...} with all gold
  answers as a target's value and the decoded text as a prediction's, so that
  metrics.deduplicate scores each query once although it is one example per answer (T5's
  postprocessors.record + deduplicate_metric)."""
  group = None if example is None else (int(example["idx"]["passage"]),
                                        int(example["idx"]["query"]))
  if is_target and example is not None:
    return {"group": group, "value": _texts(example["answers"])}
  return {"group": group, "value": text}


def _texts(values) -> list[str]:
  return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def answers_target(text: str, example=None, is_target: bool = False):
  """Postprocessor for extractive QA / ReCoRD / CrossFit: a target is the list of all gold answers
  (the example's kept "answers" feature), so EM/F1 take the max over them; predictions stay text."""
  if is_target and example is not None:
    return _texts(example["answers"])
  return text


def label_to_class_id(text: str, label_names: Sequence[str], example=None, is_target=False,
                      strip: bool = True) -> int:
  """Postprocessor: a decoded label word -> its class index, -1 if it is no label (always wrong).
  `strip=False` compares the text as decoded, as T5 does for GLUE and SuperGLUE (" True" is no
  label)."""
  del example, is_target
  try:
    return list(label_names).index(text.strip() if strip else text)
  except ValueError:
    return -1


def multirc_group(text: str, label_names: Sequence[str], example=None, is_target=False) -> dict:
  """Postprocessor for MultiRC: the class id (the decode as is, as T5 compares it) with its
  question id as the group, for EM per question and F1a. The group is idx/question alone, as in T5:
  SuperGLUE numbers MultiRC's questions across the whole split, not within a paragraph."""
  value = label_to_class_id(text, label_names, strip=False)
  if example is None:
    return {"group": None, "value": value}
  return {"group": int(example["idx"]["question"]), "value": value}
