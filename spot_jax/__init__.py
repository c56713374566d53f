"""spot-jax: soft prompt tuning and transfer (SPoT) on a frozen T5, in JAX/Flax."""

__version__ = "0.1.0"
