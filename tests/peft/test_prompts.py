"""Soft prompt initializers: shapes, randomness, vocabulary membership, prompt files."""

import jax
import numpy as np
import pytest
from conftest import fixture_path

from spot_jax.errors import SpotError
from spot_jax.peft import (ClassLabelInit, FromFileInit, PromptError, SampledVocabInit, UniformInit,
                           WeightedCombinationInit, load_prompt_file, save_prompt_file)

V, E, P = 64, 8, 10
_PRETRAINED = ("pretrained_prompts", "t5_1_1_lm100k_base")
_TEST_DATA = ("test_data",)


@pytest.fixture(scope="module")
def emb() -> np.ndarray:
  return np.random.default_rng(0).normal(size=(V, E)).astype(np.float32)  # [V, E]


@pytest.fixture
def prompt_file(tmp_path):
  """A saved [P, E] prompt and its values."""
  prompt = np.random.default_rng(1).normal(size=(P, E)).astype(np.float32)
  path = tmp_path / "prompt.npy"
  save_prompt_file(str(path), prompt)
  return path, prompt


def _rows_of(prompt, table) -> np.ndarray:
  """For each prompt row, the index of the equal table row (asserting there is one)."""
  prompt, table = np.asarray(prompt), np.asarray(table)
  eq = np.all(prompt[:, None, :] == table[None, :, :], axis=-1)  # [P, V]
  assert eq.any(axis=1).all(), "a prompt row is not a row of the table"
  return eq.argmax(axis=1)


def _assert_one_line_error(excinfo, *needles):
  msg = str(excinfo.value)
  assert isinstance(excinfo.value, SpotError) and "\n" not in msg
  for needle in needles:
    assert str(needle) in msg, msg


def _random_inits():
  return [UniformInit(), SampledVocabInit(vocab_limit=20), ClassLabelInit(((5,), (7, 9)))]


def test_prompt_error_is_a_spot_error():
  assert issubclass(PromptError, SpotError)


@pytest.mark.parametrize("init", _random_inits(), ids=lambda i: type(i).__name__)
def test_random_initializers_shape_dtype_and_rng(init, emb):
  a = init(jax.random.PRNGKey(0), emb, P)
  assert a.shape == (P, E) and a.dtype == np.float32
  np.testing.assert_array_equal(a, init(jax.random.PRNGKey(0), emb, P))
  assert not np.array_equal(a, init(jax.random.PRNGKey(1), emb, P))


def test_file_initializers_shape_dtype_and_ignore_rng(emb, prompt_file):
  path, prompt = prompt_file
  for init in (FromFileInit(str(path)), WeightedCombinationInit((str(path), prompt), (1.0, 3.0))):
    a = init(jax.random.PRNGKey(0), emb, P)
    assert a.shape == (P, E) and a.dtype == np.float32
    np.testing.assert_array_equal(a, init(jax.random.PRNGKey(1), emb, P))


def test_uniform_init_stays_in_range(emb):
  a = np.asarray(UniformInit(scale=0.1)(jax.random.PRNGKey(0), emb, P))
  assert np.all(np.abs(a) <= 0.1) and a.std() > 0.02


@pytest.mark.parametrize("seed", range(3))
def test_sampled_vocab_rows_are_distinct_rows_of_the_first_vocab_limit(seed, emb):
  a = SampledVocabInit(vocab_limit=20)(jax.random.PRNGKey(seed), emb, P)
  idx = _rows_of(a, emb[:20])
  assert len(set(idx.tolist())) == P


def test_sampled_vocab_can_use_the_whole_limit(emb):
  a = SampledVocabInit(vocab_limit=P)(jax.random.PRNGKey(0), emb, P)
  assert sorted(_rows_of(a, emb).tolist()) == list(range(P))


@pytest.mark.parametrize("limit", [5, 1000])  # limit below P, and table (V=64) below P=65
def test_sampled_vocab_too_long_prompt_raises(limit, emb):
  length = 6 if limit == 5 else V + 1
  with pytest.raises(PromptError) as excinfo:
    SampledVocabInit(vocab_limit=limit)(jax.random.PRNGKey(0), emb, length)
  _assert_one_line_error(excinfo, length)


def test_class_label_rows_are_label_means_then_fallback(emb):
  a = np.asarray(ClassLabelInit(((5,), (7, 9)), SampledVocabInit(20))(jax.random.PRNGKey(0), emb, P))
  np.testing.assert_allclose(a[0], emb[5], rtol=1e-6)
  np.testing.assert_allclose(a[1], (emb[7] + emb[9]) / 2, rtol=1e-6)
  assert len(set(_rows_of(a[2:], emb[:20]).tolist())) == P - 2


def test_class_label_ignores_pad_and_eos(emb):
  plain = ClassLabelInit(((5,), (7, 9)), UniformInit())(jax.random.PRNGKey(0), emb, P)
  padded = ClassLabelInit(((5, 1), (0, 7, 9, 1, 0)), UniformInit())(jax.random.PRNGKey(0), emb, P)
  np.testing.assert_array_equal(plain, padded)


def test_class_label_more_labels_than_rows_uses_the_first(emb):
  a = ClassLabelInit(((3,), (4,), (5,), (6,)))(jax.random.PRNGKey(0), emb, 2)
  np.testing.assert_array_equal(a, emb[[3, 4]])


def test_class_label_fallback_gets_the_rest_length(emb):
  a = ClassLabelInit(((5,), (7, 9)), UniformInit(0.5))(jax.random.PRNGKey(3), emb, P)
  np.testing.assert_array_equal(a[2:], UniformInit(0.5)(jax.random.PRNGKey(3), emb, P - 2))


@pytest.mark.parametrize("labels", [((5,), ()), ((1, 0),)])
def test_class_label_empty_label_raises(labels):
  with pytest.raises(PromptError) as excinfo:
    ClassLabelInit(labels)
  _assert_one_line_error(excinfo, "label")


def test_class_label_out_of_vocab_id_raises(emb):
  with pytest.raises(PromptError) as excinfo:
    ClassLabelInit(((5,), (V + 3,)))(jax.random.PRNGKey(0), emb, P)
  _assert_one_line_error(excinfo, V + 3)


def test_from_file_round_trip(emb, prompt_file):
  path, prompt = prompt_file
  assert not [p for p in path.parent.iterdir() if p != path], "temp file left behind"
  np.testing.assert_array_equal(FromFileInit(str(path))(jax.random.PRNGKey(0), emb, P), prompt)
  np.testing.assert_array_equal(load_prompt_file(path), prompt)


def test_save_overwrites_and_casts_to_float32(tmp_path):
  path = tmp_path / "sub" / "p.npy"
  save_prompt_file(path, np.zeros((2, 3)))
  save_prompt_file(path, np.ones((2, 3), np.float64))
  loaded = np.load(path)
  assert loaded.dtype == np.float32 and np.array_equal(loaded, np.ones((2, 3)))
  assert sorted(p.name for p in path.parent.iterdir()) == ["p.npy"]


def test_from_file_squeezes_a_leading_batch_axis(tmp_path, emb):
  prompt = np.random.default_rng(2).normal(size=(1, P, E)).astype(np.float32)
  path = tmp_path / "batched.npy"
  np.save(path, prompt)
  a = FromFileInit(str(path))(jax.random.PRNGKey(0), emb, P)
  assert a.shape == (P, E)
  np.testing.assert_array_equal(a, prompt[0])


@pytest.mark.parametrize("shape,length,needles", [
    ((P + 5, E), P, [P + 5, P]),  # wrong rows
    ((P, E + 1), P, [E + 1, E]),  # wrong width
    ((2, P, E), P, ["shape"]),  # 3-D with a batch axis that is not 1
    ((P * E,), P, ["shape"]),  # 1-D
])
def test_from_file_bad_shapes_raise(tmp_path, emb, shape, length, needles):
  path = tmp_path / "bad.npy"
  np.save(path, np.zeros(shape, np.float32))
  with pytest.raises(PromptError) as excinfo:
    FromFileInit(str(path))(jax.random.PRNGKey(0), emb, length)
  _assert_one_line_error(excinfo, path, *needles)


def test_from_file_missing_and_unreadable_raise(tmp_path, emb):
  missing = tmp_path / "nope.npy"
  with pytest.raises(PromptError) as excinfo:
    FromFileInit(str(missing))(jax.random.PRNGKey(0), emb, P)
  _assert_one_line_error(excinfo, missing)
  garbage = tmp_path / "garbage.npy"
  garbage.write_bytes(b"not a numpy file\nat all")
  with pytest.raises(PromptError) as excinfo:
    FromFileInit(str(garbage))(jax.random.PRNGKey(0), emb, P)
  _assert_one_line_error(excinfo, garbage)


@pytest.mark.parametrize("parts,shape", [
    (_PRETRAINED + ("sst2.npy",), (100, 768)),
    (_PRETRAINED + ("mrpc.npy",), (100, 768)),
    (_PRETRAINED + ("rte.npy",), (100, 768)),
    (_TEST_DATA + ("prompt_5x256.npy",), (5, 256)),
])
def test_released_google_prompts_load(parts, shape):
  path = fixture_path(*parts)
  table = np.zeros((4, shape[1]), np.float32)
  a = FromFileInit(str(path))(jax.random.PRNGKey(0), table, shape[0])
  assert a.shape == shape and a.dtype == np.float32
  np.testing.assert_array_equal(a, np.load(path).astype(np.float32))
  assert load_prompt_file(path).dtype == np.float32  # prompt_5x256.npy is stored as float64


def test_released_prompt_for_another_model_size_raises():
  path = fixture_path(*_PRETRAINED, "sst2.npy")
  for init, table in [(FromFileInit(str(path), expected_embed=512), np.zeros((4, 768), np.float32)),
                      (FromFileInit(str(path)), np.zeros((4, 512), np.float32))]:
    with pytest.raises(PromptError) as excinfo:
      init(jax.random.PRNGKey(0), table, 100)
    _assert_one_line_error(excinfo, path, 768, 512)


def test_weighted_combination_is_the_weighted_mean(emb, prompt_file):
  path, p0 = prompt_file
  rng = np.random.default_rng(3)
  p1, p2 = (rng.normal(size=(P, E)).astype(np.float32) for _ in range(2))
  a = WeightedCombinationInit((str(path), p1, p2), (0.5, 0.2, 0.3))(jax.random.PRNGKey(0), emb, P)
  np.testing.assert_allclose(a, (0.5 * p0 + 0.2 * p1 + 0.3 * p2) / 1.0, rtol=1e-5, atol=1e-6)
  b = WeightedCombinationInit((p0, p1), (2.0, 6.0))(jax.random.PRNGKey(0), emb, P)
  np.testing.assert_allclose(b, 0.25 * p0 + 0.75 * p1, rtol=1e-5, atol=1e-6)


def test_weighted_combination_with_a_zero_weight_is_the_other_prompt(emb, prompt_file):
  _, p0 = prompt_file
  p1 = np.ones((P, E), np.float32)
  a = WeightedCombinationInit((p0, p1), (1, 0))(jax.random.PRNGKey(0), emb, P)
  np.testing.assert_array_equal(a, p0)  # 1 * p0 + 0 * p1 is p0 exactly in IEEE arithmetic


@pytest.mark.parametrize("prompts,weights,needle", [
    (((P, E), (P + 1, E)), (1.0, 1.0), P + 1),  # mismatched rows
    (((P, E), (P, E + 1)), (1.0, 1.0), E + 1),  # mismatched width
    (((P, E), (P, E)), (1.0, -0.5), "non-negative"),
    (((P, E), (P, E)), (0.0, 0.0), "positive sum"),
    (((P, E), (P, E)), (1.0,), "weights"),
    ((), (), "at least one"),
])
def test_weighted_combination_errors(emb, prompts, weights, needle):
  arrays = tuple(np.zeros(shape, np.float32) for shape in prompts)
  with pytest.raises(PromptError) as excinfo:
    WeightedCombinationInit(arrays, weights)(jax.random.PRNGKey(0), emb, P)
  _assert_one_line_error(excinfo, needle)
