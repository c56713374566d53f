"""Prompt-aware packing: several examples per training row, each with its own prompt in front.

Prompt tuning prepends the soft prompt [P, E] to a row's inputs, so a packed row of k examples
needs k copies, one in front of each example. The data side makes room for them: before seqio's
packing feature converter, every example's "inputs" get P placeholder tokens (PLACEHOLDER_ID,
nonzero, so seqio counts them as content) in front. seqio then packs greedily and emits
encoder_segment_ids / encoder_positions / decoder_segment_ids / decoder_positions, and shifts the
targets per segment (each segment's decoder input starts with BOS 0). Positions 0..P-1 of every
segment are its prompt slots; the model (spot_jax.model.t5, `segments`) writes prompt[position]
over their embeddings and keeps attention inside segments.

Row lengths (`packed_lengths`): encoder row = P + inputs length, so the longest allowed example
still fits one row exactly as unpacked; decoder row = targets length x (the most examples an
encoder row can hold, (P + L_in) // (P + 1), as every example has at least EOS), so the decoder row
never ends a row before the encoder row is full. Example (SPoT, P = 100, inputs 512, targets 8):
rows of 612 encoder and 48 decoder tokens, up to 6 examples each. `row_lengths` overrides them
(e.g. a shorter decoder row when targets are much shorter than their feature length, or longer
encoder rows for fuller packing), as long as the longest allowed example still fits.

Packing is a deterministic function of the example order (greedy, in order), so the packed
training stream is still a pure function of (task, split, lengths, batch, seed, step).
"""

from __future__ import annotations

from typing import Mapping, Optional

from spot_jax.data.autograph import autograph_converts_seqio_utils
from spot_jax.errors import ConfigError

PLACEHOLDER_ID = 1  # any nonzero id: the model replaces these embeddings by the prompt


def max_examples_per_row(inputs_length: int, prompt_length: int) -> int:
  """Most examples an encoder row of P + inputs_length holds (each is >= P slots + EOS)."""
  return max(1, (prompt_length + inputs_length) // (prompt_length + 1))


def packed_lengths(feature_lengths: Mapping[str, int], prompt_length: int,
                   row_lengths: Optional[Mapping[str, int]] = None) -> dict[str, int]:
  """Packed row lengths of seqio's "inputs" / "targets" for task lengths `feature_lengths`: the
  rule in the module docstring, or `row_lengths` checked to hold the longest allowed example."""
  inputs, targets = feature_lengths["inputs"], feature_lengths["targets"]
  if row_lengths is None:
    return {"inputs": prompt_length + inputs,
            "targets": targets * max_examples_per_row(inputs, prompt_length)}
  rows = {"inputs": int(row_lengths["inputs"]), "targets": int(row_lengths["targets"])}
  if rows["inputs"] < prompt_length + inputs or rows["targets"] < targets:
    raise ConfigError(f"packed row lengths {rows} cut examples of {dict(feature_lengths)} with a "
                      f"{prompt_length}-token prompt; set pack_lengths to at least "
                      f"{{'inputs': {prompt_length + inputs}, 'targets': {targets}}}")
  return rows


def add_prompt_slots(ds, prompt_length: int):
  """tf.data: P placeholder tokens in front of every example's (already trimmed) "inputs"."""
  import tensorflow as tf

  def add(ex):
    slots = tf.fill([prompt_length], tf.constant(PLACEHOLDER_ID, ex["inputs"].dtype))
    return {**ex, "inputs": tf.concat([slots, ex["inputs"]], axis=0)}

  return ds.map(add, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def pack(ds, feature_lengths: Mapping[str, int], prompt_length: int,
         row_lengths: Optional[Mapping[str, int]] = None):
  """A task's tokenized, trimmed examples -> packed model features with per-segment prompt slots."""
  import seqio
  lengths = packed_lengths(feature_lengths, prompt_length, row_lengths)
  ds = add_prompt_slots(ds, prompt_length)
  converter = seqio.EncDecFeatureConverter(pack=True)
  with autograph_converts_seqio_utils():
    return converter(ds, lengths)
