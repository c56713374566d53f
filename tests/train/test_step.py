"""The train step differentiates the prompt only; the frozen model is never touched."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spot_jax.model import get_config, init_params, param_shapes
from spot_jax.train.optim import adafactor
from spot_jax.train.state import TrainState
from spot_jax.train.step import cross_entropy, jit_train_step, train_step

CONFIG = get_config("t5_1_1_test")
P = 5  # no frozen parameter has a dimension of 5, so a [5, E] array can only be the prompt


def _batch(seed=0, batch=4, in_len=7, out_len=3):
  rng = np.random.RandomState(seed)
  targets = rng.randint(2, CONFIG.vocab_size, (batch, out_len)).astype(np.int32)
  targets[:, -1] = 1
  return {"encoder_input_tokens": rng.randint(2, CONFIG.vocab_size, (batch, in_len)).astype(np.int32),
          "decoder_target_tokens": targets,
          "decoder_input_tokens": np.pad(targets, ((0, 0), (1, 0)))[:, :-1],
          "decoder_loss_weights": np.ones_like(targets, np.float32)}


def _state(optimizer):
  prompt = jax.random.normal(jax.random.PRNGKey(1), (P, CONFIG.emb_dim))
  return TrainState.create({"prompt": prompt}, optimizer, seed=0)


def test_no_gradient_of_a_frozen_weight_is_computed():
  optimizer = adafactor()
  frozen = init_params(CONFIG, 0)
  jaxpr = jax.make_jaxpr(lambda s, f, b: train_step(s, f, b, config=CONFIG, optimizer=optimizer))(
      _state(optimizer), frozen, _batch())
  frozen_shapes = {s for s in param_shapes(CONFIG).values() if len(s) == 2}
  produced = set()

  def walk(jaxpr):  # every equation, including those inside jit / scan / cond sub-jaxprs
    for eqn in jaxpr.eqns:
      produced.update(tuple(getattr(v.aval, "shape", ())) for v in eqn.outvars)
      for value in eqn.params.values():
        for sub in value if isinstance(value, (list, tuple)) else [value]:
          if hasattr(sub, "eqns"):
            walk(sub)
          elif hasattr(getattr(sub, "jaxpr", None), "eqns"):
            walk(sub.jaxpr)

  walk(jaxpr.jaxpr)
  # A gradient w.r.t. a kernel would be an array of that kernel's shape; none is ever produced,
  # while the prompt's gradient ([P, E]) is.
  assert not (produced & frozen_shapes), sorted(produced & frozen_shapes)
  assert (P, CONFIG.emb_dim) in produced


def test_optimizer_state_exists_only_for_the_prompt():
  state = _state(adafactor())
  shapes = {tuple(np.shape(x)) for x in jax.tree.leaves(state.opt_state)}
  assert shapes <= {(), (1,), (P,), (CONFIG.emb_dim,), (P, CONFIG.emb_dim)}, shapes
  assert sum(np.size(x) for x in jax.tree.leaves(state.opt_state)) <= 3 * P * CONFIG.emb_dim


def test_only_the_prompt_changes_and_frozen_stays_bit_identical():
  optimizer = adafactor()
  frozen = init_params(CONFIG, 0)
  before = jax.tree.map(np.array, frozen)
  state = _state(optimizer)
  prompt_before = np.array(state.trainable["prompt"])
  step = jit_train_step(CONFIG, optimizer)
  for i in range(3):
    state, metrics = step(state, frozen, _batch(i))
  assert int(state.step) == 3 and np.isfinite(float(metrics["loss"]))
  assert np.abs(np.asarray(state.trainable["prompt"]) - prompt_before).max() > 1e-4
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, frozen), before)


def test_cross_entropy_matches_numpy_reference():
  rng = np.random.RandomState(0)
  logits = rng.randn(2, 3, 7).astype(np.float32) * 3
  targets = rng.randint(0, 7, (2, 3))
  weights = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
  loss, metrics = cross_entropy(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(weights),
                                z_loss=1e-2)
  log_z = np.log(np.exp(logits.astype(np.float64)).sum(-1))
  nll = log_z - np.take_along_axis(logits, targets[..., None], -1)[..., 0]
  expected = ((nll + 1e-2 * log_z**2) * weights).sum() / weights.sum()
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  assert float(metrics["num_tokens"]) == 3


@pytest.mark.parametrize("seed", [0, 1])
def test_dropout_makes_steps_depend_on_the_rng(seed):
  optimizer = adafactor()
  frozen = init_params(CONFIG, 0)
  step = jit_train_step(CONFIG, optimizer)
  a, _ = step(_state(optimizer), frozen, _batch())
  b, _ = step(_state(optimizer).replace(rng=jax.random.PRNGKey(seed + 7)), frozen, _batch())
  assert np.abs(np.asarray(a.trainable["prompt"]) - np.asarray(b.trainable["prompt"])).max() > 0
