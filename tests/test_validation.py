"""Run-setting checks made before anything is loaded or written (spot_jax.validation)."""

import pytest

import toy_task
from spot_jax.errors import SpotError
from spot_jax import validation


def test_unknown_task_names_the_closest_registered_ones():
  with pytest.raises(SpotError, match=f"did you mean {toy_task.TASK}") as e:
    validation.resolve_task(toy_task.TASK[:-1] + "x")
  assert "spot-jax tasks" in e.value.message
  assert validation.resolve_task(toy_task.TASK).name == toy_task.TASK


def test_missing_split_lists_the_task_splits():
  task = validation.resolve_task(toy_task.TASK)
  validation.check_split(task, "validation", setting="validation_split")
  with pytest.raises(SpotError, match="has no split 'dev'.*train"):
    validation.check_split(task, "dev", setting="validation_split")


@pytest.mark.parametrize("value", [0, -3, 2.5, "10", True, None])
def test_counts_must_be_positive_integers(value):
  with pytest.raises(SpotError, match="num_train_steps must be a positive integer"):
    validation.check_positive({"num_train_steps": value})


def test_optional_counts_accept_none():
  validation.check_optional_positive({"checkpoint_period": None, "eval_batch_size": 4})


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 0.0, -0.1, 1e999])
def test_learning_rate_must_be_finite_and_positive(value):
  with pytest.raises(SpotError, match="learning_rate must be a finite positive number"):
    validation.check_finite({"learning_rate": value})


def test_batch_must_split_over_the_data_axis():
  validation.check_divides(32, 8)
  with pytest.raises(SpotError, match="batch_size 6 does not split over the 4"):
    validation.check_divides(6, 4)


def test_output_directories(tmp_path):
  (tmp_path / "file").write_text("x")
  validation.check_writable_dir(tmp_path / "a" / "b", setting="MODEL_DIR")  # creatable
  validation.check_writable_dir("gs://bucket/run", setting="MODEL_DIR")  # remote: left to the write
  with pytest.raises(SpotError, match="is a file"):
    validation.check_writable_dir(tmp_path / "file", setting="MODEL_DIR")
  with pytest.raises(SpotError, match="lies under the file"):
    validation.check_writable_dir(tmp_path / "file" / "run", setting="MODEL_DIR")
  with pytest.raises(SpotError, match="is a directory"):
    validation.check_writable_file(tmp_path, setting="OUTPUT_FILE")
  assert [p.name for p in tmp_path.iterdir()] == ["file"]  # checking created nothing
