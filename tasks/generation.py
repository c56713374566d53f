"""SPoT's QA, commonsense, translation, summarization, GEM and C4 source tasks (Appendix B, Fig. 6).

Every task reads a TFDS builder at a pinned version. Formats follow T5's "{prefix} {field}: value"
convention (preprocessors.text_to_text), and the shared catalog test requires the first input word
to occur in the task name, so T5's "summarize: ..." becomes "summarize document: ..." and the
translation and summarization tasks are named after their prefix word:

  mrqa_{squad,news_qa,...}_v100   "squad question: .. context: .."       -> first answer (EM/F1)
  rainbow_{cosmos_qa,...}         "piqa goal: .. sol1: .. sol2: .."        -> "sol2" (accuracy)
  drop_v200, race_{high,middle}_v200                                       (EM/F1; accuracy)
  translate_wmt14_en_de, ...      "translate English to German: .."      -> German (BLEU)
  summarize_{xsum,...}            "summarize document: .."               -> summary (ROUGE)
  gem_{common_gen,...}_v110       "common_gen concepts: a, b, c"         -> target (ROUGE, BLEU)
  c4_prefix_lm_v310               "c4 prefix: <first half of the words>" -> the other half

Not in TFDS: alphaNLI (ART) and SocialIQa (Rainbow) are read from local files by
tasks/rainbow_local.py. WikiLingua (summarization and
GEM) reads GEM's English WikiLingua config.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional, Sequence

import seqio
import tensorflow as tf

from spot_jax.data import metrics, preprocessors
from tasks import catalog

_TRAIN_VAL = {"train": "train", "validation": "validation"}
_TRAIN_VAL_TEST = {**_TRAIN_VAL, "test": "test"}
_ROUGE = [metrics.with_average(metrics.rouge)]
_ROUGE_BLEU = [metrics.with_average(metrics.rouge, metrics.bleu)]
_SQUAD = [metrics.with_average(metrics.squad)]


# ---------------------------------------------------------------- text helpers


def _first(values: tf.Tensor, default=preprocessors.NO_LABEL) -> tf.Tensor:
  """values[0], or `default` when there is none (unlabelled test splits)."""
  return tf.concat([values, tf.reshape(default, [1])], axis=0)[0]


def _mapped(fn: Callable, **kwargs) -> Callable[[tf.data.Dataset], tf.data.Dataset]:
  """A seqio preprocessor mapping `fn(example, **kwargs)` over the dataset."""
  def preprocess(ds: tf.data.Dataset) -> tf.data.Dataset:
    return ds.map(functools.partial(fn, **kwargs), num_parallel_calls=tf.data.AUTOTUNE)
  return preprocess


def _register(name: str, family: str, tfds_name: str, splits: dict, preprocess: Callable,
              metric_fns: Sequence[Callable], postprocess_fn: Optional[Callable] = None) -> str:
  catalog.register_task(name, family=family,
                        source=seqio.TfdsDataSource(tfds_name=tfds_name, splits=splits),
                        preprocessors=[preprocess], metric_fns=metric_fns,
                        postprocess_fn=postprocess_fn)
  return name


# ---------------------------------------------------------------- extractive / abstractive QA


def _qa(x, *, prefix: str, fields: Sequence[str]) -> dict:
  """"{prefix} question: .. context: .." -> the first answer; all answers kept for the metric."""
  return {"inputs": preprocessors.fields_text(x, prefix, fields), "targets": _first(x["answers"]),
          "answers": x["answers"]}


def _drop(x) -> dict:
  """DROP: the answer and the validated answers (dev) are the gold answers."""
  answers = tf.concat([[x["answer"]], x["validated_answers"]], axis=0)
  return _qa({**x, "answers": answers}, prefix="drop", fields=("question", "passage"))


def _race_questions(x) -> tf.data.Dataset:
  """RACE stores one article with all its questions: one example per question,
  "race question: .. options: A) .. B) .. article: .." -> the answer letter."""
  options = x["options"]
  if not isinstance(options, tf.RaggedTensor):
    options = tf.RaggedTensor.from_tensor(options)
  n = tf.reduce_min([tf.size(x["questions"]), tf.size(x["answers"]),
                     tf.cast(options.nrows(), tf.int32)])
  options = options[:n]
  letters = tf.strings.unicode_encode(tf.reshape(65 + _column_ids(options), [-1, 1]), "UTF-8")
  labelled = tf.strings.join([letters, options.flat_values], separator=") ")
  options_text = tf.strings.reduce_join(options.with_flat_values(labelled), axis=1, separator=" ")
  questions = tf.data.Dataset.from_tensor_slices(
      {"question": x["questions"][:n], "options": options_text, "answer": x["answers"][:n]})
  article = x["article"]
  return questions.map(lambda q: {
      "inputs": preprocessors.fields_text({**q, "article": article}, "race",
                                          ("question", "options", "article")),
      "targets": q["answer"]})


def _column_ids(ragged: tf.RaggedTensor) -> tf.Tensor:
  """Position of each flat value within its row (0, 1, 2, .. per row)."""
  starts = tf.gather(ragged.row_starts(), ragged.value_rowids())
  return tf.cast(tf.range(tf.size(ragged.flat_values, out_type=starts.dtype)) - starts, tf.int32)


def _race(ds: tf.data.Dataset) -> tf.data.Dataset:
  return ds.flat_map(_race_questions)


MRQA = ["squad", "news_qa", "trivia_qa", "search_qa", "hotpot_qa", "natural_questions"]

MRQA_TASKS = [
    _register(f"mrqa_{c}_v100", "mrqa", f"mrqa/{c}:1.0.0", _TRAIN_VAL,
              _mapped(_qa, prefix=c, fields=("question", "context")), _SQUAD,
              preprocessors.answers_target)
    for c in MRQA]

QA_TASKS = [
    _register("drop_v200", "qa", "drop:2.0.0", {"train": "train", "validation": "dev"},
              _mapped(_drop), _SQUAD, preprocessors.answers_target),
    *[_register(f"race_{level}_v200", "qa", f"race/{level}:2.0.0",
                {"train": "train", "validation": "dev", "test": "test"}, _race, [metrics.accuracy])
      for level in ("high", "middle")],
]


# ---------------------------------------------------------------- Rainbow (multiple choice)


@dataclasses.dataclass(frozen=True)
class Choice:
  name: str  # prefix and task name
  tfds_name: str
  fields: Sequence[str]  # written in this order; the label words are the choice fields' names
  choices: Sequence[str]
  splits: dict = dataclasses.field(default_factory=lambda: _TRAIN_VAL_TEST)
  prepare: Optional[Callable] = None  # example -> example with one field per choice


def _hellaswag_endings(x) -> dict:
  """HellaSwag holds its 4 endings in one sequence: one field each; a label that names no ending
  (-1 on test) becomes -1."""
  label = tf.cast(x["label"], tf.int32)
  endings = {f"ending{i}": x["endings"][i] for i in range(4)}
  return {"context": x["context"], **endings,
          "label": tf.where((label >= 0) & (label < 4), label, -1)}


RAINBOW = [
    Choice("cosmos_qa", "cosmos_qa:1.0.0", ["question", "context"],
           [f"answer{i}" for i in range(4)]),
    Choice("hellaswag", "hellaswag:1.1.0", ["context"], [f"ending{i}" for i in range(4)],
           prepare=_hellaswag_endings),
    Choice("piqa", "piqa:1.0.0", ["goal"], ["sol1", "sol2"], splits=_TRAIN_VAL),
    Choice("winogrande", "winogrande:1.2.0", ["sentence"], ["option1", "option2"],
           splits={"train": "train_xl", "validation": "validation", "test": "test"}),
]


def _choice(x, *, spec: Choice) -> dict:
  """"{name} {field}: .. {choice}: .." -> the correct choice's field name (COPA's format)."""
  x = spec.prepare(x) if spec.prepare else x
  return preprocessors.text_to_text(x, prefix=spec.name, label_names=spec.choices, keep=(),
                                    feature_names=[*spec.fields, *spec.choices])


RAINBOW_TASKS = [
    _register(f"rainbow_{s.name}", "rainbow", s.tfds_name, s.splits, _mapped(_choice, spec=s),
              [metrics.accuracy],
              functools.partial(preprocessors.label_to_class_id, label_names=s.choices))
    for s in RAINBOW]


# ---------------------------------------------------------------- translation (T5 formats)

_LANGUAGES = {"en": "English", "de": "German", "fr": "French", "ro": "Romanian"}


def _translate(x, *, source: str, target: str) -> dict:
  prompt = f"translate {_LANGUAGES[source]} to {_LANGUAGES[target]}:"
  return {"inputs": tf.strings.join([prompt, x[source]], separator=" "), "targets": x[target]}


TRANSLATION_TASKS = [
    _register(f"translate_wmt{year}_en_{lang}", "translation",
              f"wmt{year}_translate/{lang}-en:1.0.0", _TRAIN_VAL_TEST,
              _mapped(_translate, source="en", target=lang), [metrics.bleu])
    for year, lang in (("14", "de"), ("15", "fr"), ("16", "ro"))]


# ---------------------------------------------------------------- summarization

SUMMARIZATION = [  # name, TFDS name, document field, summary field, splits
    ("aeslc", "aeslc:1.0.0", "email_body", "subject_line", _TRAIN_VAL_TEST),
    ("billsum", "billsum:3.0.0", "text", "summary", {"train": "train", "test": "test"}),
    ("cnn_dailymail", "cnn_dailymail:3.4.0", "article", "highlights", _TRAIN_VAL_TEST),
    ("gigaword", "gigaword:1.2.0", "document", "summary", _TRAIN_VAL_TEST),
    ("multi_news", "multi_news:2.1.0", "document", "summary", _TRAIN_VAL_TEST),
    ("newsroom", "newsroom:1.0.0", "text", "summary", _TRAIN_VAL_TEST),  # manual download
    ("samsum", "samsum:1.0.0", "dialogue", "summary", _TRAIN_VAL_TEST),
    ("xsum", "xsum:1.1.0", "document", "summary", _TRAIN_VAL_TEST),
    ("wiki_lingua", "gem/wiki_lingua_english_en:1.1.0", "source", "target", _TRAIN_VAL_TEST),
]


def _summarize(x, *, document: str, summary: str) -> dict:
  return {"inputs": tf.strings.join(["summarize document:", x[document]], separator=" "),
          "targets": x[summary]}


SUMMARIZATION_TASKS = [
    _register(f"summarize_{name}", "summarization", tfds_name, splits,
              _mapped(_summarize, document=document, summary=summary), _ROUGE)
    for name, tfds_name, document, summary, splits in SUMMARIZATION]


# ---------------------------------------------------------------- GEM (TFDS gem 1.1.0)

GEM = [  # config, prefix, input fields, metrics
    ("common_gen", "common_gen", ["concepts"], _ROUGE_BLEU),
    ("dart", "dart", ["tripleset"], _ROUGE_BLEU),
    ("e2e_nlg", "e2e_nlg", ["meaning_representation"], _ROUGE_BLEU),
    ("schema_guided_dialog", "schema_guided_dialog",
     ["service", "dialog_acts/slot", "dialog_acts/values", "prompt", "context"], _ROUGE_BLEU),
    ("web_nlg_en", "web_nlg", ["input"], _ROUGE_BLEU),
    ("wiki_auto_asset_turk", "wiki_auto", ["source"], _ROUGE_BLEU),
    ("xsum", "xsum", ["document"], _ROUGE),
    ("wiki_lingua_english_en", "wiki_lingua", ["source"], _ROUGE),
]


def _gem(x, *, prefix: str, fields: Sequence[str]) -> dict:
  """GEM's input fields -> its target, or the first reference where the target is empty."""
  target = x["target"]
  target = tf.where(tf.strings.length(target) > 0, target, _first(x["references"], target))
  return {"inputs": preprocessors.fields_text(x, prefix, fields), "targets": target}


GEM_TASKS = [
    _register(f"gem_{config}_v110", "gem", f"gem/{config}:1.1.0", _TRAIN_VAL_TEST,
              _mapped(_gem, prefix=prefix, fields=fields), metric_fns)
    for config, prefix, fields, metric_fns in GEM]


# ---------------------------------------------------------------- C4 prefix LM (unsupervised)


def _prefix_lm(x) -> dict:
  """T5's prefix LM, simplified: the text split at its middle word (deterministic, so train and
  eval see the same pairs), "c4 prefix: <first half>" -> the second half."""
  words = tf.strings.split(x["text"])
  half = tf.size(words) // 2
  return {"inputs": tf.strings.join(["c4 prefix:", tf.strings.reduce_join(words[:half],
                                                                          separator=" ")],
                                    separator=" "),
          "targets": tf.strings.reduce_join(words[half:], separator=" ")}


def _c4_prefix_lm(ds: tf.data.Dataset) -> tf.data.Dataset:
  ds = ds.filter(lambda x: tf.size(tf.strings.split(x["text"])) >= 2)
  return ds.map(_prefix_lm, num_parallel_calls=tf.data.AUTOTUNE)


C4_TASK = _register("c4_prefix_lm_v310", "c4", "c4/en:3.1.0", _TRAIN_VAL, _c4_prefix_lm,
                    metric_fns=[])  # training only


# ---------------------------------------------------------------- family mixtures

for _family, _tasks in (("mrqa", MRQA_TASKS), ("rainbow", RAINBOW_TASKS),
                        ("translation", TRANSLATION_TASKS), ("summarization", SUMMARIZATION_TASKS),
                        ("gem", GEM_TASKS)):
  catalog.register_mixture(_family, _tasks)
