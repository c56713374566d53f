"""Our T5 equals HF transformers' T5ForConditionalGeneration to 1e-4 in float32."""

import jax.numpy as jnp
import numpy as np
import pytest

from hf_reference import hf_logits, make_hf_model, random_batch, to_ours
from spot_jax.model import T5


@pytest.mark.parametrize("version", ["1.1", "1.0"])
@pytest.mark.parametrize("with_prefix", [False, True])
def test_logits_match_hf(version, with_prefix):
  hf = make_hf_model(version)
  config, params = to_ours(hf)
  assert config.logits_via_embedding == (version == "1.0")
  assert config.is_gated == (version == "1.1")
  inputs, decoder_inputs = random_batch(config.vocab_size)
  prefix = None
  if with_prefix:
    prefix = np.random.RandomState(1).randn(inputs.shape[0], 7, config.emb_dim).astype(np.float32)
  ours = T5(config).apply({"params": params}, jnp.asarray(inputs), jnp.asarray(decoder_inputs),
                          peft=None if prefix is None else {"prompt": jnp.asarray(prefix)})
  ref = hf_logits(hf, inputs, decoder_inputs, prefix)
  assert ours.shape == ref.shape == decoder_inputs.shape + (config.vocab_size,)
  np.testing.assert_allclose(np.asarray(ours), ref, atol=1e-4, rtol=0)


def test_unbatched_prefix_equals_broadcast_prefix():
  hf = make_hf_model("1.1")
  config, params = to_ours(hf)
  inputs, decoder_inputs = random_batch(config.vocab_size)
  prefix = np.random.RandomState(2).randn(5, config.emb_dim).astype(np.float32)
  model = T5(config)
  a = model.apply({"params": params}, inputs, decoder_inputs, peft={"prompt": jnp.asarray(prefix)})
  b = model.apply({"params": params}, inputs, decoder_inputs,
                  peft={"prompt": jnp.broadcast_to(prefix, (inputs.shape[0],) + prefix.shape)})
  # The model broadcasts an unbatched prefix first, then runs the same ops: equal bit for bit.
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # The prefix really changes the output, and the encoder output includes its positions.
  c = model.apply({"params": params}, inputs, decoder_inputs)
  assert np.abs(np.asarray(a) - np.asarray(c)).max() > 1e-3
  encoded, mask = model.apply({"params": params}, inputs, peft={"prompt": jnp.asarray(prefix)},
                              method=T5.encode)
  assert encoded.shape == (inputs.shape[0], 5 + inputs.shape[1], config.emb_dim)
  np.testing.assert_array_equal(np.asarray(mask[:, :5]), True)
  np.testing.assert_array_equal(np.asarray(mask[:, 5:]), inputs > 0)


def test_prefix_of_wrong_width_is_refused():
  hf = make_hf_model("1.1")
  config, params = to_ours(hf)
  inputs, decoder_inputs = random_batch(config.vocab_size)
  with pytest.raises(ValueError, match=r"prompt of shape \(4, 7\)"):
    T5(config).apply({"params": params}, inputs, decoder_inputs, peft={"prompt": jnp.zeros((4, 7))})
