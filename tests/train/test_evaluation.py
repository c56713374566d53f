"""Validation through seqio.Evaluator: score metrics get the model's target log-likelihoods."""

import jax
import numpy as np
import pytest

import toy_task
from spot_jax.data.pipeline import converted_dataset
from spot_jax.model import decoding, get_config, init_params
from spot_jax.train.evaluation import Validator, score_of


def test_score_metrics_receive_target_log_likelihoods():
  config = get_config("t5_1_1_test", dropout_rate=0.0)
  frozen = init_params(config, 0)
  prompt = jax.random.normal(jax.random.PRNGKey(3), (6, config.emb_dim))
  validator = Validator(toy_task.SCORED_TASK, config=config, feature_lengths=toy_task.FEATURE_LENGTHS,
                        batch_size=24)  # 64 examples: the last batch is padded
  metrics = validator(frozen, {"prompt": prompt})
  got = metrics[toy_task.SCORED_TASK]["mean_log_likelihood"]
  ds = converted_dataset(toy_task.SCORED_TASK, split="validation",
                         feature_lengths=toy_task.FEATURE_LENGTHS, shuffle=False, seed=None,
                         num_epochs=1)
  batch = next(ds.batch(1000).as_numpy_iterator())
  direct = decoding.score_targets(frozen, batch["encoder_input_tokens"],
                                  batch["decoder_target_tokens"], config=config, peft={"prompt": prompt})
  assert len(direct) == toy_task.SPLITS["validation"]
  assert got == pytest.approx(float(np.mean(direct)), rel=1e-5)
  assert got < 0


def test_score_of_averages_metrics_then_tasks():
  metrics = {"a": {"f1": 80.0, "accuracy": 60.0}, "b": {"accuracy": 40.0}}
  assert score_of(metrics) == pytest.approx(55.0, rel=1e-9)
  assert score_of(metrics, "accuracy") == pytest.approx(50.0, rel=1e-9)
