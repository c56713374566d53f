"""Throughput benchmark of the frozen T5 in the prompt-tuning setting; prints one JSON object a line.

Run from the repository root:

  PYTHONPATH=. python tools/bench_model.py [--configs t5_1_1_test,t5_1_1_small] [--batch 32] ...

For each config it times (1) "forward": the jitted mean target cross-entropy, and (2)
"forward_backward": its jitted value_and_grad with respect to the soft prompt (prefix) only, the
model parameters being a frozen, non-differentiated argument. It also times a float32 square matmul
("matmul_peak", the best of a few sizes) so each model line carries `peak_fraction`.

FLOPs are XLA's own count (`compiled.cost_analysis()["flops"]`); `analytic_gflops_per_step` is a
matmul-only estimate (forward_backward = 2x forward: activation gradients, no weight gradients).
Timings come from a shared, possibly busy machine: read them as ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from spot_jax.model.config import T5Config, get_config
from spot_jax.model.params import init_params
from spot_jax.model.t5 import T5


def log(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


def xla_flops(fn: Callable, *args: Any) -> float:
  """XLA's FLOP count of one call of jitted `fn`; cost_analysis() is a dict or a list of dicts."""
  cost = fn.lower(*args).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", float("nan")))


def time_call(fn: Callable, args: tuple, min_seconds: float) -> tuple[float, int]:
  """Seconds per call of `fn(*args)` after one warm-up call, over enough calls to last min_seconds."""
  jax.block_until_ready(fn(*args))  # compile
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  once = time.perf_counter() - start
  reps = max(1, math.ceil(min_seconds / max(once, 1e-6)))
  start = time.perf_counter()
  out = None
  for _ in range(reps):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / reps, reps


def matmul_peak(sizes: tuple[int, ...], min_seconds: float) -> dict[str, Any]:
  dot = jax.jit(jnp.dot)
  results = {}
  for n in sizes:
    a = jax.random.normal(jax.random.PRNGKey(n), (n, n), jnp.float32)
    seconds, _ = time_call(dot, (a, a), min_seconds)
    results[n] = 2 * n ** 3 / seconds / 1e9
    log(f"matmul {n}x{n}: {results[n]:.1f} GFLOP/s")
  best = max(results, key=results.get)
  return {"bench": "matmul_peak", "dtype": "float32", "gflop_per_s": results[best], "best_n": best,
          "by_n": {str(n): round(g, 2) for n, g in results.items()}}


def analytic_forward_flops(cfg: T5Config, batch: int, enc_len: int, dec_len: int) -> float:
  """Matmul FLOPs of one teacher-forced forward pass (attention, MLP, logits)."""
  hd = cfg.num_heads * cfg.head_dim
  mlp = (len(cfg.mlp_activations) + 1) * 2 * cfg.emb_dim * cfg.mlp_dim
  enc_tok = 4 * 2 * cfg.emb_dim * hd + 2 * 2 * enc_len * hd + mlp
  dec_tok = (6 * 2 * cfg.emb_dim * hd + 2 * 2 * (dec_len + enc_len) * hd + mlp)  # self q,k,v,o + cross q,o
  cross_kv = 2 * 2 * cfg.emb_dim * hd  # cross-attention keys/values, per encoder token and layer
  total = (cfg.num_encoder_layers * enc_len * enc_tok
           + cfg.num_decoder_layers * (dec_len * dec_tok + enc_len * cross_kv)
           + dec_len * 2 * cfg.emb_dim * cfg.vocab_size)
  return float(batch * total)


def make_loss(cfg: T5Config) -> Callable:
  model = T5(cfg)

  def loss(prefix: jax.Array, params: Any, inputs: jax.Array, dec_inputs: jax.Array,
           targets: jax.Array) -> jax.Array:
    logits = model.apply({"params": params}, inputs, dec_inputs, peft={"prompt": prefix}, deterministic=True)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, targets[..., None], axis=-1).mean()

  return loss


def make_batch(cfg: T5Config, args: argparse.Namespace) -> tuple[jax.Array, ...]:
  k_prefix, k_in, k_tgt = jax.random.split(jax.random.PRNGKey(0), 3)
  prefix = 0.5 * jax.random.normal(k_prefix, (args.prompt_len, cfg.emb_dim), jnp.float32)
  inputs = jax.random.randint(k_in, (args.batch, args.input_len), 1, cfg.vocab_size, jnp.int32)
  targets = jax.random.randint(k_tgt, (args.batch, args.target_len), 1, cfg.vocab_size, jnp.int32)
  dec_inputs = jnp.pad(targets[:, :-1], ((0, 0), (1, 0)))  # shift right, 0 = BOS
  return prefix, inputs, dec_inputs, targets


def bench_config(name: str, args: argparse.Namespace, peak: float,
                 common: dict[str, Any]) -> list[dict[str, Any]]:
  cfg = get_config(name, dropout_rate=0.0)
  params = init_params(cfg, 0)
  n_params = int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))
  prefix, inputs, dec_inputs, targets = make_batch(cfg, args)
  loss = make_loss(cfg)
  fwd_flops = analytic_forward_flops(cfg, args.batch, args.prompt_len + args.input_len, args.target_len)
  steps = {"forward": (jax.jit(loss), fwd_flops),
           "forward_backward": (jax.jit(jax.value_and_grad(loss)), 2 * fwd_flops)}
  call_args = (prefix, params, inputs, dec_inputs, targets)
  tokens = args.input_len + args.prompt_len + args.target_len
  lines = []
  for bench, (fn, analytic) in steps.items():
    log(f"{name} {bench}: compiling and timing")
    flops = xla_flops(fn, *call_args)
    step_s, reps = time_call(fn, call_args, args.min_seconds)
    gflop_per_s = flops / step_s / 1e9
    lines.append({"bench": bench, "config": name, "batch": args.batch, "input_len": args.input_len,
                  "prompt_len": args.prompt_len, "target_len": args.target_len, "params": n_params,
                  "examples_per_s": args.batch / step_s, "tokens_per_s": args.batch * tokens / step_s,
                  "step_s": step_s, "reps": reps, "gflops_per_step": flops / 1e9,
                  "analytic_gflops_per_step": analytic / 1e9, "gflop_per_s": gflop_per_s,
                  "peak_fraction": gflop_per_s / peak, **common})
    log(f"{name} {bench}: {step_s:.3f} s/step, {gflop_per_s:.1f} GFLOP/s")
  return lines


def shape_parser(doc: str, *, configs: str = "t5_1_1_test,t5_1_1_small",
                 min_seconds: float = 2.0) -> argparse.ArgumentParser:
  """The flags every train-step benchmark shares: configs, batch and sequence shape, timing."""
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  parser.add_argument("--configs", default=configs)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--input_len", type=int, default=128)
  parser.add_argument("--prompt_len", type=int, default=100)
  parser.add_argument("--target_len", type=int, default=8)
  parser.add_argument("--min_seconds", type=float, default=min_seconds)
  return parser


def setup(doc: str) -> tuple[argparse.Namespace, dict[str, Any], float]:
  """Flags, run facts and the float32 matmul peak (printed as its own line) shared by the
  benchmarks; returns (args, common fields of every line, peak GFLOP/s)."""
  args = shape_parser(doc).parse_args()
  device = jax.devices()[0]
  common = {"jax": jax.__version__, "platform": device.platform, "device_kind": device.device_kind,
            "num_devices": jax.device_count()}
  peak = matmul_peak((1024, 2048, 4096), args.min_seconds)
  print(json.dumps({**peak, **common}), flush=True)
  return args, common, peak["gflop_per_s"]


def main() -> None:
  args, common, peak = setup(__doc__)
  for name in args.configs.split(","):
    for line in bench_config(name.strip(), args, peak, common):
      print(json.dumps(line), flush=True)


if __name__ == "__main__":
  main()
