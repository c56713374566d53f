"""Tests for spot_jax.train.meta against closed forms on quadratic tasks.

Task losses L_s(θ) = ½(θ−a)ᵀA(θ−a) (support) and L_q(θ) = ½(θ−b)ᵀB(θ−b) (query) with A, B
symmetric positive definite. One inner SGD step gives θ' = θ − βA(θ−a) = a + (I−βA)(θ−a), so
  MAML:    ∇_θ L_q(θ') = (I−βA)ᵀ B(θ'−b) = (I−βA) B(θ'−b)
  FOMAML:  ∇_θ' L_q(θ') = B(θ'−b)
  Reptile: θ − θ'_k with θ'_k = a + (I−βA)^k (θ−a).
θ is a dict of two arrays ("u": 2 entries, "v": 1) so pytrees are exercised; the quadratic sees
their concatenation. Everything runs in float64 (jax.enable_x64 inside each test): the closed forms
are a few products of O(1) numbers, so round-off is ~1e-15 and atol 1e-10 leaves a wide margin,
while the terms an algebra slip would drop (e.g. βA B(θ'−b), here ~0.1) are 1e9 times larger.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from spot_jax.train import meta
from spot_jax.train.state import TrainState

ATOL = 1e-10
BETA = 0.3  # large enough that (I − βA) is far from I: MAML and FOMAML differ visibly


@pytest.fixture(autouse=True)
def x64():
  with jax.enable_x64(True):
    yield


def spd(seed: int, n: int = 3) -> np.ndarray:
  """A symmetric matrix with eigenvalues in [0.5, 2.5]."""
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
  return q @ np.diag(np.linspace(0.5, 2.5, n)) @ q.T


def flat(theta) -> jax.Array:
  return jnp.concatenate([theta["u"], theta["v"]])


def unflat(x) -> dict:
  return {"u": jnp.asarray(x[:2]), "v": jnp.asarray(x[2:])}


def quadratic_loss(theta, batch):
  d = flat(theta) - batch["center"]
  loss = 0.5 * d @ batch["matrix"] @ d
  return loss, {"loss": loss}


def task(seed: int):
  rng = np.random.default_rng(100 + seed)
  a, b = rng.normal(size=3), rng.normal(size=3)
  A, B = spd(2 * seed), spd(2 * seed + 1)
  return (a, A, b, B), {"matrix": jnp.asarray(A), "center": jnp.asarray(a)}, \
      {"matrix": jnp.asarray(B), "center": jnp.asarray(b)}


THETA = np.array([0.7, -1.2, 0.4])


def adapted(theta, a, A, k: int) -> np.ndarray:
  return a + np.linalg.matrix_power(np.eye(3) - BETA * A, k) @ (theta - a)


def expected(algorithm: str, theta, a, A, b, B, k: int = 1) -> np.ndarray:
  theta_k = adapted(theta, a, A, k)
  if algorithm == "maml":
    return np.linalg.matrix_power(np.eye(3) - BETA * A, k) @ B @ (theta_k - b)
  if algorithm == "fomaml":
    return B @ (theta_k - b)
  return theta - theta_k


def grad_of(algorithm: str, seed: int = 0, k: int = 1):
  (a, A, b, B), support, query = task(seed)
  grads, metrics = meta.task_meta_gradient(quadratic_loss, unflat(THETA), support, query,
                                           inner_lr=BETA, algorithm=algorithm, inner_steps=k)
  return grads, metrics, expected(algorithm, THETA, a, A, b, B, k)


def test_adapt_is_sgd_on_the_support_loss():
  (a, A, _, _), support, _ = task(0)
  for k in (1, 3):
    got = meta.adapt(quadratic_loss, unflat(THETA), support, inner_lr=BETA, inner_steps=k)
    np.testing.assert_allclose(flat(got), adapted(THETA, a, A, k), rtol=0, atol=ATOL)


@pytest.mark.parametrize("algorithm,k", [("maml", 1), ("maml", 2), ("fomaml", 1), ("fomaml", 2),
                                         ("reptile", 1), ("reptile", 3)])
def test_task_meta_gradient_matches_the_closed_form(algorithm, k):
  grads, metrics, want = grad_of(algorithm, k=k)
  assert set(grads) == {"u", "v"} and grads["u"].shape == (2,) and grads["v"].shape == (1,)
  np.testing.assert_allclose(flat(grads), want, rtol=0, atol=ATOL)
  (a, A, b, B), _, _ = task(0)
  theta_k = adapted(THETA, a, A, k)
  np.testing.assert_allclose(metrics["support_loss"], 0.5 * (THETA - a) @ A @ (THETA - a),
                             rtol=0, atol=ATOL)
  np.testing.assert_allclose(metrics["query_loss"], 0.5 * (theta_k - b) @ B @ (theta_k - b),
                             rtol=0, atol=ATOL)


def test_maml_is_second_order_and_differs_from_fomaml():
  maml_grads, _, _ = grad_of("maml")
  fomaml_grads, _, _ = grad_of("fomaml")
  # They differ by βA B(θ'−b); with β = 0.3 that is a sizeable fraction of the gradient itself.
  diff = float(jnp.linalg.norm(flat(maml_grads) - flat(fomaml_grads)))
  assert diff > 0.1 * float(jnp.linalg.norm(flat(fomaml_grads))) and diff > 1e-2


@pytest.mark.parametrize("algorithm", meta.ALGORITHMS)
def test_meta_gradient_is_the_mean_over_tasks(algorithm):
  tasks = [task(s) for s in (0, 1)]
  supports = jax.tree.map(lambda *x: jnp.stack(x), *[t[1] for t in tasks])
  queries = jax.tree.map(lambda *x: jnp.stack(x), *[t[2] for t in tasks])
  grads, metrics = meta.meta_gradient(quadratic_loss, unflat(THETA), supports, queries,
                                      inner_lr=BETA, algorithm=algorithm)
  want = np.mean([expected(algorithm, THETA, *t[0]) for t in tasks], axis=0)
  np.testing.assert_allclose(flat(grads), want, rtol=0, atol=ATOL)
  per_task = [grad_of(algorithm, seed=s)[1]["query_loss"] for s in (0, 1)]
  np.testing.assert_allclose(metrics["query_loss"], np.mean(per_task), rtol=0, atol=ATOL)
  # Not the sum, nor one task alone:
  assert not np.allclose(flat(grads), 2 * want, atol=1e-3)
  assert not np.allclose(flat(grads), expected(algorithm, THETA, *tasks[0][0]), atol=1e-3)


@pytest.mark.parametrize("algorithm", meta.ALGORITHMS)
def test_meta_train_step_with_sgd_steps_along_the_meta_gradient(algorithm):
  alpha = 0.05
  tasks = [task(s) for s in (0, 1)]
  supports = jax.tree.map(lambda *x: jnp.stack(x), *[t[1] for t in tasks])
  queries = jax.tree.map(lambda *x: jnp.stack(x), *[t[2] for t in tasks])
  optimizer = optax.sgd(alpha)
  state = TrainState.create(unflat(THETA), optimizer, seed=0)
  step = jax.jit(functools.partial(meta.meta_train_step, loss_fn=quadratic_loss,
                                   optimizer=optimizer, inner_lr=BETA, algorithm=algorithm))
  new_state, metrics = step(state, supports, queries)
  grad = np.mean([expected(algorithm, THETA, *t[0]) for t in tasks], axis=0)
  np.testing.assert_allclose(flat(new_state.trainable), THETA - alpha * grad, rtol=0, atol=ATOL)
  assert int(new_state.step) == 1
  np.testing.assert_array_equal(new_state.rng, state.rng)  # deterministic: no key consumed
  np.testing.assert_allclose(metrics["grad_norm"], np.linalg.norm(grad), rtol=0, atol=ATOL)
  if algorithm == "reptile":  # θ + ε(θ' − θ) with the tasks' mean θ'
    mean_adapted = np.mean([adapted(THETA, t[0][0], t[0][1], 1) for t in tasks], axis=0)
    np.testing.assert_allclose(flat(new_state.trainable), THETA + alpha * (mean_adapted - THETA),
                               rtol=0, atol=ATOL)


def test_float32_trees_stay_float32():
  with jax.enable_x64(False):
    (_, _, _, _), support, query = task(0)
    support = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), support)
    query = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), query)
    theta = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), unflat(THETA))
    grads, _ = meta.task_meta_gradient(quadratic_loss, theta, support, query, inner_lr=BETA)
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))


def test_bad_algorithm_and_inner_steps_raise():
  _, support, query = task(0)
  with pytest.raises(meta.MetaError, match="'mamal'.*maml, fomaml, reptile"):
    meta.task_meta_gradient(quadratic_loss, unflat(THETA), support, query, inner_lr=BETA,
                            algorithm="mamal")
  for steps in (0, -1, 1.5, True):
    with pytest.raises(meta.MetaError, match="inner_steps must be an integer >= 1"):
      meta.adapt(quadratic_loss, unflat(THETA), support, inner_lr=BETA, inner_steps=steps)
  with pytest.raises(meta.MetaError, match="choose one of maml, fomaml, reptile"):
    meta.MetaConfig(algorithm="sgd")
  with pytest.raises(meta.MetaError, match="meta_batch_size must be an integer >= 1"):
    meta.MetaConfig(meta_batch_size=0)
  assert issubclass(meta.MetaError, meta.SpotError)
