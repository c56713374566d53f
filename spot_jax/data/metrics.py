"""seqio metric functions in the GLUE / SuperGLUE / T5 conventions, written here so t5 is no dependency.

seqio tells predict metrics from score metrics by parameter NAME: `fn(targets, predictions)` gets the
postprocessed decodes, `fn(targets, scores)` one log-likelihood per row. Every value is a percentage
(0-100), correlations included (x100), as T5 reports them, so averaging the metrics of one task
(SPoT footnote 5, `with_average`) mixes like with like.

Class labels arrive as indices from the task's postprocessor: a decode that is no label word maps
to -1 and is always wrong.
"""

from __future__ import annotations

import collections
import inspect
import re
import string
from typing import Any, Callable, Hashable, Mapping, Sequence, Union

import numpy as np

Metrics = dict[str, float]
MetricFn = Callable[..., Metrics]
Answers = Union[str, Sequence[str]]


def _check_lengths(targets: Sequence[Any], outputs: Sequence[Any]) -> None:
  """Fails loudly rather than zip silently truncating, or a mean of nothing giving nan."""
  if len(targets) != len(outputs):
    raise ValueError(f"{len(targets)} targets but {len(outputs)} predictions/scores")
  if not len(targets):
    raise ValueError("no examples to compute a metric on")


def _percent(fraction: float) -> float:
  return 100.0 * float(fraction)


# ---------------------------------------------------------------- classification


def accuracy(targets: Sequence[Any], predictions: Sequence[Any]) -> Metrics:
  """% of predictions equal to their target (labels, strings or any comparable value)."""
  _check_lengths(targets, predictions)
  return {"accuracy": _percent(np.mean([t == p for t, p in zip(targets, predictions)]))}


def _f1(true_pos: int, false_pos: int, false_neg: int) -> float:
  """F1 in %; 0 when the class is neither predicted nor present (sklearn's zero_division=0)."""
  denominator = 2 * true_pos + false_pos + false_neg
  return _percent(2 * true_pos / denominator) if denominator else 0.0


def _class_f1(targets: np.ndarray, predictions: np.ndarray, label: int) -> float:
  is_target, is_predicted = targets == label, predictions == label
  return _f1(int(np.sum(is_target & is_predicted)), int(np.sum(~is_target & is_predicted)),
             int(np.sum(is_target & ~is_predicted)))


def _binary_f1(targets: Sequence[int], predictions: Sequence[int]) -> float:
  """F1 of class 1. A prediction that is neither 0 nor 1 counts as the opposite of its target, as in
  T5's f1_score_with_invalid, so an unparseable decode is a false positive or a false negative."""
  t, p = np.asarray(targets, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
  p = np.where((p == 0) | (p == 1), p, 1 - t)
  return _class_f1(t, p, 1)


def _macro_f1(targets: Sequence[int], predictions: Sequence[int], num_classes: int) -> float:
  """Mean of the per-class F1 over classes 0..num_classes-1 (sklearn average="macro"); -1 is no
  class, so it only costs recall."""
  t, p = np.asarray(targets, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
  return float(np.mean([_class_f1(t, p, c) for c in range(num_classes)]))


def _macro_f1_key(num_classes: int) -> str:
  return f"mean_{num_classes}class_f1"  # T5's name for it (mean_multiclass_f1)


def f1_and_accuracy(targets: Sequence[int], predictions: Sequence[int]) -> Metrics:
  """Binary F1 of class 1 and accuracy on 0/1 labels (MRPC, QQP, CrossFit binary tasks)."""
  return {"f1": _binary_f1(targets, predictions), **accuracy(targets, predictions)}


def macro_f1(num_classes: int) -> MetricFn:
  """Metric fn giving F1-macro over `num_classes` labels (CB; CrossFit's "F1" on multi-class)."""
  if num_classes < 2:
    raise ValueError(f"macro F1 needs at least 2 classes, got {num_classes}")

  def metric(targets: Sequence[int], predictions: Sequence[int]) -> Metrics:
    _check_lengths(targets, predictions)
    return {_macro_f1_key(num_classes): _macro_f1(targets, predictions, num_classes)}

  metric.__name__ = f"macro_f1_{num_classes}"
  return metric


def matthews_corrcoef(targets: Sequence[int], predictions: Sequence[int]) -> Metrics:
  """100 * Matthews correlation (CoLA), multi-class form as sklearn computes it, so -1 predictions
  form a class of their own; 0 when targets or predictions hold a single class."""
  _check_lengths(targets, predictions)
  n = len(targets)
  labels = np.concatenate([np.asarray(targets), np.asarray(predictions)])
  _, index = np.unique(labels, return_inverse=True)
  confusion = np.zeros((index.max() + 1,) * 2, dtype=np.float64)
  np.add.at(confusion, (index[:n], index[n:]), 1.0)
  target_sums, predicted_sums = confusion.sum(axis=1), confusion.sum(axis=0)
  cov_tp = np.trace(confusion) * n - target_sums @ predicted_sums
  cov_tt = n * n - target_sums @ target_sums
  cov_pp = n * n - predicted_sums @ predicted_sums
  if cov_tt * cov_pp == 0:
    return {"matthews_corrcoef": 0.0}
  return {"matthews_corrcoef": _percent(cov_tp / np.sqrt(cov_tt * cov_pp))}


# ---------------------------------------------------------------- regression (STS-B)


def pearson_spearman(targets: Sequence[float], predictions: Sequence[float]) -> Metrics:
  """100 * Pearson r and Spearman rho (STS-B). A constant side has no correlation: 0 rather than
  scipy's nan, so an early checkpoint that always decodes one value still gets a comparable score."""
  from scipy import stats
  _check_lengths(targets, predictions)
  t, p = np.asarray(targets, dtype=np.float64), np.asarray(predictions, dtype=np.float64)
  if np.ptp(t) == 0 or np.ptp(p) == 0:
    return {"pearson_corrcoef": 0.0, "spearman_corrcoef": 0.0}
  return {"pearson_corrcoef": _percent(stats.pearsonr(t, p)[0]),
          "spearman_corrcoef": _percent(stats.spearmanr(t, p)[0])}


def string_to_float(text: Union[str, bytes], default: float = -1.0, **unused_kwargs: Any) -> float:
  """Postprocessor: "2.4" -> 2.4; anything unparseable or non-finite -> `default`.

  Takes seqio's `example=` / `is_target=` keyword arguments and ignores them."""
  if isinstance(text, bytes):
    text = text.decode("utf-8", errors="replace")
  try:
    value = float(text)
  except ValueError:
    return default
  return value if np.isfinite(value) else default


def stsb_target(score: float) -> str:
  """STS-B label as T5 writes it: rounded to the nearest 0.2 (ties to even, like tf.round), one
  decimal: 2.37 -> "2.4", 3.0 -> "3.0"."""
  return f"{np.round(score * 5.0) / 5.0:.1f}"


# ---------------------------------------------------------------- extractive QA (SQuAD, MRQA, DROP)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def _normalize_answer(text: str) -> str:
  """SQuAD v1.1: lowercase, drop punctuation, drop articles, collapse whitespace."""
  text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
  return " ".join(_ARTICLES.sub(" ", text).split())


def _token_f1(gold: str, prediction: str) -> float:
  """Bag-of-tokens F1 of two normalized answers (0 when they share no token)."""
  gold_tokens, predicted_tokens = gold.split(), prediction.split()
  common = sum((collections.Counter(gold_tokens) & collections.Counter(predicted_tokens)).values())
  if common == 0:
    return 0.0
  precision, recall = common / len(predicted_tokens), common / len(gold_tokens)
  return 2 * precision * recall / (precision + recall)


def squad(targets: Sequence[Answers], predictions: Sequence[str]) -> Metrics:
  """SQuAD v1.1 exact match and token F1, each the max over an example's gold answers, in %.

  targets[i] is the list of gold answers of example i (a bare string is one answer);
  predictions[i] is the decoded answer string."""
  _check_lengths(targets, predictions)
  exact, f1 = [], []
  for golds, prediction in zip(targets, predictions):
    golds = [_normalize_answer(g) for g in ([golds] if isinstance(golds, str) else golds)]
    prediction = _normalize_answer(prediction)
    exact.append(max((float(g == prediction) for g in golds), default=0.0))
    f1.append(max((_token_f1(g, prediction) for g in golds), default=0.0))
  return {"em": _percent(np.mean(exact)), "f1": _percent(np.mean(f1))}


def record(targets: Sequence[Answers], predictions: Sequence[str]) -> Metrics:
  """ReCoRD EM / F1: the official ReCoRD scorer is SQuAD's (same normalization, max over the
  entity's answers), so this is `squad`; the name keeps SuperGLUE task definitions readable."""
  return squad(targets, predictions)


def deduplicate(metric_fn: MetricFn) -> MetricFn:
  """`metric_fn` on the first row of each group only. Rows are {"group": ..., "value": ...}; the
  target's group decides, and `metric_fn` gets the "value"s. For ReCoRD, whose preprocessor repeats
  a query once per gold answer (T5's deduplicate_metric)."""

  def metric(targets: Sequence[Mapping[str, Any]],
             predictions: Sequence[Mapping[str, Any]]) -> Metrics:
    _check_lengths(targets, predictions)
    seen: set = set()
    kept_targets, kept_predictions = [], []
    for t, p in zip(targets, predictions):
      if t["group"] not in seen:
        seen.add(t["group"])
        kept_targets.append(t["value"])
        kept_predictions.append(p["value"])
    return metric_fn(kept_targets, kept_predictions)

  metric.__name__ = f"deduplicate({getattr(metric_fn, '__name__', type(metric_fn).__name__)})"
  return metric


# ---------------------------------------------------------------- MultiRC


def multirc_f1a_em(targets: Sequence[Mapping[str, Any]],
                   predictions: Sequence[Mapping[str, Any]]) -> Metrics:
  """MultiRC's two SuperGLUE metrics: exact match per question, F1a over all answer options.

  One row per answer option; the postprocessor attaches the question id as "group" (any hashable)
  and the 0/1 label (or -1 for an unparseable decode) as "value", e.g. for option 3 of question 17:
    target     {"group": 17, "value": 1}
    prediction {"group": 17, "value": 0}
  exact_match: % of questions (groups of the targets) whose options are all predicted right.
  f1a: binary F1 of class 1 over every row, invalid predictions counted as wrong."""
  _check_lengths(targets, predictions)
  all_right: dict[Hashable, bool] = {}
  for t, p in zip(targets, predictions):
    all_right[t["group"]] = all_right.get(t["group"], True) and t["value"] == p["value"]
  return {"exact_match": _percent(np.mean(list(all_right.values()))),
          "f1a": _binary_f1([t["value"] for t in targets], [p["value"] for p in predictions])}


# ---------------------------------------------------------------- rank classification (score metric)


def rank_classification(num_classes: int, with_macro_f1: bool = False) -> MetricFn:
  """Score metric fn for seqio.preprocessors.rank_classification: the class whose target scores
  the highest log-likelihood is the prediction.

  Assumes rows arrive in consecutive blocks of `num_classes`, one per candidate label of one
  example in label order (what the preprocessor emits and seqio keeps), and that the target
  postprocessor returns each row's "is_correct" as 0/1. A block may mark several candidates
  correct; picking any of them counts as right. With `with_macro_f1` the first correct candidate
  is the true class for F1-macro over the candidates ("mean_{num_classes}class_f1")."""
  if num_classes < 2:
    raise ValueError(f"rank classification needs at least 2 classes, got {num_classes}")

  def metric(targets: Sequence[int], scores: Sequence[float]) -> Metrics:
    _check_lengths(targets, scores)
    if len(targets) % num_classes:
      raise ValueError(f"{len(targets)} rows do not split into blocks of {num_classes} candidates")
    is_correct = np.asarray(targets, dtype=np.int64).reshape(-1, num_classes)
    chosen = np.asarray(scores, dtype=np.float64).reshape(-1, num_classes).argmax(axis=1)
    result = {"accuracy": _percent(np.mean(is_correct[np.arange(len(chosen)), chosen] == 1))}
    if with_macro_f1:
      true_class = is_correct.argmax(axis=1)
      result[_macro_f1_key(num_classes)] = _macro_f1(true_class, chosen, num_classes)
    return result

  metric.__name__ = f"rank_classification_{num_classes}"
  return metric


# ---------------------------------------------------------------- generation


ROUGE_KEYS = ("rouge1", "rouge2", "rougeLsum")


def _prepare_summary(summary: str) -> str:
  """One sentence a line, as T5 does, because rougeLsum splits summaries on newlines."""
  return summary.replace(" . ", " .\n")


def rouge(targets: Sequence[str], predictions: Sequence[str]) -> Metrics:
  """Mean ROUGE-1/2/Lsum F-measure in % (rouge_score, Porter stemmer). T5's `rouge` reports the
  median of a random bootstrap; the plain mean (T5's rouge_mean) keeps this deterministic."""
  from rouge_score import rouge_scorer
  _check_lengths(targets, predictions)
  scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
  scores = [scorer.score(target=_prepare_summary(t), prediction=_prepare_summary(p))
            for t, p in zip(targets, predictions)]
  return {key: _percent(np.mean([s[key].fmeasure for s in scores])) for key in ROUGE_KEYS}


def bleu(targets: Sequence[str], predictions: Sequence[str]) -> Metrics:
  """Corpus BLEU (sacrebleu, one reference per example) with T5's settings."""
  import sacrebleu
  _check_lengths(targets, predictions)
  score = sacrebleu.corpus_bleu(list(predictions), [list(targets)], smooth_method="exp",
                                smooth_value=0.0, force=False, lowercase=False, tokenize="intl",
                                use_effective_order=False)
  return {"bleu": float(score.score)}


# ---------------------------------------------------------------- combining


def _output_name(metric_fn: MetricFn) -> str:
  """"predictions" or "scores": the second required argument, the way seqio classifies metric fns."""
  names = tuple(name for name, param in inspect.signature(metric_fn).parameters.items()
                if param.default is param.empty and param.kind == param.POSITIONAL_OR_KEYWORD)
  if names not in (("targets", "predictions"), ("targets", "scores")):
    raise ValueError(f"{metric_fn!r} takes {names}; with_average combines (targets, predictions) "
                     "or (targets, scores) metric fns")
  return names[1]


def _merged_with_average(metric_fns: Sequence[MetricFn], targets: Sequence[Any],
                         outputs: Sequence[Any]) -> Metrics:
  results: Metrics = {}
  for fn in metric_fns:
    values = fn(targets, outputs)
    clash = (results.keys() & values.keys()) | (values.keys() & {"average"})
    if clash:
      raise ValueError(f"metric names {sorted(clash)} reported twice by with_average's fns")
    results.update(values)
  results["average"] = float(np.mean(list(results.values())))
  return results


def with_average(*metric_fns: MetricFn) -> MetricFn:
  """One metric fn reporting all of `metric_fns`' values plus "average", their mean (SPoT footnote
  5: a task with several metrics is scored by their average). The combined fn keeps the argument
  names seqio dispatches on, so all `metric_fns` must be predict metrics or all score metrics."""
  if not metric_fns:
    raise ValueError("with_average needs at least one metric fn")
  kinds = {_output_name(fn) for fn in metric_fns}
  if len(kinds) > 1:
    raise ValueError("with_average cannot mix predict (targets, predictions) and score "
                     "(targets, scores) metric fns")
  if kinds == {"scores"}:
    def combined(targets: Sequence[Any], scores: Sequence[float]) -> Metrics:
      return _merged_with_average(metric_fns, targets, scores)
  else:
    def combined(targets: Sequence[Any], predictions: Sequence[Any]) -> Metrics:
      return _merged_with_average(metric_fns, targets, predictions)
  names = ", ".join(getattr(fn, "__name__", type(fn).__name__) for fn in metric_fns)
  combined.__name__ = f"with_average({names})"
  return combined
