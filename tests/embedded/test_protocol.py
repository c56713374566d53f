"""One embedded protocol: the gin runs (gin_configs/embedded) and the in-process studies (demo,
`spot-jax study transfer`) read the numbers of spot_jax.embedded.protocol."""

from __future__ import annotations

import gin
import pytest

from spot_jax import cli, gin_utils
from spot_jax.embedded import protocol
from spot_jax.embedded import tasks as synthetic_tasks

REQUIRED = ["MIXTURE_OR_TASK_NAME='synthetic_nli_cb_v2'", "MODEL_DIR='/tmp/unused'",
            "PROMPT_FILE='/tmp/unused.npy'", "INITIAL_CHECKPOINT_PATH=None"]


def _value(v):
  """A bound value with gin macros and constants resolved."""
  if isinstance(v, gin.config.ConfigurableReference):
    name, kind = v.scoped_selector.rsplit("/", 1)
    if kind == "gin.macro":
      return _value(gin.query_parameter(f"{name}/gin.macro.value"))
    assert kind == "gin.constant", v.scoped_selector
    return gin.query_parameter(name)
  return v


def _bindings(*gin_files: str) -> dict[str, object]:
  gin_utils.parse(list(gin_files), REQUIRED, [])
  out = {f"train.{k}": _value(v) for k, v in gin.get_bindings("train").items()}
  for optimizer in ("adam", "adafactor"):
    out |= {f"{optimizer}.{k}": _value(v) for k, v in gin.get_bindings(optimizer).items()}
  out["SampledVocabInit.vocab_limit"] = _value(gin.query_parameter("SampledVocabInit.vocab_limit"))
  gin.clear_config()
  return out


@pytest.mark.parametrize("gin_file, run", [("embedded/source.gin", protocol.SOURCE_RUN),
                                           ("embedded/target.gin", protocol.TARGET_RUN),
                                           ("embedded/spot.gin", protocol.TARGET_RUN)])
def test_gin_runs_bind_the_protocol(gin_file, run):
  got = _bindings(gin_file)
  assert {k: got[k] for k in (
      "train.prompt_length", "adam.learning_rate", "train.batch_size", "train.dropout_rate",
      "SampledVocabInit.vocab_limit", "train.feature_lengths", "train.num_train_steps",
      "train.eval_period", "train.checkpoint_period", "train.task_embedding_step",
      "train.num_eval_examples", "train.log_period")} == {
      "train.prompt_length": 20, "adam.learning_rate": 0.1, "train.batch_size": 32,
      "train.dropout_rate": 0.0, "SampledVocabInit.vocab_limit": 279,
      "train.feature_lengths": synthetic_tasks.FEATURE_LENGTHS, "train.num_train_steps": run.steps,
      "train.eval_period": run.eval_every, "train.checkpoint_period": run.eval_every,
      "train.task_embedding_step": run.embedding_step,
      "train.num_eval_examples": run.num_eval_examples, "train.log_period": protocol.LOG_EVERY}
  assert (protocol.SOURCE_RUN.steps, protocol.TARGET_RUN.steps) == (1000, 300)


def test_the_embedded_constants_leave_other_runs_alone():
  """gin matches a constant by its last name component: none may shadow a run file's macro."""
  got = _bindings("models/t5_1_1_base.gin", "prompts/sampled_vocab.gin", "runs/prompt_finetune.gin")
  assert got["train.prompt_length"] == 100 and got["train.batch_size"] == 32
  assert got["train.feature_lengths"] == {"inputs": 512, "targets": 16}
  assert got["SampledVocabInit.vocab_limit"] == 5000 and got["adafactor.learning_rate"] == 0.3


def test_demo_and_study_cli_use_the_protocol(tmp_path, monkeypatch):
  from spot_jax.embedded import demo
  p = protocol.DEMO_PROTOCOL
  assert (p.steps, p.eval_every, p.embedding_step, p.num_eval_examples) == (200, 100, 50, 300)
  assert (p.prompt_length, p.learning_rate, p.batch_size, p.vocab_limit) == (
      protocol.PROMPT_LENGTH, protocol.LEARNING_RATE, protocol.BATCH_SIZE, protocol.VOCAB_LIMIT)
  got = {}
  monkeypatch.setattr(demo, "study", lambda out, **kw: got.update(kw))
  assert cli.main(["study", "transfer", "--out", str(tmp_path)]) == 0
  assert got["protocol"] == p and got["source_steps"] == protocol.DEMO_SOURCE_STEPS == 300
  assert got["sources"] == synthetic_tasks.SOURCE_TASKS and got["targets"] == synthetic_tasks.TARGET_TASKS
