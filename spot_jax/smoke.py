"""A small end-to-end run of the frozen model: tokenize, prepend a soft prompt, score, decode.

It exercises every inference path (encoder prefix, teacher-forced scoring, rank classification,
greedy and beam decoding) on a checkpoint (t5x or HF) or on a randomly initialised model, and prints
what it did with timings. It is the README's first command until the embedded demo lands.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional, Sequence

import jax
import numpy as np
from etils import epath

from spot_jax.checkpoints import load_checkpoint
from spot_jax.errors import SpotError
from spot_jax.model import decoding
from spot_jax.model.config import get_config
from spot_jax.model.params import init_params

DEFAULT_TEXTS = ("sst2 sentence: a gripping, funny and warm film.",
                 "sst2 sentence: tedious, with nothing to say.")
DEFAULT_CANDIDATES = ("positive", "negative")


@dataclasses.dataclass
class SmokeResult:
  config_name: str
  greedy: list[str]
  beams: list[list[str]]
  beam_scores: np.ndarray  # [B, K]
  rank_scores: np.ndarray  # [B, C]
  seconds: dict[str, float]


def _vocabulary(vocab_path: Optional[str]):
  import seqio  # imported here: it pulls in TensorFlow, which `spot-jax --help` should not wait for
  if vocab_path:
    if not epath.Path(vocab_path).exists():
      raise SpotError(f"vocabulary {vocab_path} does not exist; give a SentencePiece .model file")
    return seqio.SentencePieceVocabulary(vocab_path, extra_ids=100)
  return seqio.ByteVocabulary()


def _encode(vocab, texts: Sequence[str], vocab_limit: int) -> np.ndarray:
  """Texts -> [B, T] int32, EOS-terminated, zero-padded."""
  ids = [list(vocab.encode(t)) + [decoding.EOS_ID] for t in texts]
  if max(max(i) for i in ids) >= vocab_limit:
    raise SpotError(f"the vocabulary produces ids up to {max(max(i) for i in ids)} but the model "
                    f"has {vocab_limit} embeddings; pass the vocabulary the model was trained with")
  out = np.zeros((len(ids), max(map(len, ids))), np.int32)
  for row, seq in zip(out, ids):
    row[:len(seq)] = seq
  return out


def run_smoke(*, checkpoint: Optional[str] = None, config_name: Optional[str] = None,
              vocab_path: Optional[str] = None, texts: Sequence[str] = DEFAULT_TEXTS,
              candidates: Sequence[str] = DEFAULT_CANDIDATES, prompt_length: int = 20,
              beam_size: int = 4, max_decode_len: int = 16, seed: int = 0,
              log: Callable[[str], None] = print) -> SmokeResult:
  seconds = {}

  def timed(name, fn, *args, **kwargs):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    seconds[name] = time.perf_counter() - start
    log(f"  {name:<22s} {seconds[name]:7.2f} s")
    return out

  vocab = _vocabulary(vocab_path)
  log(f"spot-jax smoke: jax {jax.__version__} on {jax.devices()[0].platform} x{jax.device_count()}")
  if checkpoint:
    config = get_config(config_name) if config_name else None  # None: the checkpoint's own
    config, params = timed("load checkpoint", load_checkpoint, checkpoint, config)
  else:
    config = get_config(config_name or "t5_1_1_test")
    params = timed("init random model", init_params, config, seed)
  config = config.replace(dropout_rate=0.0)
  inputs = _encode(vocab, texts, config.vocab_size)
  labels = _encode(vocab, candidates, config.vocab_size)
  prompt = 0.5 * jax.random.normal(jax.random.PRNGKey(seed), (prompt_length, config.emb_dim))
  log(f"  model {config.name}: {config.num_encoder_layers}+{config.num_decoder_layers} layers, "
      f"emb {config.emb_dim}, vocab {config.vocab_size}; inputs {inputs.shape} + prompt {prompt.shape}")

  rank = timed("rank classification", decoding.rank_classification, params, inputs, labels,
               config=config, peft={"prompt": prompt})
  greedy = timed("greedy decode", decoding.greedy_decode, params, inputs, config=config,
                 max_decode_len=max_decode_len, peft={"prompt": prompt})
  beams = timed("beam search", decoding.beam_search, params, inputs, config=config,
                beam_size=beam_size, max_decode_len=max_decode_len, peft={"prompt": prompt})
  decode = lambda ids: vocab.decode([int(i) for i in ids if i > 1])  # noqa: E731 (drop pad/EOS)
  result = SmokeResult(
      config_name=config.name, greedy=[decode(g) for g in np.asarray(greedy)],
      beams=[[decode(s) for s in row] for row in np.asarray(beams.sequences)],
      beam_scores=np.asarray(beams.scores), rank_scores=np.asarray(rank), seconds=seconds)
  for i, text in enumerate(texts):
    best = candidates[int(np.argmax(result.rank_scores[i]))]
    scores = ", ".join(f"{s:.3f}" for s in result.rank_scores[i])
    log(f"  [{i}] {text!r}\n      rank classification -> {best!r} (log-likelihoods {scores})\n"
        f"      greedy -> {result.greedy[i]!r}\n      beam[0] -> {result.beams[i][0]!r} "
        f"(score {result.beam_scores[i, 0]:.3f})")
  if not checkpoint:
    log("  (random weights: the outputs are noise; pass --checkpoint for a trained model)")
  return result
