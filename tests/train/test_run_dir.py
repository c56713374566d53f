"""MODEL_DIR identity and writer lock (spot_jax.train.run_dir)."""

import pytest

from spot_jax.train import run_dir

IDENTITY = {"task": "a", "prompt_shape": [20, 64], "seed": 0, "feature_lengths": {"inputs": 8}}


def test_a_changed_run_is_refused_naming_each_difference(tmp_path):
  run_dir.write_identity(tmp_path, IDENTITY)
  run_dir.check_identity(tmp_path, dict(IDENTITY, prompt_shape=(20, 64)))  # tuple == list: same run
  with pytest.raises(run_dir.RunMismatchError) as e:
    run_dir.check_identity(tmp_path, dict(IDENTITY, task="b", seed=1))
  assert "task 'a' -> 'b'" in e.value.message and "seed 0 -> 1" in e.value.message
  assert "overwrite" in e.value.message
  # Restricted to the cheap keys (checked before the model is loaded).
  run_dir.check_identity(tmp_path, dict(IDENTITY, seed=1), keys={"task"})


def test_a_new_directory_has_no_identity_to_check(tmp_path):
  run_dir.check_identity(tmp_path / "new", IDENTITY)
  assert not (tmp_path / "new").exists()


def test_clear_run_removes_only_what_a_run_writes(tmp_path):
  for name in ("checkpoints/10", "exports", "tensorboard"):
    (tmp_path / name).mkdir(parents=True)
  for name in ("metrics.jsonl", "run.json", "config.gin", "notes.txt"):
    (tmp_path / name).write_text("x")
  run_dir.clear_run(tmp_path)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_second_writer_is_refused_until_the_first_releases(tmp_path):
  first = run_dir.WriterLock(tmp_path).acquire()
  with pytest.raises(run_dir.LockedError, match="being written by pid"):
    run_dir.WriterLock(tmp_path).acquire()
  first.release()
  with run_dir.WriterLock(tmp_path):
    pass
