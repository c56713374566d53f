"""Trivial baselines: what guessing scores on an embedded task."""

from __future__ import annotations

import collections

import pytest

from spot_jax.embedded import baselines
from spot_jax.embedded import tasks as synthetic_tasks


def test_trivial_baselines_by_kind():
  name = synthetic_tasks.task_name("sent_mood")
  labels = collections.Counter(e["targets"] for e in synthetic_tasks.examples(name, "validation"))
  assert baselines.trivial_baseline(name) == pytest.approx(
      100 * max(labels.values()) / sum(labels.values()), rel=1e-12)
  assert baselines.trivial_baseline(synthetic_tasks.task_name("para_sts_small")) == 0.0
  # extractive: one of the 2-3 people of the context, at random
  assert 100 / 3 <= baselines.trivial_baseline(synthetic_tasks.task_name("qa_who")) <= 50
