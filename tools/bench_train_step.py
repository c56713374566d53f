"""Throughput benchmark of the real prompt-tuning train step; prints one JSON object a line.

Run from the repository root:

  python tools/bench_train_step.py [--configs t5_1_1_test,t5_1_1_small] [--batch 32] ...

For each config it times the step the trainer runs (`spot_jax.train.step.jit_train_step`): dropout
on (the config default), SPoT's Adafactor defaults, a SampledVocabInit prompt of prompt_len x E, and
a random batch of input_len input and target_len target tokens. The step donates its state, so the
timing loop threads the returned state into the next call. Helpers (timing, XLA FLOP count, float32
matmul peak) come from tools/bench_model.py; the peak is printed as its own "matmul_peak" line.

Timings come from a shared, possibly busy machine: read them as ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_model import log, setup, time_call, xla_flops  # noqa: E402

from spot_jax.model.config import T5Config, get_config  # noqa: E402
from spot_jax.model.params import init_params  # noqa: E402
from spot_jax.peft.prompts import SampledVocabInit  # noqa: E402
from spot_jax.train.optim import adafactor  # noqa: E402
from spot_jax.train.state import TrainState  # noqa: E402
from spot_jax.train.step import Batch, jit_train_step  # noqa: E402


def make_batch(cfg: T5Config, args: argparse.Namespace) -> Batch:
  """Random token ids in [2, vocab); every target ends in EOS (1); decoder inputs shifted right."""
  k_in, k_tgt = jax.random.split(jax.random.PRNGKey(0))
  inputs = jax.random.randint(k_in, (args.batch, args.input_len), 2, cfg.vocab_size, jnp.int32)
  targets = jax.random.randint(k_tgt, (args.batch, args.target_len), 2, cfg.vocab_size, jnp.int32)
  targets = targets.at[:, -1].set(1)
  return {"encoder_input_tokens": inputs, "decoder_target_tokens": targets,
          "decoder_input_tokens": jnp.pad(targets[:, :-1], ((0, 0), (1, 0))),
          "decoder_loss_weights": jnp.ones(targets.shape, jnp.float32)}


def count(tree: Any) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))


def threaded(step: Callable, state: TrainState, frozen: Any,
             batch: Batch) -> Callable[[], TrainState]:
  """A no-argument call of `step` that feeds each returned (donated-into) state to the next call."""
  box = [state]

  def call() -> TrainState:
    box[0] = step(box[0], frozen, batch)[0]
    return box[0]

  return call


def bench_config(name: str, args: argparse.Namespace, peak: float,
                 common: dict[str, Any]) -> dict[str, Any]:
  cfg = get_config(name)  # dropout_rate 0.1, as in training
  frozen = init_params(cfg, 0)
  optimizer = adafactor()
  embedding = np.asarray(frozen["token_embedder"]["embedding"])
  prompt = SampledVocabInit()(jax.random.PRNGKey(0), embedding, args.prompt_len)
  state = TrainState.create({"prompt": prompt}, optimizer, 0)
  batch = make_batch(cfg, args)
  step = jit_train_step(cfg, optimizer)
  log(f"{name} train_step: compiling and timing")
  flops = xla_flops(step, state, frozen, batch)  # lowering does not consume the donated state
  step_s, reps = time_call(threaded(step, state, frozen, batch), (), args.min_seconds)
  tokens = args.input_len + args.prompt_len + args.target_len
  gflop_per_s = flops / step_s / 1e9
  log(f"{name} train_step: {step_s:.4f} s/step, {gflop_per_s:.1f} GFLOP/s")
  return {"bench": "train_step", "config": name, "batch": args.batch, "input_len": args.input_len,
          "prompt_len": args.prompt_len, "target_len": args.target_len,
          "frozen_params": count(frozen), "trainable_params": count(state.trainable),
          "examples_per_s": args.batch / step_s, "tokens_per_s": args.batch * tokens / step_s,
          "step_s": step_s, "reps": reps, "gflops_per_step": flops / 1e9,
          "gflop_per_s": gflop_per_s, "peak_fraction": gflop_per_s / peak, **common}


def main() -> None:
  args, common, peak = setup(__doc__)
  for name in args.configs.split(","):
    print(json.dumps(bench_config(name.strip(), args, peak, common)), flush=True)


if __name__ == "__main__":
  main()
