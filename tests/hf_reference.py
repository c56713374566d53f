"""Tiny HF transformers T5 models with random weights, as numerical references (test-only)."""

from __future__ import annotations

import numpy as np
import torch
from transformers import T5Config as HFConfig
from transformers import T5ForConditionalGeneration

from spot_jax.checkpoints.hf import from_hf_config, from_hf_state_dict

# Encoder and decoder depths differ and heads * d_kv (3 * 6) != d_model (16) on purpose.
SHAPES = dict(vocab_size=64, d_model=16, d_kv=6, d_ff=24, num_layers=3, num_decoder_layers=2,
              num_heads=3, relative_attention_num_buckets=8, relative_attention_max_distance=20,
              dropout_rate=0.0)


def make_hf_model(version: str, seed: int = 0, **overrides) -> T5ForConditionalGeneration:
  """T5 1.1 (gated-GELU, untied lm_head) or T5 1.0 (ReLU, tied with d_model**-0.5 rescale)."""
  untied = version == "1.1"
  config = HFConfig(**{**SHAPES, **overrides}, feed_forward_proj="gated-gelu" if untied else "relu",
                    tie_word_embeddings=not untied, decoder_start_token_id=0, pad_token_id=0,
                    eos_token_id=1)
  torch.manual_seed(seed)
  model = T5ForConditionalGeneration(config).eval()
  if untied:
    # transformers>=5 ties lm_head to the input embedding whatever the config says; untie by hand
    # so the untied path (separate logits_dense, no rescale) is really compared.
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.shared.weight) * 2.0)
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()
  return model


def to_ours(model: T5ForConditionalGeneration):
  """(our config, our params) holding the same weights as the HF model."""
  hf_dict = model.config.to_dict()
  if hasattr(model.config, "scale_decoder_outputs"):
    hf_dict["scale_decoder_outputs"] = model.config.scale_decoder_outputs
  config = from_hf_config(hf_dict)
  state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
  return config, from_hf_state_dict(state, config)


def hf_logits(model, input_ids: np.ndarray, decoder_input_ids: np.ndarray,
              prefix: np.ndarray | None = None) -> np.ndarray:
  """HF logits; a prefix [B, P, E] goes in through inputs_embeds with a ones attention mask."""
  with torch.no_grad():
    ids = torch.tensor(input_ids)
    embeds = model.shared(ids)
    mask = (ids > 0).long()
    if prefix is not None:
      p = torch.tensor(prefix)
      embeds = torch.cat([p, embeds], dim=1)
      mask = torch.cat([torch.ones(p.shape[:2], dtype=torch.long), mask], dim=1)
    out = model(inputs_embeds=embeds, attention_mask=mask,
                decoder_input_ids=torch.tensor(decoder_input_ids))
  return out.logits.numpy()


def random_batch(vocab: int, seed: int = 0, batch: int = 3, in_len: int = 30, out_len: int = 12):
  """Inputs with padding in the batch and teacher-forcing decoder inputs starting with 0."""
  rng = np.random.RandomState(seed)
  inputs = rng.randint(2, vocab, (batch, in_len)).astype(np.int32)
  inputs[1, in_len * 2 // 3:] = 0
  inputs[-1, 5:] = 0
  decoder_inputs = rng.randint(2, vocab, (batch, out_len)).astype(np.int32)
  decoder_inputs[:, 0] = 0
  return inputs, decoder_inputs
