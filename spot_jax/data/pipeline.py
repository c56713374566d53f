"""seqio task or mixture -> model features -> per-host numpy batches.

The training stream is a pure function of (task, split, lengths, batch size, seed, step): resuming at
step s skips exactly the s batches already consumed, so an interrupted run sees the same examples as
an uninterrupted one. Every example gets its own copy of the soft prompt in front of its inputs:
unpacked (the default), the model prepends it to each row, so the encoder sees P + inputs_length
positions; packed (`pack=True`, training only), several examples share a row and the data holds P
prompt slots in front of each (spot_jax.data.packing).

Feature row (EncDecFeatureConverter, unpacked), for inputs "rte ... " and target "entailment":
  encoder_input_tokens  [T_in]   e.g. [3, 17, 9, ..., 1, 0, 0]
  decoder_target_tokens [T_out]  e.g. [25, 1, 0, 0]
  decoder_input_tokens  [T_out]  e.g. [0, 25, 1, 0]   (targets shifted right)
  decoder_loss_weights  [T_out]  e.g. [1, 1, 0, 0]
"""

from __future__ import annotations

from typing import Iterator, Mapping, Optional

import jax
import numpy as np

from spot_jax.data import packing
from spot_jax.data.autograph import skip_seqio_autograph
from spot_jax.errors import SpotError

Batch = dict[str, np.ndarray]


def get_task(name: str):
  import seqio
  skip_seqio_autograph()
  try:
    return seqio.get_mixture_or_task(name)
  except ValueError:
    raise SpotError(f"no seqio task or mixture named {name!r}; list them with `spot-jax tasks` "
                    "or check MIXTURE_OR_TASK_MODULE") from None


def host_shard_info():
  import seqio
  return seqio.ShardInfo(index=jax.process_index(), num_shards=jax.process_count())


def converted_dataset(task_name: str, *, split: str, feature_lengths: Mapping[str, int],
                      shuffle: bool, seed: Optional[int], num_epochs: Optional[int],
                      pack: bool = False, prompt_length: int = 0,
                      pack_lengths: Optional[Mapping[str, int]] = None):
  """tf.data.Dataset of unbatched model features of this host's shard; `pack`: packed rows with
  `prompt_length` prompt slots in front of every example, rows of `pack_lengths` or the default
  rule (spot_jax.data.packing)."""
  import seqio
  task = get_task(task_name)
  if split not in task.splits:
    raise SpotError(f"task {task_name!r} has no split {split!r}; it has {sorted(task.splits)}")
  ds = task.get_dataset(dict(feature_lengths), split=split, shuffle=shuffle, seed=seed,
                        num_epochs=num_epochs, shard_info=host_shard_info(), use_cached=False)
  if pack:
    return packing.pack(ds, feature_lengths, prompt_length, pack_lengths)
  return seqio.EncDecFeatureConverter(pack=False)(ds, dict(feature_lengths))


def train_batches(task_name: str, *, split: str, feature_lengths: Mapping[str, int],
                  global_batch_size: int, seed: int, start_step: int = 0, pack: bool = False,
                  prompt_length: int = 0,
                  pack_lengths: Optional[Mapping[str, int]] = None) -> Iterator[Batch]:
  """Endless, shuffled, deterministic batches for this host, starting after `start_step` batches;
  with `pack`, a batch is `global_batch_size` packed rows (several examples each)."""
  hosts = jax.process_count()
  if global_batch_size % hosts:
    raise SpotError(f"batch size {global_batch_size} is not divisible by {hosts} hosts")
  ds = converted_dataset(task_name, split=split, feature_lengths=feature_lengths, shuffle=True,
                         seed=seed, num_epochs=None, pack=pack, prompt_length=prompt_length,
                         pack_lengths=pack_lengths)
  ds = ds.batch(global_batch_size // hosts, drop_remainder=True).skip(start_step).prefetch(2)
  return ds.as_numpy_iterator()
