"""The embedded universe in CrossFit's k-shot form: per-label counts, disjoint and seeded samples,
the test split, CrossFit's metrics, and the registered names."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import seqio
import sklearn.metrics  # the test extra: the reference macro-F1

import tasks  # noqa: F401  the catalog, the embedded k-shot tasks included
from spot_jax.embedded import crossfit, seqio_tasks
from spot_jax.embedded import tasks as synthetic_tasks
from spot_jax.errors import SpotError
from tasks import catalog
from tasks import crossfit as gym

CB = synthetic_tasks.task_name("nli_cb")  # 250 train examples, 3 labels


def labels(name: str, indices) -> list[str]:
  return [synthetic_tasks.example(name, "train", i)["targets"] for i in indices]


def rows(name: str, split: str) -> list[dict]:
  ds = seqio.get_mixture_or_task(name).source.get_dataset(split=split, shuffle=False)
  return [{k: v.decode() if isinstance(v, bytes) else int(v) for k, v in r.items()}
          for r in ds.as_numpy_iterator()]


def test_k_per_label_in_train_and_dev_and_disjoint():
  train, dev = crossfit.k_shot_indices(CB, 4, 13)
  for split in (train, dev):
    assert collections.Counter(labels(CB, split)) == {"entailment": 4, "neutral": 4,
                                                      "contradiction": 4}
  assert not set(train) & set(dev) and len(set(train)) == len(train)
  assert all(0 <= i < 250 for i in train + dev)


def test_the_sample_is_deterministic_per_seed_and_differs_across_seeds():
  first = crossfit.k_shot_indices(CB, 4, 21)
  crossfit.k_shot_indices.cache_clear()
  assert crossfit.k_shot_indices(CB, 4, 21) == first  # recomputed, not the cache
  assert crossfit.k_shot_indices("synthetic_nli_cb", 4, 21) == first  # unversioned name
  assert crossfit.k_shot_indices(CB, 4, 42)[0] != first[0]


def test_crossfit_rule_first_k_of_each_label_in_shuffled_order():
  # The Gym takes, per label, the first k of a seeded shuffle for train and the next k for dev:
  # equivalently, dev examples of a label come after its train examples in the shuffle.
  order = {int(i): rank for rank, i in enumerate(np.random.default_rng(87).permutation(250))}
  train, dev = crossfit.k_shot_indices(CB, 3, 87)
  for label in ("entailment", "neutral", "contradiction"):
    t = [i for i in train if labels(CB, [i])[0] == label]
    d = [i for i in dev if labels(CB, [i])[0] == label]
    assert max(order[i] for i in t) < min(order[i] for i in d)
    last = max(order[i] for i in d)
    earlier = [i for i in order if order[i] <= last and labels(CB, [i])[0] == label]
    assert sorted(earlier, key=order.get) == t + d  # no example of the label skipped


def test_too_few_examples_of_a_label_is_an_error_naming_it():
  with pytest.raises(SpotError, match=r"fewer than 2k = 200 train examples of label\(s\) "
                                      r"'contradiction': \d+, 'entailment': \d+, 'neutral': \d+"):
    crossfit.k_shot_indices(CB, 100, 13)
  with pytest.raises(SpotError, match="regression task"):
    crossfit.k_shot_indices(synthetic_tasks.task_name("para_sts"), 4, 13)


def test_registered_splits_are_the_k_shot_sets_and_the_embedded_validation():
  name = crossfit.target_name("nli_cb", 100)
  assert name == "synthetic_nli_cb_16_100_v2" and crossfit.base_task(name) == CB
  train_idx, dev_idx = crossfit.k_shot_indices(CB, crossfit.K, 100)
  train, dev = rows(name, "train"), rows(name, "validation")
  assert [r["idx"] for r in train] == list(train_idx) and [r["idx"] for r in dev] == list(dev_idx)
  assert train[0] == synthetic_tasks.example(CB, "train", train_idx[0])
  assert collections.Counter(r["targets"] for r in train) == {
      "entailment": 16, "neutral": 16, "contradiction": 16}
  assert rows(name, crossfit.UPSTREAM_SPLIT) == train + dev
  test = rows(name, "test")
  assert len(test) == 300 and test[:3] == [synthetic_tasks.example(CB, "validation", i)
                                           for i in range(3)]
  task = seqio.get_mixture_or_task(name)
  assert {s: task.num_input_examples(s) for s in crossfit.SPLITS} == {
      "train": 48, "validation": 48, "test": 300, "train_dev": 96}


def test_metrics_f1_for_targets_accuracy_for_nli_cb():
  for short in crossfit.TARGETS:
    for seed in crossfit.SEEDS:
      (fn,) = seqio.get_mixture_or_task(crossfit.target_name(short, seed)).metric_fns
      assert fn is (crossfit.accuracy if short == "nli_cb" else crossfit.macro_f1)
  targets = ["cheers", "sighs", "sighs", "cheers", "sighs", "cheers"]
  predictions = ["cheers", "sighs", "cheers ", "garbage", "sighs", "sighs"]
  reference = sklearn.metrics.f1_score(targets, [p.strip() for p in predictions], average="macro")
  assert crossfit.macro_f1(targets, predictions)["macro_f1"] == pytest.approx(
      100 * reference, rel=1e-9)  # float64 counts
  assert crossfit.accuracy(targets, predictions) == {"accuracy": 50.0}


def test_registered_names_mixture_and_feature_lengths():
  assert len(crossfit.TASKS) == 7 * 5 and crossfit.SEEDS == (13, 21, 42, 87, 100)
  assert crossfit.target_name("wsd_wic", 42) in crossfit.TASKS
  assert sorted(crossfit.UPSTREAM_SOURCES) == sorted([
      "sent_opinion", "sent_review", "sent_rating", "nli_location", "nli_possession", "nli_mixed",
      "para_pair", "para_story", "cola_order", "cola_missing", "wsd_sense"])
  assert crossfit.upstream_names() == crossfit.UPSTREAM and len(crossfit.UPSTREAM) == 11 * 5
  assert crossfit.upstream_names(seed=13)[0] == "synthetic_sent_opinion_16_13_v2"
  for name in crossfit.TASKS + crossfit.UPSTREAM:
    assert catalog.ENTRIES[name].family == "synthetic_crossfit"
  mixture = seqio.get_mixture_or_task(crossfit.MIXTURE)
  assert crossfit.MIXTURE == "synthetic_crossfit_upstream_v2"
  assert sorted(t.name for t in mixture.tasks) == sorted(crossfit.UPSTREAM)
  # examples-proportional: k x labels, known without generating an example
  assert mixture.get_rate(seqio.get_mixture_or_task("synthetic_sent_rating_16_13_v2")) == 48.0
  name = crossfit.target_name("sent_story", 13)
  assert crossfit.feature_lengths(name) == seqio_tasks.feature_lengths(
      synthetic_tasks.task_name("sent_story"))
  with pytest.raises(SpotError, match="no embedded k-shot task"):
    crossfit.base_task("synthetic_sent_story_v2")
  assert gym.UPSTREAM_SPLIT == crossfit.UPSTREAM_SPLIT == "train_dev"
