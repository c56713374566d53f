"""The study runner: short in-process tunings over one frozen model and shared compiled functions."""

from __future__ import annotations

import numpy as np
import pytest

import toy_task
from spot_jax.model.config import get_config
from spot_jax.model.params import init_params
from spot_jax.study import runner


@pytest.fixture(scope="module")
def tuner():
  toy_task.register()
  config = get_config("t5_1_1_test")
  protocol = runner.Protocol(steps=6, eval_every=3, batch_size=8, prompt_length=4, embedding_step=2,
                             eval_batch_size=32, vocab_limit=200)
  return runner.Tuner(config, init_params(config, 0), protocol,
                      feature_lengths=lambda task: toy_task.FEATURE_LENGTHS, log=None)


def test_tune_records_scores_and_prompts(tuner):
  run = tuner.tune(toy_task.TASK, seed=0)
  assert sorted(run.scores) == [0, 3, 6]
  assert run.best_score == max(run.scores.values())
  assert run.scores[run.best_step] == run.best_score
  assert run.source_prompt.shape == run.final_prompt.shape == run.task_embedding.shape == (4, 32)
  # the prompt moved, and the recorded best prompt scores what was recorded for it
  assert not np.array_equal(run.final_prompt, tuner.initial_prompt(0))
  assert tuner.validate(toy_task.TASK, run.source_prompt) == pytest.approx(run.best_score, abs=1e-9)


def test_tune_starts_from_the_given_prompt_and_is_deterministic(tuner):
  init = np.random.default_rng(0).normal(size=(4, 32)).astype(np.float32)
  a = tuner.tune(toy_task.TASK, seed=1, init=init, steps=3)
  b = tuner.tune(toy_task.TASK, seed=1, init=init, steps=3)
  assert a.scores[0] == pytest.approx(tuner.validate(toy_task.TASK, init), abs=1e-9)
  np.testing.assert_array_equal(a.final_prompt, b.final_prompt)
  c = tuner.tune(toy_task.TASK, seed=1, steps=3)  # another init: another trajectory
  assert not np.array_equal(a.final_prompt, c.final_prompt)
