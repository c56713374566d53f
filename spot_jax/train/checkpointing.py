"""Training checkpoints with orbax: atomic commits, a keep policy, and resume.

Resume order (implemented in `restore_or_init` and `trainer.train`):
  1. build the abstract TrainState (shapes only) from the prompt and optimizer;
  2. if MODEL_DIR/checkpoints has a committed step, restore step, prompt, optimizer state and rng;
  3. restart the input stream after `step` batches (spot_jax.data.pipeline.train_batches);
  4. restore the best validation score so far from the exported source prompt's sidecar.

Multi-process runs: every process calls save and restore together; orbax writes each process's
shards and lets its primary process alone write the metadata and commit the step. A restore lays
the values out as `initial` is laid out, so a checkpoint saved on one mesh (say data 8 x model 1)
restores on another (data 2 x model 2, another process count): the target's shardings come from
the new run's `initial`, not from the checkpoint.
"""

from __future__ import annotations

from typing import Optional

import jax
import orbax.checkpoint as ocp
from etils import epath

from spot_jax.io import absolute
from spot_jax.train.distributed import to_host
from spot_jax.train.state import TrainState


class Checkpointer:
  def __init__(self, directory: str | epath.PathLike, *, keep: Optional[int] = 3):
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=False)
    self.manager = ocp.CheckpointManager(absolute(directory), options=options)

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def save(self, state: TrainState) -> None:
    step = int(to_host(state.step))
    if step not in self.manager.all_steps():
      self.manager.save(step, args=ocp.args.StandardSave(state))
      self.manager.wait_until_finished()

  def restore_or_init(self, initial: TrainState) -> tuple[TrainState, bool]:
    """(state, resumed): the latest committed checkpoint, else `initial`."""
    step = self.latest_step()
    if step is None:
      return initial, False
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, initial)  # keeps each sharding
    return self.manager.restore(step, args=ocp.args.StandardRestore(abstract)), True

  def close(self) -> None:
    self.manager.close()


def export_checkpoint_prompt(model_dir: str | epath.PathLike, output: str | epath.PathLike, *,
                             step: Optional[int] = None) -> epath.Path:
  """Writes the prompt of a training checkpoint (default: the latest) as .npy + .json sidecar."""
  from spot_jax.errors import SpotError
  from spot_jax.train.exports import run_info, write_prompt
  directory = absolute(model_dir) / "checkpoints"
  if not directory.exists():
    raise SpotError(f"{model_dir} has no checkpoints/ directory; pass the MODEL_DIR of a train run")
  manager = ocp.CheckpointManager(directory, item_handlers=ocp.StandardCheckpointHandler())
  try:
    steps = manager.all_steps()
    step = manager.latest_step() if step is None else step
    if step not in steps:
      raise SpotError(f"no checkpoint at step {step} in {directory}; it has steps {sorted(steps)}")
    # Onto this process's first device, whatever mesh (device or process count) saved it.
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          manager.item_metadata(step))
    prompt = manager.restore(step, args=ocp.args.StandardRestore(target))["trainable"]["prompt"]
  finally:
    manager.close()
  record = {**run_info(model_dir), "kind": "checkpoint_prompt", "model_dir": str(model_dir),
            "step": int(step)}
  return write_prompt(output, prompt, record)
