"""K runs in one vmapped step end exactly where each run ends alone (dropout on, so each run's own
rng matters), with their own learning rates, seeds and batches."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from spot_jax.model import get_config, init_params
from spot_jax.peft import trees
from spot_jax.train import multi
from spot_jax.train.state import TrainState
from spot_jax.train.step import eval_loss, jit_train_step

CONFIG = get_config("t5_1_1_test")  # dropout_rate 0.1
assert CONFIG.dropout_rate > 0
OPTIMIZER = optax.inject_hyperparams(optax.adamw)(learning_rate=1.0, weight_decay=0.0)
STEPS = 3
ATOL = 1e-5  # float32: vmapped matmuls may sum in another order than unbatched ones
ALONE_STEP = jit_train_step(CONFIG, OPTIMIZER)  # compiled once per trainable shape, for every test
MULTI_STEP = multi.jit_multi_train_step(CONFIG, OPTIMIZER)
# Per method, rates in (or near) the CrossFit presets' range (spot_jax/embedded/protocol.py): Adam
# turns tiny float32 differences of near-zero gradients into differences of order lr * 1e-3.
RATES = {"prompt": (0.1, 0.03, 0.01, 0.2), "adapter": (1e-3, 3e-4, 2e-3, 5e-4)}


def _batch(task, step, batch=4, in_len=7, out_len=3):
  """A batch of a toy "task": each task draws its tokens from its own range, so runs really see
  different data."""
  rng = np.random.RandomState(1000 * task + step)
  low = 2 + 50 * task
  targets = rng.randint(low, low + 50, (batch, out_len)).astype(np.int32)
  targets[:, -1] = 1
  return {"encoder_input_tokens": rng.randint(low, low + 50, (batch, in_len)).astype(np.int32),
          "decoder_target_tokens": targets,
          "decoder_input_tokens": np.pad(targets, ((0, 0), (1, 0)))[:, :-1],
          "decoder_loss_weights": np.ones_like(targets, np.float32)}


@pytest.fixture(scope="module")
def frozen():
  return init_params(CONFIG, 0)


def _alone(trainable, frozen, *, seed, lr, task):
  """The run on its own, with the single-run jitted step."""
  step = ALONE_STEP
  trainable = jax.tree.map(lambda x: jnp.array(x, copy=True), trainable)  # the step donates it
  state = multi.with_learning_rate(TrainState.create(trainable, OPTIMIZER, seed), lr)
  for i in range(STEPS):
    state, _ = step(state, frozen, _batch(task, i))
  return state


def _together(trainables, frozen, *, seeds, lrs, tasks):
  step = MULTI_STEP
  states = multi.create_states(trainables, OPTIMIZER, seeds=seeds, learning_rates=lrs)
  for i in range(STEPS):
    batches = multi.stack([_batch(t, i) for t in tasks])
    states, metrics = step(states, frozen, batches)
    assert metrics["loss"].shape == (len(tasks),)
  return states


def _max_diff(a, b):
  return max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("method", [trees.Method("prompt", prompt_length=5),
                                    trees.Method("adapter", bottleneck=4)], ids=lambda m: m.name)
def test_each_of_k_runs_ends_where_it_ends_alone(frozen, method):
  seeds, lrs, tasks = (0, 1, 2, 3), RATES[method.name], (0, 1, 2, 3)
  inits = [trees.init_trainable(method, CONFIG, frozen, jax.random.PRNGKey(10 + k)) for k in range(4)]
  states = _together(inits, frozen, seeds=seeds, lrs=lrs, tasks=tasks)
  assert multi.num_runs(states) == 4
  for k in range(4):
    alone = _alone(inits[k], frozen, seed=seeds[k], lr=lrs[k], task=tasks[k])
    run = multi.unstack(states, k)
    assert int(run.step) == STEPS
    assert _max_diff(run.trainable, alone.trainable) <= ATOL, (k, _max_diff(run.trainable,
                                                                            alone.trainable))
    assert _max_diff(run.trainable, inits[k]) > 10 * ATOL  # it trained: the match is no accident
    np.testing.assert_array_equal(np.asarray(run.rng), np.asarray(alone.rng))
    np.testing.assert_allclose(float(run.opt_state.hyperparams["learning_rate"]), lrs[k], rtol=1e-7)


def test_runs_do_not_share_their_rng_or_learning_rate(frozen):
  """Runs start alike and differ only in the seed (0 vs 1, 2 vs 3) or only in the learning rate
  (0 vs 2, 1 vs 3); if the step shared either between runs, a pair would end alike."""
  init = trees.init_trainable(trees.Method("prompt", prompt_length=5), CONFIG, frozen,
                              jax.random.PRNGKey(0))
  seeds, lrs = (0, 7, 0, 7), (0.1, 0.1, 0.02, 0.02)
  states = _together([init] * 4, frozen, seeds=seeds, lrs=lrs, tasks=(0, 0, 0, 0))
  runs = [multi.unstack(states, k).trainable for k in range(4)]
  for a, b in ((0, 1), (2, 3)):  # dropout masks of another seed
    assert _max_diff(runs[a], runs[b]) > 100 * ATOL
  for a, b in ((0, 2), (1, 3)):  # another step size
    assert _max_diff(runs[a], runs[b]) > 100 * ATOL
  for k in range(4):
    alone = _alone(init, frozen, seed=seeds[k], lr=lrs[k], task=0)
    assert _max_diff(runs[k], alone.trainable) <= ATOL


def test_eval_of_k_trees_matches_one_at_a_time(frozen):
  prompts = [trees.init_trainable(trees.Method("prompt", prompt_length=5), CONFIG, frozen,
                                  jax.random.PRNGKey(k)) for k in range(3)]
  batches = multi.stack([_batch(k, 0) for k in range(3)])
  stacked = multi.stack(prompts)
  vmapped = jax.jit(lambda t, f, b: multi.multi_eval_loss(t, f, b, config=CONFIG))(
      stacked, frozen, batches)
  flat = jax.jit(lambda p, f, b: multi.prompt_eval_loss(p, f, b, config=CONFIG))(
      stacked["prompt"], frozen, batches)
  shared = jax.jit(lambda t, f, b: multi.multi_eval_loss(t, f, b, config=CONFIG,
                                                         shared_batch=True))(
      stacked, frozen, _batch(0, 0))
  alone = jax.jit(lambda t, f, b: eval_loss(t, f, b, config=CONFIG))
  for k in range(3):
    own = alone(prompts[k], frozen, _batch(k, 0))["loss"]
    np.testing.assert_allclose(float(vmapped["loss"][k]), float(own), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(flat["loss"][k]), float(own), rtol=1e-5, atol=1e-6)
    on_shared = alone(prompts[k], frozen, _batch(0, 0))["loss"]
    np.testing.assert_allclose(float(shared["loss"][k]), float(on_shared), rtol=1e-5, atol=1e-6)
  assert float(jnp.std(vmapped["loss"])) > 1e-3  # three different losses, not one broadcast


def test_unstackable_runs_and_rate_less_optimizers_are_one_line_errors(frozen):
  short, long = ({"prompt": jnp.zeros((n, CONFIG.emb_dim))} for n in (3, 4))
  with pytest.raises(multi.MultiRunError, match="one method and shape"):
    multi.stack([short, long])
  with pytest.raises(multi.MultiRunError, match="at least one"):
    multi.stack([])
  with pytest.raises(multi.MultiRunError, match="inject_hyperparams"):
    multi.create_states([short], optax.adamw(0.1), seeds=[0], learning_rates=[0.1])
  with pytest.raises(multi.MultiRunError, match="one of each per run"):
    multi.create_states([short, short], OPTIMIZER, seeds=[0], learning_rates=[0.1, 0.1])


def test_runs_per_step_follows_the_measured_table():
  for batch, k in multi.MEASURED_RUNS_PER_STEP.items():
    assert multi.runs_per_step(batch) == k
    assert multi.runs_per_step(batch, max_runs=1) == 1
  assert multi.runs_per_step(4) == 4 and multi.runs_per_step(32) == 1  # where it pays, and not
  assert multi.runs_per_step(1) == multi.MAX_RUNS
  assert multi.runs_per_step(16) == 1 and multi.runs_per_step(1000) == 1
  assert multi.runs_per_step(4, max_runs=3) == 3
  with pytest.raises(multi.MultiRunError, match=">= 1"):
    multi.runs_per_step(0)
