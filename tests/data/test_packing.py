"""Prompt-aware packing: a packed row gives every example exactly its unpacked loss and gradient.

Tolerance: the packed and unpacked runs do the same float32 arithmetic per example except that
sums (attention softmax denominators, matmuls over keys) run over rows of different lengths, whose
extra terms are exactly zero (masked) but change the summation order; that moves results by a few
float32 ulps per operation (~1e-7 relative), so rtol 1e-5 on losses near 6 nats leaves room for
2 layers x several ops and nothing more. A prompt-gradient entry is a sum of terms of both signs, so
its rounding error scales with the gradient's size, not with the entry: atol = 1e-5 x max |grad|.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seqio
import tensorflow as tf

from spot_jax.data import packing
from spot_jax.data.pipeline import train_batches
from spot_jax.errors import ConfigError
from spot_jax.model import get_config, param_shapes
from spot_jax.model.params import unflatten
from spot_jax.model.t5 import SEGMENT_FEATURES, T5
from spot_jax.train.step import loss_fn

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import toy_task  # noqa: E402

CONFIG = get_config("t5_1_1_test")
P = 4
RTOL = 1e-5
# Three examples of different input and target lengths (EOS = 1 last); 3 x P + 5 + 9 + 14 = 40.
EXAMPLES = [([5, 6, 7, 8, 1], [9, 1]),
            ([11, 12, 13, 14, 15, 16, 17, 18, 1], [19, 20, 1]),
            ([21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 1], [34, 1])]
LENGTHS = {"inputs": 36, "targets": 3}


def _dataset():
  def gen():
    for inputs, targets in EXAMPLES:
      yield {"inputs": np.array(inputs, np.int32), "targets": np.array(targets, np.int32)}
  spec = tf.TensorSpec([None], tf.int32)
  return tf.data.Dataset.from_generator(gen, output_signature={"inputs": spec, "targets": spec})


def _batches(prompt_length):
  """(unpacked batch of the 3 examples, packed batch of their one row) as numpy dicts."""
  unpacked = seqio.EncDecFeatureConverter(pack=False)(_dataset(), LENGTHS)
  packed = packing.pack(_dataset(), LENGTHS, prompt_length)
  rows = list(packed.as_numpy_iterator())
  assert len(rows) == 1, "the three examples must share one packed row"
  stack = lambda ds: {k: np.stack([r[k] for r in ds]) for k in ds[0]}  # noqa: E731
  return stack(list(unpacked.as_numpy_iterator())), stack(rows)


def _token_losses(params, peft, batch):
  segments = ({k: batch[k] for k in SEGMENT_FEATURES} if SEGMENT_FEATURES[0] in batch else None)
  logits = T5(CONFIG).apply({"params": params}, batch["encoder_input_tokens"],
                            batch["decoder_input_tokens"], peft=peft, segments=segments)
  log_z = jax.nn.logsumexp(logits, axis=-1)
  target = jnp.take_along_axis(logits, batch["decoder_target_tokens"][..., None], axis=-1)[..., 0]
  return (log_z - target) * batch["decoder_loss_weights"]  # [B, T]


@jax.jit
def _losses_and_grad(peft, params, batch):
  """Token losses [B, T] and the gradient of their sum with respect to the peft tree."""
  def total(tree):
    tokens = _token_losses(params, tree, batch)
    return tokens.sum(), tokens
  (_, tokens), grad = jax.value_and_grad(total, has_aux=True)(peft)
  return tokens, grad


def _per_example(tokens, batch):
  """Sum of each example's target-token losses: per row unpacked, per segment packed."""
  if SEGMENT_FEATURES[0] not in batch:
    return np.asarray(tokens).sum(axis=1)
  ids = batch["decoder_segment_ids"][0]
  return np.array([np.asarray(tokens)[0][ids == s].sum() for s in range(1, len(EXAMPLES) + 1)])


def _peft(kind, rng):
  if kind == "prompt":
    return {"prompt": 0.5 * jax.random.normal(rng, (P, CONFIG.emb_dim))}
  shape = (CONFIG.num_encoder_layers, 3, CONFIG.num_heads, CONFIG.head_dim)
  keys = jax.random.split(rng, 6)
  return {"prefix": {g: {"key": jax.random.normal(keys[2 * i], shape),
                         "value": jax.random.normal(keys[2 * i + 1], shape)}
                     for i, g in enumerate(("encoder", "decoder", "cross"))}}


@pytest.fixture(scope="module")
def params():
  """Random frozen weights of CONFIG's shapes (numpy: no compiled initialiser, the test is faster);
  kernels scaled by 1/sqrt(fan_in) so activations stay O(1) as with the real initialiser."""
  rng = np.random.RandomState(0)
  return unflatten({name: (rng.randn(*shape) / (np.sqrt(shape[0]) if "kernel" in name else 1.0)
                           ).astype(np.float32)
                    for name, shape in param_shapes(CONFIG).items()})


def test_packed_row_layout():
  _, packed = _batches(P)
  ids, pos = packed["encoder_segment_ids"][0], packed["encoder_positions"][0]
  assert sorted(set(ids) - {0}) == [1, 2, 3]
  for s, (inputs, _) in enumerate(EXAMPLES, start=1):
    row = packed["encoder_input_tokens"][0][ids == s]
    np.testing.assert_array_equal(row, [packing.PLACEHOLDER_ID] * P + inputs)
    np.testing.assert_array_equal(pos[ids == s], np.arange(P + len(inputs)))
  # seqio restarts the shifted decoder inputs at every segment: BOS 0 first.
  dec_ids = packed["decoder_segment_ids"][0]
  for s in (1, 2, 3):
    assert packed["decoder_input_tokens"][0][dec_ids == s][0] == 0


def test_packed_prompt_losses_and_gradient_equal_the_unpacked_examples(params):
  """Per-example losses match; the packed prompt gradient is the sum of the examples' gradients
  (the unpacked batch's gradient of the summed loss); the train step's loss_fn reads the packing
  features and gives the token mean of the same losses."""
  unpacked, packed = _batches(P)
  peft = _peft("prompt", jax.random.PRNGKey(1))
  tokens_u, grad_u = _losses_and_grad(peft, params, unpacked)
  tokens_p, grad_p = _losses_and_grad(peft, params, packed)
  want, got = _per_example(tokens_u, unpacked), _per_example(tokens_p, packed)
  assert want.shape == (3,) and np.all(want > 1.0)
  assert len(set(np.round(want, 3))) == 3  # different examples, different losses
  np.testing.assert_allclose(got, want, rtol=RTOL)
  scale = float(jnp.abs(grad_u["prompt"]).max())
  assert scale > 1e-3
  np.testing.assert_allclose(np.asarray(grad_p["prompt"]), np.asarray(grad_u["prompt"]),
                             rtol=RTOL, atol=RTOL * scale)
  mean = jax.jit(lambda t, b: loss_fn(t, params, b, jax.random.PRNGKey(0), config=CONFIG,
                                      deterministic=True)[0])(peft, packed)
  np.testing.assert_allclose(float(mean), want.sum() / unpacked["decoder_loss_weights"].sum(),
                             rtol=RTOL)


def test_packed_prefix_losses_equal_the_unpacked_examples(params):
  """Prefix tuning needs no prompt slots; the segment masks alone keep the examples apart."""
  unpacked, packed = _batches(0)
  peft = _peft("prefix", jax.random.PRNGKey(2))
  forward = jax.jit(_token_losses)
  want = _per_example(forward(params, peft, unpacked), unpacked)
  got = _per_example(forward(params, peft, packed), packed)
  assert len(set(np.round(want, 3))) == 3
  np.testing.assert_allclose(got, want, rtol=RTOL)


def test_packed_lengths_rule_and_override():
  # SPoT: prompt 100, inputs 512, targets 8 -> up to 612 // 101 = 6 examples a row
  assert packing.packed_lengths({"inputs": 512, "targets": 8}, 100) == {"inputs": 612, "targets": 48}
  lengths = {"inputs": 80, "targets": 8}
  assert packing.packed_lengths(lengths, 20, {"inputs": 200, "targets": 12}) == {
      "inputs": 200, "targets": 12}
  with pytest.raises(ConfigError, match="at least"):
    packing.packed_lengths(lengths, 20, {"inputs": 99, "targets": 12})  # cuts an 80-token input


def test_packed_pipeline_from_a_seqio_task():
  lengths = {"inputs": 48, "targets": 4}  # toy inputs are 7-12 bytes + EOS
  batches = train_batches(toy_task.TASK, split="train", feature_lengths=lengths,
                          global_batch_size=2, seed=0, pack=True, prompt_length=P)
  first, second = next(batches), next(batches)
  assert first["encoder_input_tokens"].shape == (2, P + 48)
  assert first["decoder_target_tokens"].shape == (2, 4 * packing.max_examples_per_row(48, P))
  for row in range(2):
    ids, pos = first["encoder_segment_ids"][row], first["encoder_positions"][row]
    tokens = first["encoder_input_tokens"][row]
    segments = sorted(set(ids) - {0})
    assert len(segments) >= 3
    assert set(first["decoder_segment_ids"][row]) - {0} == set(segments)
    for s in segments:
      np.testing.assert_array_equal(tokens[ids == s][:P], [packing.PLACEHOLDER_ID] * P)
      np.testing.assert_array_equal(pos[ids == s][:P], np.arange(P))
      assert tokens[ids == s][P] != packing.PLACEHOLDER_ID  # the example's own first byte
  # resume: starting after one batch gives exactly the second batch
  resumed = next(train_batches(toy_task.TASK, split="train", feature_lengths=lengths,
                               global_batch_size=2, seed=0, start_step=1, pack=True,
                               prompt_length=P))
  for k in second:
    np.testing.assert_array_equal(resumed[k], second[k])
