"""spot_jax.data.metrics against sklearn / scipy / rouge_score / sacrebleu and hand-computed cases."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer
from scipy import stats
from sklearn import metrics as sk

from spot_jax.data import metrics as m

RNG_SEEDS = range(5)
# Every metric here is float64 arithmetic on counts or scores (ours, sklearn's, scipy's): results
# agree to ~1e-13, so 1e-9 catches any real difference. Exact == is kept where the value is a
# small fraction of counts, exact in binary (100 * 2/4 = 50.0), or a literal the code returns.
F64 = {"rel": 1e-9, "abs": 1e-9}


def random_labels(seed: int, num_classes: int, n: int = 200, invalid_rate: float = 0.1):
  """Targets in [0, num_classes) and predictions that are sometimes -1 (an unparseable decode)."""
  rng = np.random.default_rng(seed)
  targets = rng.integers(0, num_classes, n)
  predictions = np.where(rng.random(n) < 0.6, targets, rng.integers(0, num_classes, n))
  predictions = np.where(rng.random(n) < invalid_rate, -1, predictions)
  return targets.tolist(), predictions.tolist()


def required_args(fn) -> tuple[str, ...]:
  """The argument names seqio dispatches on (required positional-or-keyword parameters)."""
  return tuple(name for name, p in inspect.signature(fn).parameters.items()
               if p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD)


@pytest.mark.parametrize("fn, kind", [
    (m.accuracy, "predictions"), (m.f1_and_accuracy, "predictions"),
    (m.macro_f1(3), "predictions"), (m.matthews_corrcoef, "predictions"),
    (m.pearson_spearman, "predictions"), (m.squad, "predictions"), (m.record, "predictions"),
    (m.multirc_f1a_em, "predictions"), (m.rouge, "predictions"), (m.bleu, "predictions"),
    (m.rank_classification(2), "scores"),
])
def test_seqio_signature(fn, kind):
  assert required_args(fn) == ("targets", kind)


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_accuracy_and_binary_f1_match_sklearn(seed):
  targets, predictions = random_labels(seed, 2)
  # T5's f1_score_with_invalid: an invalid prediction is the opposite of its target.
  repaired = [p if p in (0, 1) else 1 - t for t, p in zip(targets, predictions)]
  got = m.f1_and_accuracy(targets, predictions)
  assert got["accuracy"] == pytest.approx(100 * sk.accuracy_score(targets, predictions), **F64)
  assert got["f1"] == pytest.approx(100 * sk.f1_score(targets, repaired), **F64)
  assert m.accuracy(targets, predictions) == {"accuracy": got["accuracy"]}


def test_binary_f1_counts_invalid_prediction_as_false_positive():
  # Predictions [1, 1, 1] after repair: precision 2/3, recall 1 -> F1 0.8.
  got = m.f1_and_accuracy([1, 1, 0], [1, 1, -1])
  assert got == pytest.approx({"f1": 80.0, "accuracy": 100 * 2 / 3}, **F64)
  assert m.f1_and_accuracy([0, 0], [0, 0])["f1"] == 0.0  # no positives anywhere: sklearn's 0


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("num_classes", [2, 3, 5])
def test_macro_f1_matches_sklearn(seed, num_classes):
  targets, predictions = random_labels(seed, num_classes, n=40)
  expected = sk.f1_score(targets, predictions, labels=list(range(num_classes)), average="macro",
                         zero_division=0)
  got = m.macro_f1(num_classes)(targets, predictions)
  assert got == {f"mean_{num_classes}class_f1": pytest.approx(100 * expected, **F64)}


def test_macro_f1_absent_class_scores_zero():
  # Class 2 neither present nor predicted: F1 0 (sklearn zero_division=0), so the mean is 2/3.
  got = m.macro_f1(3)([0, 1, 0, 1], [0, 1, 0, 1])
  assert got["mean_3class_f1"] == pytest.approx(100 * 2 / 3, **F64)
  assert got["mean_3class_f1"] == pytest.approx(100 * sk.f1_score(
      [0, 1, 0, 1], [0, 1, 0, 1], labels=[0, 1, 2], average="macro", zero_division=0), **F64)


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_matthews_matches_sklearn(seed):
  targets, predictions = random_labels(seed, 2)
  got = m.matthews_corrcoef(targets, predictions)["matthews_corrcoef"]
  assert got == pytest.approx(100 * sk.matthews_corrcoef(targets, predictions), **F64)
  targets3, predictions3 = random_labels(seed, 3)
  got3 = m.matthews_corrcoef(targets3, predictions3)["matthews_corrcoef"]
  assert got3 == pytest.approx(100 * sk.matthews_corrcoef(targets3, predictions3), **F64)


@pytest.mark.filterwarnings("ignore:A single label was found")  # sklearn, on the all-ones case
@pytest.mark.parametrize("targets, predictions", [
    ([1, 1, 1], [1, 1, 1]), ([1, 1, 1], [0, 1, 0]), ([0, 1, 0], [1, 1, 1])])
def test_matthews_degenerate_is_zero_like_sklearn(targets, predictions):
  assert sk.matthews_corrcoef(targets, predictions) == 0.0
  assert m.matthews_corrcoef(targets, predictions) == {"matthews_corrcoef": 0.0}


def test_length_mismatch_and_empty_raise():
  with pytest.raises(ValueError, match="2 targets but 1"):
    m.accuracy([0, 1], [0])
  with pytest.raises(ValueError, match="no examples"):
    m.accuracy([], [])


# ---------------------------------------------------------------- STS-B


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_pearson_spearman_match_scipy(seed):
  rng = np.random.default_rng(seed)
  targets = rng.uniform(0, 5, 100)
  predictions = targets + rng.normal(0, 1, 100)
  got = m.pearson_spearman(targets.tolist(), predictions.tolist())
  assert got["pearson_corrcoef"] == pytest.approx(100 * stats.pearsonr(targets, predictions)[0],
                                                  **F64)
  assert got["spearman_corrcoef"] == pytest.approx(100 * stats.spearmanr(targets, predictions)[0],
                                                   **F64)


def test_stsb_string_round_trip():
  rng = np.random.default_rng(0)
  scores = rng.uniform(0, 5, 200)
  target_strings = [m.stsb_target(s) for s in scores]
  targets = [m.string_to_float(s, example={}, is_target=True) for s in target_strings]
  np.testing.assert_allclose(targets, np.round(scores * 5) / 5, atol=1e-9)
  assert all(len(s) == 3 and s[1] == "." for s in target_strings)
  noisy = np.clip(np.asarray(targets) + rng.normal(0, 0.7, 200), 0, 5)
  predictions = [m.string_to_float(m.stsb_target(x)) for x in noisy] + [m.string_to_float("no")]
  targets.append(2.0)
  got = m.pearson_spearman(targets, predictions)
  assert predictions[-1] == -1.0
  assert got["pearson_corrcoef"] == pytest.approx(100 * stats.pearsonr(targets, predictions)[0],
                                                  **F64)
  assert got["spearman_corrcoef"] == pytest.approx(100 * stats.spearmanr(targets, predictions)[0],
                                                   **F64)


@pytest.mark.parametrize("score, text", [
    (2.37, "2.4"), (3.0, "3.0"), (5.0, "5.0"), (0.0, "0.0"), (0.09, "0.0"), (4.91, "5.0"),
    (1.29, "1.2"), (1.31, "1.4")])
def test_stsb_target(score, text):
  assert m.stsb_target(score) == text


@pytest.mark.parametrize("text, value", [
    ("2.4", 2.4), (b"3.0", 3.0), (" 1.6 ", 1.6), ("two", -1.0), ("", -1.0), ("nan", -1.0),
    ("inf", -1.0)])
def test_string_to_float(text, value):
  assert m.string_to_float(text) == value


def test_pearson_spearman_constant_predictions_are_zero():
  got = m.pearson_spearman([1.0, 2.0, 3.0], [-1.0, -1.0, -1.0])
  assert got == {"pearson_corrcoef": 0.0, "spearman_corrcoef": 0.0}


# ---------------------------------------------------------------- QA


def test_squad_hand_cases():
  # Normalized: gold "eiffel tower" == prediction "eiffel tower" -> EM 1, F1 1.
  # "big red dog" vs "red dog barked": 2 common of 3 and 3 -> P = R = 2/3 -> F1 2/3.
  got = m.squad([["The Eiffel Tower"], ["the big red dog"]], ["eiffel tower!", "A red dog barked"])
  assert got == pytest.approx({"em": 50.0, "f1": 100 * (1 + 2 / 3) / 2}, **F64)


def test_squad_counts_repeated_tokens_once_per_match():
  # common = min counts: "to" x2 -> P = 2/3, R = 2/6, F1 = 2PR/(P+R) = 4/9.
  assert m.squad([["to be or not to be"]], ["to to to"]) == pytest.approx(
      {"em": 0.0, "f1": 100 * 4 / 9}, **F64)


def test_squad_punctuation_inside_words_and_bare_string_target():
  assert m.squad(["U.S. Army"], ["the US army"]) == {"em": 100.0, "f1": 100.0}


def test_squad_no_overlap_and_empty_prediction():
  assert m.squad([["Paris"], ["Paris"]], ["London", ""]) == {"em": 0.0, "f1": 0.0}


def test_record_max_over_answers():
  # The prediction matches the second gold only: full credit.
  assert m.record([["Barack Obama", "Obama"]], ["obama."]) == {"em": 100.0, "f1": 100.0}
  # F1 is the best gold's: "york city" vs "new york city" -> P 1, R 2/3 -> F1 0.8; vs "NYC" -> 0.
  got = m.record([["New York City", "NYC"], ["NYC"]], ["York City", "nyc"])
  assert got == pytest.approx({"em": 50.0, "f1": 100 * (0.8 + 1) / 2}, **F64)


# ---------------------------------------------------------------- MultiRC


def test_multirc_groups_by_question():
  rows = [  # (question, target, prediction)
      ("q1", 1, 1), ("q2", 0, 1), ("q1", 0, 0), ("q2", 1, 1), ("q1", 1, 1)]
  targets = [{"group": g, "value": t} for g, t, _ in rows]
  predictions = [{"group": g, "value": p} for g, _, p in rows]
  got = m.multirc_f1a_em(targets, predictions)
  # q1 all right, q2 one wrong -> EM 50. Rows: TP 3, FP 1, FN 0 -> F1 = 6 / 7.
  assert got == pytest.approx({"exact_match": 50.0, "f1a": 100 * 6 / 7}, **F64)
  assert got["f1a"] == pytest.approx(100 * sk.f1_score([t for _, t, _ in rows],
                                                       [p for _, _, p in rows]), **F64)


def test_multirc_invalid_prediction_is_wrong():
  targets = [{"group": 0, "value": 0}, {"group": 1, "value": 1}]
  predictions = [{"group": 0, "value": -1}, {"group": 1, "value": 1}]
  # Row 0 becomes a false positive: TP 1, FP 1 -> F1 2/3.
  assert m.multirc_f1a_em(targets, predictions) == pytest.approx(
      {"exact_match": 50.0, "f1a": 100 * 2 / 3}, **F64)


# ---------------------------------------------------------------- rank classification


def test_rank_classification_hand_blocks():
  targets = [0, 1, 0,   0, 0, 1]
  scores = [-3.0, -1.0, -2.0,   -0.5, -2.0, -1.0]
  # Block 1 picks class 1 (correct); block 2 picks class 0 but class 2 is right.
  assert m.rank_classification(3)(targets, scores) == {"accuracy": 50.0}
  # True [1, 2], predicted [1, 0]: per-class F1 0, 1, 0.
  got = m.rank_classification(3, with_macro_f1=True)(targets=targets, scores=scores)
  assert got == pytest.approx({"accuracy": 50.0, "mean_3class_f1": 100 / 3}, **F64)
  assert got["mean_3class_f1"] == pytest.approx(100 * sk.f1_score(
      [1, 2], [1, 0], labels=[0, 1, 2], average="macro", zero_division=0), **F64)


def test_rank_classification_any_correct_candidate_counts():
  assert m.rank_classification(2)([1, 1, 0, 1], [-1.0, -2.0, -1.0, -3.0]) == {"accuracy": 50.0}


def test_rank_classification_rejects_partial_block():
  with pytest.raises(ValueError, match="blocks of 3"):
    m.rank_classification(3)([0, 1, 0, 1], [0.0, 0.0, 0.0, 0.0])


# ---------------------------------------------------------------- generation

SUMMARIES = [
    ("the cat sat on the mat . it was happy .", "a cat was sitting on the mat . the cat smiled ."),
    ("police arrested two men after the robbery", "two men were arrested by police"),
    ("Stocks rallied on Friday", "markets fell sharply"),
]


def test_rouge_matches_rouge_score():
  targets, predictions = zip(*SUMMARIES)
  scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
  direct = [scorer.score(t.replace(" . ", " .\n"), p.replace(" . ", " .\n"))
            for t, p in SUMMARIES]
  got = m.rouge(list(targets), list(predictions))
  for key in ("rouge1", "rouge2", "rougeLsum"):
    assert got[key] == pytest.approx(100 * np.mean([d[key].fmeasure for d in direct]), **F64)
  assert set(got) == {"rouge1", "rouge2", "rougeLsum"}


def test_rougelsum_uses_sentence_lines():
  # Sentence-split summary-level LCS differs from one-line LCS when sentences are reordered.
  target, prediction = "b c d . a x y", "a x y . b c d"
  lsum = m.rouge([target], [prediction])["rougeLsum"]
  one_line = rouge_scorer.RougeScorer(["rougeLsum"]).score(target, prediction)["rougeLsum"]
  assert lsum == pytest.approx(100.0, **F64)
  assert 100 * one_line.fmeasure < lsum


def test_rouge_stems_words():
  # Porter stemming: "cats running" and "cat runs" both become "cat run".
  assert m.rouge(["cats running"], ["cat runs"]) == pytest.approx(
      {"rouge1": 100.0, "rouge2": 100.0, "rougeLsum": 100.0}, **F64)


def test_rouge_identical_is_100():
  texts = [t for t, _ in SUMMARIES]
  assert m.rouge(texts, texts) == pytest.approx({"rouge1": 100.0, "rouge2": 100.0,
                                                 "rougeLsum": 100.0}, **F64)


def test_bleu_identical_is_100_and_matches_sacrebleu():
  # Unicode punctuation and symbols: the "intl" tokenizer splits them off, "13a" would not.
  targets = ["Das Haus ist klein.", "Er sagte „Hallo“—leise, kostet 5€.", "Ich habe Hunger."]
  predictions = ["Das Haus ist klein.", "Er sagte „Hallo“ leise, kostet 5 €.", "Ich bin hungrig."]
  assert m.bleu(targets, targets) == {"bleu": pytest.approx(100.0, **F64)}
  reference = sacrebleu.metrics.BLEU(tokenize="intl", smooth_method="exp", smooth_value=0.0,
                                     lowercase=False, effective_order=False)
  expected = reference.corpus_score(predictions, [targets]).score
  got = m.bleu(targets, predictions)["bleu"]
  assert got == pytest.approx(expected, **F64)
  assert 0.0 < got < 100.0


# ---------------------------------------------------------------- with_average


def test_with_average_reports_mean_and_keeps_predict_signature():
  targets, predictions = random_labels(0, 2)
  combined = m.with_average(m.f1_and_accuracy, m.matthews_corrcoef)
  assert list(inspect.signature(combined).parameters) == ["targets", "predictions"]
  got = combined(targets=targets, predictions=predictions)  # seqio calls by keyword
  parts = {**m.f1_and_accuracy(targets, predictions), **m.matthews_corrcoef(targets, predictions)}
  assert got == pytest.approx({**parts, "average": np.mean(list(parts.values()))}, **F64)
  assert set(got) == {"f1", "accuracy", "matthews_corrcoef", "average"}


def test_with_average_keeps_score_signature():
  combined = m.with_average(m.rank_classification(2, with_macro_f1=True))
  assert list(inspect.signature(combined).parameters) == ["targets", "scores"]
  got = combined(targets=[1, 0, 0, 1], scores=[0.0, -1.0, 0.0, -1.0])
  assert got == pytest.approx({"accuracy": 50.0, "mean_2class_f1": 100 / 3, "average": 125 / 3},
                             **F64)


def test_with_average_rejects_mixed_kinds_clashes_and_bad_signatures():
  with pytest.raises(ValueError, match="cannot mix"):
    m.with_average(m.accuracy, m.rank_classification(2))
  with pytest.raises(ValueError, match="reported twice"):
    m.with_average(m.accuracy, m.f1_and_accuracy)([0, 1], [0, 1])
  with pytest.raises(ValueError, match="takes"):
    m.with_average(lambda predictions, targets: {})
  with pytest.raises(ValueError, match="at least one"):
    m.with_average()
