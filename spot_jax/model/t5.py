"""The frozen T5 encoder-decoder, with t5x parameter names.

Parameter tree (t5x layout): token_embedder/embedding; encoder/{relpos_bias, layers_i/{
pre_attention_layer_norm, attention/{query,key,value,out}, pre_mlp_layer_norm, mlp/{wi|wi_0,wi_1,wo}},
encoder_norm}; decoder/{relpos_bias, layers_i/{pre_self_attention_layer_norm, self_attention,
pre_cross_attention_layer_norm, encoder_decoder_attention, pre_mlp_layer_norm, mlp}, decoder_norm,
logits_dense (untied models only)}.

Parameter-efficient tuning enters as arguments, never as mutable state: `peft`, a tree of arrays
(spot_jax.peft.trees builds it from a run's trainable tree) with any of
  prompt    [P, E] or [B, P, E]: prepended to the embedded encoder inputs before dropout (prompt
            tuning); the attention mask is extended with ones, so the decoder attends to it too;
  prefix    {"encoder" | "decoder" | "cross": {"key", "value": [L, P, H, D]}}: per-layer keys and
            values in front of encoder self-, decoder self- and cross-attention (prefix tuning);
  adapters  {"encoder" | "decoder": {"attention" | "mlp": {"down" [L, E, M], "down_bias" [L, M],
            "up" [L, M, E], "up_bias" [L, E]}}}: Houlsby adapters after each layer's (self-)attention
            and MLP.

Packing (several examples per row, spot_jax.data.packing) enters as `segments`, seqio's packed
features {"encoder_segment_ids", "encoder_positions", "decoder_segment_ids"} (each [B, T], segment 0
= padding). With them, attention stays inside a segment: encoder self-attention and cross-attention
need equal nonzero segments, decoder self-attention is causal within a segment. The relative
position bias stays the row's global table: inside a segment global offsets equal the example's own
offsets, and pairs across segments are masked. The prompt is not prepended: the data already holds
P placeholder slots in front of every example's inputs (encoder_positions 0..P-1), and the
embedding at each slot is replaced by prompt[position]. Without `segments` nothing changes.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from spot_jax.model.config import T5Config
from spot_jax.model.layers import (Dense, Embed, MlpBlock, MultiHeadAttention, RelativePositionBias,
                                   RMSNorm, adapter, mask_to_bias, remat_layer, residual_dropout)

Array = jax.Array
Peft = Optional[dict[str, Any]]  # the tree described in the module docstring
KV = Optional[tuple[Array, Array]]
# {"self": [{"key": [B, L, H, D], "value": [B, L, H, D]}] * layers, "cross": [(k, v) [B, S, H, D]] * layers}
Cache = dict[str, Any]
# seqio's packed features the model reads (spot_jax.data.packing makes them); each [B, T] int32.
SEGMENT_FEATURES = ("encoder_segment_ids", "encoder_positions", "decoder_segment_ids")
Segments = Optional[dict[str, Array]]


class EncoderLayer(nn.Module):
  config: T5Config

  def setup(self):
    cfg = self.config
    self.pre_attention_layer_norm = RMSNorm(cfg)
    self.attention = MultiHeadAttention(cfg)
    self.pre_mlp_layer_norm = RMSNorm(cfg)
    self.mlp = MlpBlock(cfg)
    self.dropout = residual_dropout(cfg)

  def __call__(self, x: Array, biases: tuple[Array, ...], deterministic: bool, *,
               prefix_kv: KV = None, adapters: Optional[dict] = None) -> Array:
    # [B, T, E] -> [B, T, E]
    adapters = adapters or {}
    h = self.pre_attention_layer_norm(x)
    h = self.attention(h, biases, inputs_kv=h, prefix_kv=prefix_kv, deterministic=deterministic)
    x = x + self.dropout(adapter(h, adapters.get("attention")), deterministic=deterministic)
    h = self.mlp(self.pre_mlp_layer_norm(x), deterministic=deterministic)
    return x + self.dropout(adapter(h, adapters.get("mlp")), deterministic=deterministic)


def layer_prefix(peft: Peft, group: str, i: int) -> KV:
  """Layer i's prefix keys and values of `group` (encoder, decoder or cross), or None."""
  prefix = (peft or {}).get("prefix") or {}
  return (prefix[group]["key"][i], prefix[group]["value"][i]) if group in prefix else None


def layer_adapters(peft: Peft, stack: str, i: int) -> Optional[dict]:
  """Layer i's adapters of `stack` (encoder or decoder), or None."""
  tree = ((peft or {}).get("adapters") or {}).get(stack)
  return None if tree is None else jax.tree.map(lambda a: a[i], tree)


class Encoder(nn.Module):
  config: T5Config
  embedder: Embed

  def setup(self):
    cfg = self.config
    self.relpos_bias = RelativePositionBias(cfg, bidirectional=True)
    layer_cls = remat_layer(EncoderLayer, cfg.remat_policy, static_argnums=(3,))  # deterministic
    self.layers = [layer_cls(cfg) for _ in range(cfg.num_encoder_layers)]  # layers_0, ...
    self.encoder_norm = RMSNorm(cfg)
    self.dropout = residual_dropout(cfg)

  def __call__(self, input_tokens: Array, peft: Peft = None, deterministic: bool = True,
               segments: Segments = None) -> tuple[Array, Array]:
    """[B, T] tokens (0 = padding), prompt [B, P, E] or [P, E] -> ([B, P+T, E], mask [B, P+T]);
    packed (`segments`): the prompt fills each segment's slots -> ([B, T, E], mask [B, T])."""
    x = self.embedder(input_tokens)  # [B, T, E]
    prompt = (peft or {}).get("prompt")
    if segments is None:
      mask = input_tokens > 0
      if prompt is not None:
        x, mask = prepend_prompt(x, mask, prompt)
      mask_bias = mask_to_bias(mask[:, None, None, :])  # [B, 1, 1, S]
    else:
      ids = segments["encoder_segment_ids"]
      mask = ids > 0
      if prompt is not None:
        x = place_prompt(x, ids, segments["encoder_positions"], prompt)
      mask_bias = mask_to_bias(same_segment(ids, ids))  # [B, 1, T, S]
    x = self.dropout(x, deterministic=deterministic)
    length = x.shape[1]
    biases = (self.relpos_bias(length, length), mask_bias)
    for i, layer in enumerate(self.layers):
      x = layer(x, biases, deterministic, prefix_kv=layer_prefix(peft, "encoder", i),
                adapters=layer_adapters(peft, "encoder", i))
    return self.dropout(self.encoder_norm(x), deterministic=deterministic), mask


def prepend_prompt(x: Array, mask: Array, prompt: Array) -> tuple[Array, Array]:
  """Prepends prompt [B, P, E] or [P, E] to x [B, T, E]; mask [B, T] gets P leading ones."""
  batch, _, emb = x.shape
  fits = prompt.shape[-1] == emb and (prompt.ndim == 2 or (prompt.ndim == 3 and prompt.shape[0] == batch))
  if not fits:
    raise ValueError(f"prompt of shape {prompt.shape} does not fit embedded inputs {x.shape}; "
                     f"expected [{batch}, P, {emb}] or [P, {emb}]")
  if prompt.ndim == 2:
    prompt = jnp.broadcast_to(prompt[None], (batch,) + prompt.shape)
  x = jnp.concatenate([prompt.astype(x.dtype), x], axis=1)  # [B, P+T, E]
  mask = jnp.concatenate([jnp.ones(prompt.shape[:2], bool), mask], axis=1)  # [B, P+T]
  return x, mask


def place_prompt(x: Array, segment_ids: Array, positions: Array, prompt: Array) -> Array:
  """Packed rows x [B, T, E]: the slot at position p < P of every segment becomes prompt[p].

  prompt [P, E] or [B, P, E]; a gather, so the prompt's gradient sums over every segment's copy.
  """
  length = prompt.shape[-2]
  slot = (segment_ids > 0) & (positions < length)  # [B, T]
  index = jnp.clip(positions, 0, length - 1)
  if prompt.ndim == 2:
    placed = jnp.take(prompt, index, axis=0)  # [B, T, E]
  else:
    placed = jnp.take_along_axis(prompt, index[..., None], axis=1)
  return jnp.where(slot[..., None], placed.astype(x.dtype), x)


def same_segment(query_ids: Array, key_ids: Array) -> Array:
  """[B, T] and [B, S] segment ids -> bool [B, 1, T, S]: same segment, padding (0) attends nowhere."""
  return ((query_ids[:, :, None] == key_ids[:, None, :]) & (query_ids[:, :, None] > 0))[:, None]


class DecoderLayer(nn.Module):
  config: T5Config

  def setup(self):
    cfg = self.config
    self.pre_self_attention_layer_norm = RMSNorm(cfg)
    self.self_attention = MultiHeadAttention(cfg)
    self.pre_cross_attention_layer_norm = RMSNorm(cfg)
    self.encoder_decoder_attention = MultiHeadAttention(cfg)
    self.pre_mlp_layer_norm = RMSNorm(cfg)
    self.mlp = MlpBlock(cfg)
    self.dropout = residual_dropout(cfg)

  def __call__(self, y: Array, self_biases: tuple[Array, ...], cross_biases: tuple[Array, ...],
               deterministic: bool = True, *, encoded: Optional[Array],
               cross_kv: Optional[tuple[Array, Array]] = None, cache: Optional[dict] = None,
               cache_index: Optional[Array] = None,
               self_prefix: KV = None, cross_prefix: KV = None, adapters: Optional[dict] = None):
    """[B, T, E] -> ([B, T, E], updated self-attention cache or None). `deterministic` is
    positional: under remat (T5Config.remat_policy) it must be a static argument."""
    adapters = adapters or {}
    h = self.pre_self_attention_layer_norm(y)
    if cache is None:
      h = self.self_attention(h, self_biases, inputs_kv=h, prefix_kv=self_prefix,
                              deterministic=deterministic)
    else:  # incremental decoding: write this step's key/value at cache_index, attend to all.
      k_new, v_new = self.self_attention.project_kv(h)  # [B, 1, H, D]
      start = (0, cache_index, 0, 0)
      cache = {"key": jax.lax.dynamic_update_slice(cache["key"], k_new.astype(cache["key"].dtype), start),
               "value": jax.lax.dynamic_update_slice(cache["value"], v_new.astype(cache["value"].dtype),
                                                     start)}
      h = self.self_attention(h, self_biases, kv=(cache["key"], cache["value"]),
                              prefix_kv=self_prefix, deterministic=deterministic)
    y = y + self.dropout(adapter(h, adapters.get("attention")), deterministic=deterministic)
    h = self.encoder_decoder_attention(self.pre_cross_attention_layer_norm(y), cross_biases,
                                       inputs_kv=encoded, kv=cross_kv, prefix_kv=cross_prefix,
                                       deterministic=deterministic)
    y = y + self.dropout(h, deterministic=deterministic)
    h = self.mlp(self.pre_mlp_layer_norm(y), deterministic=deterministic)
    return y + self.dropout(adapter(h, adapters.get("mlp")), deterministic=deterministic), cache


class Decoder(nn.Module):
  config: T5Config
  embedder: Embed

  def setup(self):
    cfg = self.config
    self.relpos_bias = RelativePositionBias(cfg, bidirectional=False)
    layer_cls = remat_layer(DecoderLayer, cfg.remat_policy, static_argnums=(4,))  # deterministic
    self.layers = [layer_cls(cfg) for _ in range(cfg.num_decoder_layers)]
    self.decoder_norm = RMSNorm(cfg)
    self.dropout = residual_dropout(cfg)
    if not cfg.logits_via_embedding:
      self.logits_dense = Dense(cfg, cfg.vocab_size, ("embed", "vocab"), out_dtype="float32")

  def __call__(self, decoder_input_tokens: Array, encoded: Optional[Array], encoder_mask: Array, *,
               cache: Optional[Cache] = None, cache_index: Optional[Array] = None,
               peft: Peft = None, deterministic: bool = True,
               segments: Segments = None) -> tuple[Array, Optional[Cache]]:
    """Tokens [B, T] -> float32 logits [B, T, V] (and the updated cache when decoding)."""
    cfg = self.config
    y = self.dropout(self.embedder(decoder_input_tokens), deterministic=deterministic)  # [B, T, E]
    if segments is None:
      cross_biases = (mask_to_bias(encoder_mask[:, None, None, :]),)  # [B, 1, 1, S]
    else:
      dec_ids = segments["decoder_segment_ids"]
      cross_biases = (mask_to_bias(same_segment(dec_ids, segments["encoder_segment_ids"])),)
    if cache is None:
      length = y.shape[1]
      causal = np.tril(np.ones((length, length), bool))
      if segments is None:
        self_mask = mask_to_bias(causal)[None, None]  # [1, 1, T, T]
      else:
        self_mask = mask_to_bias(same_segment(dec_ids, dec_ids) & causal)  # [B, 1, T, T]
      self_biases = (self.relpos_bias(length, length), self_mask)  # + [1, H, T, T]
      caches = [None] * cfg.num_decoder_layers
      cross = [None] * cfg.num_decoder_layers
    else:
      max_len = cache["self"][0]["key"].shape[1]
      visible = jnp.arange(max_len) <= cache_index  # [L]
      self_biases = (self.relpos_bias(max_len, max_len, query_offset=cache_index, query_len=1),
                     mask_to_bias(visible)[None, None, None, :])  # [1, H, 1, L]
      caches, cross = cache["self"], cache["cross"]
    new_caches = []
    for i, (layer, layer_cache, layer_cross) in enumerate(zip(self.layers, caches, cross)):
      y, layer_cache = layer(y, self_biases, cross_biases, deterministic, encoded=encoded,
                             cross_kv=layer_cross, cache=layer_cache, cache_index=cache_index,
                             self_prefix=layer_prefix(peft, "decoder", i),
                             cross_prefix=layer_prefix(peft, "cross", i),
                             adapters=layer_adapters(peft, "decoder", i))
      new_caches.append(layer_cache)
    y = self.dropout(self.decoder_norm(y), deterministic=deterministic)
    if cfg.logits_via_embedding:
      logits = self.embedder.attend(y) / np.sqrt(cfg.emb_dim)  # T5 1.0 rescale
    else:
      logits = self.logits_dense(y)
    new_cache = None if cache is None else {"self": new_caches, "cross": cross}
    return logits, new_cache


class T5(nn.Module):
  """Encoder-decoder; methods are used with `model.apply(..., method=T5.encode)` etc."""
  config: T5Config

  def setup(self):
    self.token_embedder = Embed(self.config)
    self.encoder = Encoder(self.config, embedder=self.token_embedder)
    self.decoder = Decoder(self.config, embedder=self.token_embedder)

  def encode(self, input_tokens: Array, *, peft: Peft = None, deterministic: bool = True,
             segments: Segments = None) -> tuple[Array, Array]:
    return self.encoder(input_tokens, peft, deterministic, segments)

  def decode(self, encoded: Array, encoder_mask: Array, decoder_input_tokens: Array, *,
             peft: Peft = None, deterministic: bool = True, segments: Segments = None) -> Array:
    return self.decoder(decoder_input_tokens, encoded, encoder_mask, peft=peft,
                        deterministic=deterministic, segments=segments)[0]

  def __call__(self, input_tokens: Array, decoder_input_tokens: Array, *,
               peft: Peft = None, deterministic: bool = True, segments: Segments = None) -> Array:
    """Teacher-forced logits [B, T_dec, V] (float32); `segments` for packed rows (module doc)."""
    encoded, mask = self.encode(input_tokens, peft=peft, deterministic=deterministic,
                                segments=segments)
    return self.decode(encoded, mask, decoder_input_tokens, peft=peft, deterministic=deterministic,
                       segments=segments)

  def init_cache(self, encoded: Array, max_decode_len: int) -> Cache:
    """Empty self-attention cache for `max_decode_len` steps and the cross-attention keys/values."""
    cfg = self.config
    batch = encoded.shape[0]
    shape = (batch, max_decode_len, cfg.num_heads, cfg.head_dim)
    zeros = jnp.zeros(shape, jnp.dtype(cfg.dtype))
    return {"self": [{"key": zeros, "value": zeros} for _ in range(cfg.num_decoder_layers)],
            "cross": [layer.encoder_decoder_attention.project_kv(encoded)
                      for layer in self.decoder.layers]}

  def decode_step(self, encoder_mask: Array, tokens: Array, cache: Cache, cache_index: Array, *,
                  peft: Peft = None) -> tuple[Array, Cache]:
    """One decoding step: tokens [B, 1] at position `cache_index` -> (logits [B, V], cache)."""
    logits, cache = self.decoder(tokens, None, encoder_mask, cache=cache, cache_index=cache_index,
                                 peft=peft)
    return logits[:, 0], cache
