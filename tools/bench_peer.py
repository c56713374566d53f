"""Our prompt-tuning train step against HF PEFT's on PyTorch, identical configs; one JSON line each.

Run from the repository root:

  python tools/bench_peer.py [--configs peer_tiny,peer_small] [--rounds 3] [--min_seconds 5]

Both sides train a 100-token soft prompt in front of the encoder inputs of the same randomly
initialised T5 1.1-shaped model (gated GELU, untied output layer, relative position buckets
32/128), batch 32 of 128 input and 8 target tokens, dropout 0, SPoT's Adafactor (lr 0.3, decay rate
0.8, update clipping 1.0, weight decay 1e-5, no parameter scaling, no relative step):
  - ours: `spot_jax.train.step.jit_train_step` (the step `spot-jax train` runs), state donated;
  - peer: `peft.get_peft_model(T5ForConditionalGeneration, PromptTuningConfig(SEQ_2_SEQ_LM, 100))`,
    `loss.backward()`, transformers' Adafactor, `zero_grad(set_to_none=True)`, in torch's default
    2-thread CPU setting.
Configs: peer_tiny = d_model 128, 2+2 layers, 4 heads x 32, MLP 512, vocab 4096; peer_small = the
T5-small shapes of T5 1.1 with 6+6 layers (d_model 512, 8 heads x 64, MLP 1024, vocab 32128).

The two sides alternate, `--rounds` times, each timed over at least `--min_seconds` after a warm-up;
the line per config carries each side's median examples/s and `ratio` = ours / peer's. Timings come
from a shared machine: read the ratio, measured within one run, not the absolute rates.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Callable

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_model import log, shape_parser  # noqa: E402

from spot_jax.model.config import T5Config  # noqa: E402
from spot_jax.model.params import init_params  # noqa: E402
from spot_jax.train.optim import adafactor  # noqa: E402
from spot_jax.train.state import TrainState  # noqa: E402
from spot_jax.train.step import jit_train_step  # noqa: E402

CONFIGS = {
    "peer_tiny": T5Config(vocab_size=4096, emb_dim=128, num_heads=4, head_dim=32, mlp_dim=512,
                          num_encoder_layers=2, num_decoder_layers=2, dropout_rate=0.0,
                          name="peer_tiny"),
    "peer_small": T5Config(vocab_size=32128, emb_dim=512, num_heads=8, head_dim=64, mlp_dim=1024,
                           num_encoder_layers=6, num_decoder_layers=6, dropout_rate=0.0,
                           name="peer_small"),
}


def random_tokens(cfg: T5Config, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
  """Inputs [B, input_len] and targets [B, target_len] in [2, vocab); every target ends in EOS."""
  rng = np.random.default_rng(0)
  inputs = rng.integers(2, cfg.vocab_size, (args.batch, args.input_len), dtype=np.int32)
  targets = rng.integers(2, cfg.vocab_size, (args.batch, args.target_len), dtype=np.int32)
  targets[:, -1] = 1
  return inputs, targets


def ours(cfg: T5Config, inputs: np.ndarray, targets: np.ndarray, prompt_len: int) -> Callable[[], None]:
  """One call = one train step of spot-jax, synchronised."""
  frozen = init_params(cfg, 0)
  optimizer = adafactor()
  prompt = jax.numpy.asarray(np.asarray(frozen["token_embedder"]["embedding"])[2:2 + prompt_len])
  box = [TrainState.create({"prompt": prompt}, optimizer, 0)]
  batch = {"encoder_input_tokens": inputs, "decoder_target_tokens": targets,
           "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
           "decoder_loss_weights": np.ones(targets.shape, np.float32)}
  batch = jax.device_put(batch)
  step = jit_train_step(cfg, optimizer)

  def call() -> None:
    box[0], metrics = step(box[0], frozen, batch)
    jax.block_until_ready(metrics["loss"])

  return call


def peer(cfg: T5Config, inputs: np.ndarray, targets: np.ndarray, prompt_len: int) -> Callable[[], None]:
  """One call = one HF PEFT prompt-tuning step on torch, same shapes and optimizer settings."""
  import peft
  import torch
  import transformers
  torch.manual_seed(0)
  hf_config = transformers.T5Config(
      vocab_size=cfg.vocab_size, d_model=cfg.emb_dim, d_kv=cfg.head_dim, d_ff=cfg.mlp_dim,
      num_layers=cfg.num_encoder_layers, num_decoder_layers=cfg.num_decoder_layers,
      num_heads=cfg.num_heads, relative_attention_num_buckets=cfg.relative_attention_num_buckets,
      relative_attention_max_distance=cfg.relative_attention_max_distance, dropout_rate=0.0,
      feed_forward_proj="gated-gelu", tie_word_embeddings=False, decoder_start_token_id=0,
      pad_token_id=0, eos_token_id=1)
  model = transformers.T5ForConditionalGeneration(hf_config)
  model = peft.get_peft_model(model, peft.PromptTuningConfig(task_type="SEQ_2_SEQ_LM",
                                                             num_virtual_tokens=prompt_len))
  model.train()
  optimizer = transformers.optimization.Adafactor(
      [p for p in model.parameters() if p.requires_grad], lr=0.3, decay_rate=-0.8,
      clip_threshold=1.0, weight_decay=1e-5, scale_parameter=False, relative_step=False,
      warmup_init=False)
  input_ids = torch.from_numpy(inputs.astype(np.int64))
  attention_mask = torch.ones_like(input_ids)
  labels = torch.from_numpy(targets.astype(np.int64))

  def call() -> None:
    loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

  return call


def seconds_per_call(call: Callable[[], None], min_seconds: float) -> float:
  """Mean seconds of `call` over at least min_seconds (and 2 calls), after one warm-up call."""
  call()
  reps, start = 0, time.perf_counter()
  while reps < 2 or time.perf_counter() - start < min_seconds:
    call()
    reps += 1
  return (time.perf_counter() - start) / reps


def bench(name: str, args: argparse.Namespace) -> dict:
  cfg = CONFIGS[name]
  inputs, targets = random_tokens(cfg, args)
  sides = {"ours": ours(cfg, inputs, targets, args.prompt_len),
           "peer": peer(cfg, inputs, targets, args.prompt_len)}
  rates: dict[str, list[float]] = {side: [] for side in sides}
  for r in range(args.rounds):
    for side, call in sides.items():  # alternating: ours, peer, ours, peer, ...
      rates[side].append(args.batch / seconds_per_call(call, args.min_seconds))
      log(f"{name} round {r + 1}/{args.rounds} {side}: {rates[side][-1]:.2f} examples/s")
  median = {side: statistics.median(r) for side, r in rates.items()}
  return {"bench": "peer_train_step", "config": name, "batch": args.batch,
          "input_len": args.input_len, "prompt_len": args.prompt_len,
          "target_len": args.target_len, "ours_examples_per_s": median["ours"],
          "peer_examples_per_s": median["peer"], "ratio": median["ours"] / median["peer"],
          "rounds": {side: [round(x, 3) for x in r] for side, r in rates.items()},
          "jax": jax.__version__, "torch": __import__("torch").__version__,
          "peft": __import__("peft").__version__}


def main() -> None:
  parser = shape_parser(__doc__, configs="peer_tiny,peer_small", min_seconds=5.0)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()
  for name in args.configs.split(","):
    print(json.dumps(bench(name.strip(), args)), flush=True)


if __name__ == "__main__":
  main()
