"""The memory knobs of large runs (docs/scale.md): rematerialisation changes no number, bfloat16
frozen weights change the loss only by bfloat16 round-off."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spot_jax.errors import ConfigError
from spot_jax.model import decoding, get_config, init_params
from spot_jax.model.params import cast_params, flatten
from spot_jax.train.step import loss_fn

CONFIG = get_config("t5_1_1_test")
P = 5


def _batch(seed=0, batch=4, in_len=7, out_len=3):
  rng = np.random.RandomState(seed)
  targets = rng.randint(2, CONFIG.vocab_size, (batch, out_len)).astype(np.int32)
  return {"encoder_input_tokens": rng.randint(2, CONFIG.vocab_size, (batch, in_len)).astype(np.int32),
          "decoder_target_tokens": targets,
          "decoder_input_tokens": np.pad(targets, ((0, 0), (1, 0)))[:, :-1],
          "decoder_loss_weights": np.ones_like(targets, np.float32)}


def _loss_and_grad(config, frozen, dropout=True):
  prompt = {"prompt": jax.random.normal(jax.random.PRNGKey(1), (P, config.emb_dim))}
  fn = functools.partial(loss_fn, config=config, deterministic=not dropout)
  (loss, _), grad = jax.jit(jax.value_and_grad(fn, has_aux=True))(
      prompt, frozen, _batch(), jax.random.PRNGKey(3))
  return float(loss), np.asarray(grad["prompt"])


@pytest.mark.parametrize("policy", ["full", "dots", "dots_with_no_batch_dims"])
def test_remat_changes_neither_loss_nor_prompt_gradient(policy):
  config = CONFIG.replace(dropout_rate=0.1)  # dropout inside the rematted layers, same rng
  frozen = init_params(config, 0)
  loss, grad = _loss_and_grad(config, frozen)
  remat_loss, remat_grad = _loss_and_grad(config.replace(remat_policy=policy), frozen)
  # float32: recomputation may reorder a few sums; 1e-5 relative is far below any real change.
  np.testing.assert_allclose(remat_loss, loss, rtol=1e-5)
  np.testing.assert_allclose(remat_grad, grad, rtol=1e-5, atol=1e-6)


def test_remat_keeps_parameter_names_and_decoding():
  remat = CONFIG.replace(remat_policy="full")
  assert flatten(init_params(remat, 0)).keys() == flatten(init_params(CONFIG, 0)).keys()
  frozen = init_params(CONFIG, 0)
  tokens = _batch()["encoder_input_tokens"]
  decode = lambda c: decoding.greedy_decode(frozen, tokens, config=c, max_decode_len=4)  # noqa: E731
  np.testing.assert_array_equal(np.asarray(decode(remat)), np.asarray(decode(CONFIG)))


def test_unknown_remat_policy_is_a_config_error():
  with pytest.raises(ConfigError, match="remat_policy"):
    CONFIG.replace(remat_policy="everything")


def test_bfloat16_frozen_weights_give_nearly_the_float32_loss():
  frozen = init_params(CONFIG, 0)
  low = cast_params(frozen, "bfloat16")
  assert {x.dtype for x in jax.tree.leaves(low)} == {jnp.dtype(jnp.bfloat16)}
  loss, grad = _loss_and_grad(CONFIG, frozen, dropout=False)
  low_loss, low_grad = _loss_and_grad(CONFIG, low, dropout=False)
  assert low_grad.dtype == np.float32  # the prompt and its gradient stay float32
  # bfloat16 keeps 8 mantissa bits (relative step 2^-8 ~ 0.4%) per weight; activations stay
  # float32, so the loss (~6.2 = log 512 here) moves by well under 1%.
  np.testing.assert_allclose(low_loss, loss, rtol=1e-2)
  cosine = np.sum(low_grad * grad) / (np.linalg.norm(low_grad) * np.linalg.norm(grad))
  assert cosine > 0.99, cosine


def test_unknown_frozen_dtype_is_a_config_error():
  with pytest.raises(ConfigError, match="frozen dtype"):
    cast_params(init_params(CONFIG, 0), "int8")


def test_float32_frozen_dtype_changes_nothing():
  frozen = init_params(CONFIG, 0)
  same = cast_params(frozen, "float32")
  for a, b in zip(jax.tree.leaves(frozen), jax.tree.leaves(same)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
