"""Prompt tuning: state, jitted step, optimizers, partitioning, checkpoints, validation, exports,
and the training loop (`trainer.train`)."""
