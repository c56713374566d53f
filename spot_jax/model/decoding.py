"""Inference with the T5 model: greedy and beam search with a key/value cache, target scoring and
rank classification.

All functions are jitted with the model config static, take the parameter tree and token arrays
(0 = padding, 1 = EOS, decoding starts from token 0) and the optional parameter-efficient tree
`peft` the model takes (spot_jax.model.t5: a prompt [P, E] or [B, P, E], per-layer prefixes,
adapters); the KV cache holds the decoded tokens' keys and values, prefixes are prepended per step.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import flax
import jax
import jax.numpy as jnp

from spot_jax.model.config import T5Config
from spot_jax.model.t5 import T5

Array = jax.Array
Peft = Optional[dict[str, Any]]
EOS_ID = 1


def shift_right(targets: Array) -> Array:
  """Decoder inputs for teacher forcing: [B, T] targets -> [0, t_0, ..., t_{T-2}]."""
  return jnp.pad(targets, ((0, 0), (1, 0)))[:, :-1]


def _start(config: T5Config, params, input_tokens: Array, peft: Peft,
           max_decode_len: int, repeat: int = 1):
  """Encodes once, repeats each example `repeat` times (beams), builds the decoding cache."""
  model = T5(config)
  encoded, mask = model.apply({"params": params}, input_tokens, peft=peft, method=T5.encode)
  if repeat > 1:  # [B, S, E] -> [B*K, S, E], example-major
    encoded, mask = jnp.repeat(encoded, repeat, axis=0), jnp.repeat(mask, repeat, axis=0)
  cache = model.apply({"params": params}, encoded, max_decode_len, method=T5.init_cache)
  step = functools.partial(model.apply, {"params": params}, mask, method=T5.decode_step, peft=peft)
  return step, cache


@functools.partial(jax.jit, static_argnames=("config", "max_decode_len", "eos_id"))
def greedy_decode(params, input_tokens: Array, *, config: T5Config, max_decode_len: int,
                  peft: Peft = None, eos_id: int = EOS_ID) -> Array:
  """Argmax decoding: [B, T] inputs -> [B, max_decode_len] tokens, padded with 0 after EOS."""
  batch = input_tokens.shape[0]
  step, cache = _start(config, params, input_tokens, peft, max_decode_len)

  def cond(state):
    i, _, _, finished, _ = state
    return (i < max_decode_len) & ~jnp.all(finished)

  def body(state):
    i, out, last, finished, cache = state
    logits, cache = step(last[:, None], cache, i)  # [B, V]
    token = jnp.where(finished, 0, jnp.argmax(logits, axis=-1).astype(jnp.int32))
    return i + 1, out.at[:, i].set(token), token, finished | (token == eos_id), cache

  init = (jnp.int32(0), jnp.zeros((batch, max_decode_len), jnp.int32), jnp.zeros((batch,), jnp.int32),
          jnp.zeros((batch,), bool), cache)
  return jax.lax.while_loop(cond, body, init)[1]


@flax.struct.dataclass
class BeamSearchResult:
  sequences: Array  # [B, K, L] int32, best beam first, 0 after EOS
  scores: Array  # [B, K] float32 sum of token log-probabilities (EOS included), descending


@functools.partial(jax.jit, static_argnames=("config", "beam_size", "max_decode_len", "eos_id"))
def beam_search(params, input_tokens: Array, *, config: T5Config, beam_size: int,
                max_decode_len: int, peft: Peft = None,
                eos_id: int = EOS_ID) -> BeamSearchResult:
  """Beam search scored by the total log-probability of each sequence (no length penalty).

  Finished beams stay in the beam with a frozen score (they may only extend with padding at no
  cost), so the K returned beams are the K best sequences the search found, sorted by score.
  With beam_size=1 this is exactly greedy decoding.
  """
  batch, k = input_tokens.shape[0], beam_size
  step, cache = _start(config, params, input_tokens, peft, max_decode_len, repeat=k)
  neg_inf = jnp.float32(-jnp.inf)

  def body(i, state):
    seqs, scores, finished, last, cache = state
    logits, cache = step(last.reshape(-1, 1), cache, i)  # [B*K, V]
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(batch, k, -1)  # [B, K, V]
    vocab = log_probs.shape[-1]
    pad_only = jnp.full((vocab,), neg_inf).at[0].set(0.0)
    log_probs = jnp.where(finished[..., None], pad_only, log_probs)
    candidates = (scores[..., None] + log_probs).reshape(batch, k * vocab)  # [B, K*V]
    scores, flat_idx = jax.lax.top_k(candidates, k)  # [B, K], best first
    beam, token = flat_idx // vocab, (flat_idx % vocab).astype(jnp.int32)
    seqs = jnp.take_along_axis(seqs, beam[..., None], axis=1).at[:, :, i].set(token)
    finished = jnp.take_along_axis(finished, beam, axis=1) | (token == eos_id)
    rows = (jnp.arange(batch)[:, None] * k + beam).reshape(-1)  # [B*K] into the flat beam axis
    cache = {"self": jax.tree.map(lambda c: c[rows], cache["self"]), "cross": cache["cross"]}
    return seqs, scores, finished, token, cache

  # Only beam 0 is alive at the start so the K beams do not all repeat the same sequence.
  scores = jnp.tile(jnp.concatenate([jnp.zeros((1,)), jnp.full((k - 1,), neg_inf)]), (batch, 1))
  init = (jnp.zeros((batch, k, max_decode_len), jnp.int32), scores, jnp.zeros((batch, k), bool),
          jnp.zeros((batch, k), jnp.int32), cache)
  seqs, scores, *_ = jax.lax.fori_loop(0, max_decode_len, body, init)
  return BeamSearchResult(sequences=seqs, scores=scores)


@functools.partial(jax.jit, static_argnames=("config",))
def score_targets(params, input_tokens: Array, target_tokens: Array, *, config: T5Config,
                  peft: Peft = None) -> Array:
  """Log-likelihood of each target sequence: [B, T_in], [B, T_out] -> [B] (padding ignored)."""
  logits = T5(config).apply({"params": params}, input_tokens, shift_right(target_tokens), peft=peft)
  return _sum_log_likelihood(logits, target_tokens)


def _sum_log_likelihood(logits: Array, targets: Array) -> Array:
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))  # [N, T, V]
  token_ll = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]  # [N, T]
  return jnp.sum(jnp.where(targets > 0, token_ll, 0.0), axis=-1)


@functools.partial(jax.jit, static_argnames=("config",))
def rank_classification(params, input_tokens: Array, candidates: Array, *, config: T5Config,
                        peft: Peft = None) -> Array:
  """Log-likelihood of every candidate target for every input; argmax is the prediction.

  input_tokens [B, T_in]; candidates [C, T_out] (shared label words) or [B, C, T_out].
  Returns [B, C]. The encoder runs once per input, not once per candidate.
  """
  model = T5(config)
  batch = input_tokens.shape[0]
  if candidates.ndim == 2:
    candidates = jnp.broadcast_to(candidates[None], (batch,) + candidates.shape)
  num = candidates.shape[1]
  encoded, mask = model.apply({"params": params}, input_tokens, peft=peft, method=T5.encode)
  encoded, mask = jnp.repeat(encoded, num, axis=0), jnp.repeat(mask, num, axis=0)  # [B*C, S, E]
  targets = candidates.reshape(batch * num, -1)
  logits = model.apply({"params": params}, encoded, mask, shift_right(targets), peft=peft,
                       method=T5.decode)
  return _sum_log_likelihood(logits, targets).reshape(batch, num)
