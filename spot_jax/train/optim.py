"""Optimizers for the trainable parameters (the prompt); SPoT's defaults are the keyword defaults.

SPoT (paper §2.1.4, footnote 7): Adafactor, constant learning rate 0.3, decoupled weight decay 1e-5,
no parameter scaling, decay rate 0.8, update clipping 1.0. optax's adafactor applies weight decay
after the learning rate (update = -(lr * adafactor_update + wd * param)), i.e. decoupled.
"""

from __future__ import annotations

from typing import Optional

import optax

from spot_jax.validation import check_finite


def adafactor(*, learning_rate: float = 0.3, weight_decay: Optional[float] = 1e-5,
              decay_rate: float = 0.8, clipping_threshold: Optional[float] = 1.0,
              multiply_by_parameter_scale: bool = False) -> optax.GradientTransformation:
  check_finite({"adafactor.learning_rate": learning_rate})
  return optax.adafactor(learning_rate=learning_rate, decay_rate=decay_rate,
                         clipping_threshold=clipping_threshold,
                         multiply_by_parameter_scale=multiply_by_parameter_scale,
                         weight_decay_rate=weight_decay or None)


def adam(*, learning_rate: float = 0.1, weight_decay: float = 0.0) -> optax.GradientTransformation:
  """AdamW; at small scale lr 0.1 trained prompts more reliably than Adafactor (docs/embedded_model.md)."""
  check_finite({"adam.learning_rate": learning_rate})
  return optax.adamw(learning_rate=learning_rate, weight_decay=weight_decay)
