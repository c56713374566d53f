"""Training state: everything that changes during training, and nothing that does not.

The frozen model parameters are not part of the state: they are a separate, never-differentiated
argument of the step, so no optimizer state exists for them and checkpoints hold only what trains.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

Trainable = dict[str, Any]  # {"prompt": [P, E]} or another method's tree (spot_jax.peft.trees)


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar
  trainable: Trainable
  opt_state: optax.OptState
  rng: jax.Array  # dropout key; split once per step

  def apply_gradients(self, grads: Any, optimizer: optax.GradientTransformation) -> "TrainState":
    """One optimizer update of the trainable tree with `grads`; step + 1, rng untouched."""
    updates, opt_state = optimizer.update(grads, self.opt_state, self.trainable)
    return self.replace(step=self.step + 1, trainable=optax.apply_updates(self.trainable, updates),
                        opt_state=opt_state)

  @classmethod
  def create(cls, trainable: Trainable, optimizer: optax.GradientTransformation,
             seed: int) -> "TrainState":
    return cls(step=jnp.int32(0), trainable=trainable, opt_state=optimizer.init(trainable),
               rng=jax.random.PRNGKey(seed))


def abstract_state(trainable: Trainable, optimizer: optax.GradientTransformation) -> Any:
  """Shapes and dtypes of a TrainState, for restoring checkpoints without allocating."""
  return jax.eval_shape(lambda t: TrainState.create(t, optimizer, 0), trainable)
