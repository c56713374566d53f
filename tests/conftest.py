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
