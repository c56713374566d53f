"""Shared test fixtures: the real files under tests/fixtures/ and their paths."""

from __future__ import annotations

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "prompt_tuning"


def fixture_path(*parts: str) -> pathlib.Path:
  """Path of a file under tests/fixtures/prompt_tuning; a missing fixture fails the test."""
  path = FIXTURES.joinpath(*parts)
  if not path.exists():
    pytest.fail(f"test fixture {path} is missing (see tests/fixtures/README.md)")
  return path


# The seqio catalog (tasks/) tokenizes with $SPOT_VOCABULARY: point it at the real T5 vocabulary
# fixture before any test imports the catalog.
os.environ.setdefault("SPOT_VOCABULARY", str(FIXTURES / "test_data" / "t5_vocab"))


@pytest.fixture(scope="session")
def tiny_t5x_checkpoint() -> pathlib.Path:
  return fixture_path("test_data", "test_t5_1_1_tiny", "checkpoint_3")


@pytest.fixture(scope="session")
def t5_vocab_path() -> pathlib.Path:
  return fixture_path("test_data", "t5_vocab")


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> pathlib.Path:
  """MODEL_DIR of one short run on the toy task (tests/train/toy_run.gin: 30 steps, checkpoints 10,
  20, 30), trained through the CLI in this process; tests only read it."""
  from spot_jax import cli
  model_dir = tmp_path_factory.mktemp("toy_run")
  assert cli.main(["train", "--module", "toy_task",
                   f"--gin_file={REPO_ROOT / 'tests' / 'train' / 'toy_run.gin'}",
                   f"--gin.MODEL_DIR='{model_dir}'"]) == 0
  return model_dir
