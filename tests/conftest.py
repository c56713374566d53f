"""Shared test fixtures: the ../shared/fixtures location and tiny HF reference models."""

from __future__ import annotations

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def fixtures_root() -> pathlib.Path:
  return pathlib.Path(os.environ.get("SPOT_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))


def fixture_path(*parts: str) -> pathlib.Path:
  """Path under the fixtures root, or skip the test with the reason when it is absent."""
  path = fixtures_root().joinpath(*parts)
  if not path.exists():
    pytest.skip(f"fixture {path} not found (set SPOT_FIXTURES to the shared fixtures directory)")
  return path


_TEST_DATA = ("prompt_tuning_upstream", "prompt_tuning", "test_data")

# The seqio catalog (tasks/) tokenizes with $SPOT_VOCABULARY: point it at the real T5 vocabulary
# fixture before any test imports the catalog.
if fixtures_root().joinpath(*_TEST_DATA, "t5_vocab").exists():
  os.environ.setdefault("SPOT_VOCABULARY", str(fixtures_root().joinpath(*_TEST_DATA, "t5_vocab")))


@pytest.fixture(scope="session")
def tiny_t5x_checkpoint() -> pathlib.Path:
  return fixture_path(*_TEST_DATA, "test_t5_1_1_tiny", "checkpoint_3")


@pytest.fixture(scope="session")
def t5_vocab_path() -> pathlib.Path:
  return fixture_path(*_TEST_DATA, "t5_vocab")
