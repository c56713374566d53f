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

Multi-process runs (spot_jax.train.distributed): the global batch at step s is defined without
reference to the number of processes. Every process builds the same whole shuffled stream, batches
it at the global batch size, and keeps the rows its devices hold (`process_rows`), which
make_array_from_process_local_data reassembles into exactly the batch a single process would feed.
(seqio's ShardInfo would instead split the dataset by example index and shuffle each shard on its
own, so the examples forming batch s would change with the process count, and with them the loss
curve.) The cost: each process reads, tokenizes and shuffles the whole stream and drops the rows of
the others, i.e. input work grows with the process count; for prompt tuning, where a step is a
frozen T5's forward and backward pass, that work is small beside the model's.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Optional

import jax
import numpy as np

from spot_jax.data import packing
from spot_jax.validation import check_split, resolve_task

Batch = dict[str, np.ndarray]


def host_shard_info():
  """This process's shard by example index (for per-host reading that need not match a
  single-process run; training uses the whole stream on every process, see the docstring)."""
  import seqio
  return seqio.ShardInfo(index=jax.process_index(), num_shards=jax.process_count())


def whole_dataset():
  import seqio
  return seqio.ShardInfo(index=0, num_shards=1)


def process_rows(sharding, global_batch_size: int) -> Optional[np.ndarray]:
  """Indices of the global batch rows this process's devices hold under `sharding` (the batch
  sharding of the mesh), in the order make_array_from_process_local_data expects them (ascending,
  each row once); None when they are all of them (a single-process run). The batch must split
  over the sharding (validation.check_divides, checked with the run's settings)."""
  blocks = {(index[0].start or 0, global_batch_size if index[0].stop is None else index[0].stop)
            for index in sharding.addressable_devices_indices_map((global_batch_size,)).values()}
  rows = np.unique(np.concatenate([np.arange(a, b) for a, b in sorted(blocks)]))
  return None if len(rows) == global_batch_size else rows


def converted_dataset(task_name: str, *, split: str, feature_lengths: Mapping[str, int],
                      shuffle: bool, seed: Optional[int], num_epochs: Optional[int],
                      pack: bool = False, prompt_length: int = 0,
                      pack_lengths: Optional[Mapping[str, int]] = None):
  """tf.data.Dataset of unbatched model features of the whole split, the same on every process;
  `pack`: packed rows with `prompt_length` prompt slots in front of every example, rows of
  `pack_lengths` or the default rule (spot_jax.data.packing)."""
  import seqio
  task = resolve_task(task_name)
  check_split(task, split, setting="split")
  ds = task.get_dataset(dict(feature_lengths), split=split, shuffle=shuffle, seed=seed,
                        num_epochs=num_epochs, shard_info=whole_dataset(), use_cached=False)
  if pack:
    return packing.pack(ds, feature_lengths, prompt_length, pack_lengths)
  return seqio.EncDecFeatureConverter(pack=False)(ds, dict(feature_lengths))


def train_batches(task_name: str, *, split: str, feature_lengths: Mapping[str, int],
                  global_batch_size: int, seed: int, start_step: int = 0, pack: bool = False,
                  prompt_length: int = 0,
                  pack_lengths: Optional[Mapping[str, int]] = None,
                  rows: Optional[np.ndarray] = None) -> Iterator[Batch]:
  """Endless, shuffled, deterministic batches, starting after `start_step` batches; with `pack`, a
  batch is `global_batch_size` packed rows (several examples each). `rows` (`process_rows`): only
  these rows of each global batch, this process's share; None: all of them."""
  ds = converted_dataset(task_name, split=split, feature_lengths=feature_lengths, shuffle=True,
                         seed=seed, num_epochs=None, pack=pack, prompt_length=prompt_length,
                         pack_lengths=pack_lengths)
  ds = ds.batch(global_batch_size, drop_remainder=True).skip(start_step)
  if rows is not None:
    import tensorflow as tf
    keep = tf.constant(np.asarray(rows, np.int64))
    ds = ds.map(lambda batch: {k: tf.gather(v, keep) for k, v in batch.items()})
  return ds.prefetch(2).as_numpy_iterator()
