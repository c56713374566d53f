"""Meta-learning the trainable tree across tasks: MAML (second order), FOMAML and Reptile.

The CrossFit study's "maml" upstream (seed paper §4.3 Algorithm 1, after Gheini et al. 2022 and
CrossFit's run_maml.py) meta-trains only the trainable tree (prompt, prefix, adapters, or the whole
model) on a frozen backbone: per task, one inner SGD step on a support batch (CrossFit: the task's
train split) gives θ' = θ − β∇L_support(θ); the outer loss is the query loss (the task's dev split)
at θ', and the outer optimizer (CrossFit: AdamW) steps θ along the meta-gradient.

- "maml": ∇_θ L_query(θ'(θ)), differentiated through the inner steps (second order: a Hessian-
  vector product per inner step). CrossFit's run_maml.py does this (`higher` with its default
  track_higher_grads=True).
- "fomaml": ∇_θ' L_query(θ') used as θ's gradient (the inner step's Jacobian taken as identity).
- "reptile": θ − θ'_k after k inner steps on the support batch only (the query batch is only
  evaluated for the logged metric); an outer optax.sgd(ε) then gives θ + ε(θ'_k − θ). CrossFit's
  run_reptile.py takes its k steps on k successive batches of the task; here every step reuses the
  one support batch (pass a larger support batch, or stack support and query before calling, for
  more data per step).

Everything here is a pure function of its arguments; `loss_fn(trainable, batch) -> (loss, metrics)`
is a closure with the frozen model bound and no rng (meta-training runs deterministically: dropout
would make the inner and outer losses see different networks).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from spot_jax.errors import SpotError
from spot_jax.train.state import TrainState

Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]
LossFn = Callable[[Any, Batch], tuple[jax.Array, Metrics]]

ALGORITHMS = ("maml", "fomaml", "reptile")


class MetaError(SpotError):
  """An unknown meta-learning algorithm or an inner-loop setting that cannot run."""


def check_inner_steps(inner_steps: int) -> None:
  """Raises MetaError unless `inner_steps` is a Python int >= 1 (it unrolls the inner loop)."""
  if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 1:
    raise MetaError(f"inner_steps must be an integer >= 1, got {inner_steps!r}")


def check(algorithm: str, inner_steps: int) -> None:
  """Raises MetaError unless `algorithm` is one of ALGORITHMS and `inner_steps` an int >= 1."""
  if algorithm not in ALGORITHMS:
    raise MetaError(f"unknown meta-learning algorithm {algorithm!r}: choose one of "
                    f"{', '.join(ALGORITHMS)}")
  check_inner_steps(inner_steps)


def sgd_step(trainable: Any, grads: Any, lr: float) -> Any:
  """θ − lr·g leafwise, keeping each leaf's dtype (a float32 prompt stays float32)."""
  return jax.tree.map(lambda p, g: (p - lr * g).astype(p.dtype), trainable, grads)


def adapt_with_loss(loss_fn: LossFn, trainable: Any, support_batch: Batch, *, inner_lr: float,
                    inner_steps: int = 1) -> tuple[Any, jax.Array]:
  """(θ' after `inner_steps` SGD steps on `support_batch`, the support loss at θ before them)."""
  check_inner_steps(inner_steps)
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  first_loss = None
  for _ in range(inner_steps):  # unrolled: the step count is static and small (CrossFit: 1)
    (loss, _), grads = grad_fn(trainable, support_batch)
    first_loss = loss if first_loss is None else first_loss
    trainable = sgd_step(trainable, grads, inner_lr)
  return trainable, first_loss


def adapt(loss_fn: LossFn, trainable: Any, support_batch: Batch, *, inner_lr: float,
          inner_steps: int = 1) -> Any:
  """θ' = θ − β∇L_support(θ), `inner_steps` times on the same batch; differentiable in θ (MAML
  differentiates through it)."""
  return adapt_with_loss(loss_fn, trainable, support_batch, inner_lr=inner_lr,
                         inner_steps=inner_steps)[0]


def task_meta_gradient(loss_fn: LossFn, trainable: Any, support: Batch, query: Batch, *,
                       inner_lr: float, algorithm: str = "maml",
                       inner_steps: int = 1) -> tuple[Any, Metrics]:
  """One task's meta-gradient (a tree shaped like `trainable`) and its metrics.

  metrics: "support_loss" (at θ, before adapting) and "query_loss" (at θ', after adapting; for
  Reptile evaluated only for the log, it plays no part in the gradient).
  """
  check(algorithm, inner_steps)
  kwargs = dict(inner_lr=inner_lr, inner_steps=inner_steps)

  if algorithm == "maml":
    def outer(theta):
      adapted, support_loss = adapt_with_loss(loss_fn, theta, support, **kwargs)
      query_loss, _ = loss_fn(adapted, query)
      return query_loss, support_loss

    (query_loss, support_loss), grads = jax.value_and_grad(outer, has_aux=True)(trainable)
  else:
    adapted, support_loss = adapt_with_loss(loss_fn, jax.lax.stop_gradient(trainable), support,
                                            **kwargs)
    if algorithm == "fomaml":
      (query_loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(adapted, query)
    else:  # reptile: the outer "gradient" is the displacement θ − θ'_k
      query_loss, _ = loss_fn(adapted, query)
      grads = jax.tree.map(jnp.subtract, trainable, adapted)
  return grads, {"support_loss": support_loss, "query_loss": query_loss}


def meta_gradient(loss_fn: LossFn, trainable: Any, supports: Batch, queries: Batch, *,
                  inner_lr: float, algorithm: str = "maml",
                  inner_steps: int = 1) -> tuple[Any, Metrics]:
  """The meta-batch's gradient: the mean over M tasks of `task_meta_gradient`.

  `supports`/`queries` hold M tasks' batches stacked on a leading task axis ([M, B, ...]); tasks
  run under jax.vmap. The seed's Algorithm 1 (line 15) sums over tasks, and CrossFit's gradient
  accumulation sums too; the mean is that sum over M, a rescaling that the outer lr absorbs and
  that AdamW (CrossFit's outer optimizer) and gradient clipping followed by Adam ignore except for
  Adam's epsilon. The mean keeps the gradient's size independent of M. Metrics are task means.
  """
  def one_task(support, query):
    return task_meta_gradient(loss_fn, trainable, support, query, inner_lr=inner_lr,
                              algorithm=algorithm, inner_steps=inner_steps)

  grads, metrics = jax.vmap(one_task)(supports, queries)
  mean = lambda x: jnp.mean(x, axis=0)
  return jax.tree.map(mean, grads), jax.tree.map(mean, metrics)


def meta_train_step(state: TrainState, supports: Batch, queries: Batch, *, loss_fn: LossFn,
                    optimizer: optax.GradientTransformation, inner_lr: float,
                    algorithm: str = "maml", inner_steps: int = 1) -> tuple[TrainState, Metrics]:
  """One outer step: the meta-batch's gradient through `optimizer`, step + 1; rng untouched.

  Jittable once loss_fn, optimizer, algorithm, inner_steps (and inner_lr, or pass it traced) are
  bound with functools.partial. metrics: the task-mean "support_loss" and "query_loss", and
  "grad_norm" of the meta-gradient.
  """
  grads, metrics = meta_gradient(loss_fn, state.trainable, supports, queries, inner_lr=inner_lr,
                                 algorithm=algorithm, inner_steps=inner_steps)
  metrics = {**metrics, "grad_norm": optax.global_norm(grads)}
  return state.apply_gradients(grads, optimizer), metrics


@dataclasses.dataclass(frozen=True)
class MetaConfig:
  """The upstream meta-learning hyperparameters.

  CrossFit (Ye et al. 2021, run_maml.py) meta-trains second-order MAML with one inner SGD step per
  task: support = the task's train split, query = its dev split, outer optimizer AdamW (weight
  decay 0.01, gradient-norm clip 0.1, linear warmup and decay). `inner_batch_size` is the examples
  in each support and query batch; `meta_batch_size` the tasks per outer step.
  """
  algorithm: str = "maml"
  inner_lr: float = 1e-4  # β
  outer_lr: float = 1e-4  # α
  inner_batch_size: int = 4
  meta_batch_size: int = 1
  inner_steps: int = 1

  def __post_init__(self):
    check(self.algorithm, self.inner_steps)
    for name in ("inner_batch_size", "meta_batch_size"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MetaError(f"MetaConfig.{name} must be an integer >= 1, got {value!r}")
    for name in ("inner_lr", "outer_lr"):
      if not getattr(self, name) > 0:
        raise MetaError(f"MetaConfig.{name} must be > 0, got {getattr(self, name)!r}")
