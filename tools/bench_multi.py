"""Throughput of K training runs in one vmapped step (spot_jax.train.multi) against one run at a
time; prints one JSON object a line.

Run from the repository root:

  PYTHONPATH=. python tools/bench_multi.py [--ks 1,2,4,8] [--batches 4,8,32] [--rounds 3] ...

Setting: the shipped embedded model (spot_jax/embedded/model) with the CrossFit study's prompt
method (spot_jax/embedded/protocol.py CROSSFIT_METHODS["prompt"]: P = 20 sampled-vocabulary rows),
the study Runner's optimizer (AdamW, rate in the optimizer state), no dropout (the Runner's), and
random batches of --input_len / --target_len tokens (24 / 8: the CrossFit targets' tight lengths,
spot_jax.embedded.seqio_tasks.feature_lengths; nli_cb's 32 is the longest). Data loading is not
timed. Per batch size, every K's step is compiled first, then timed in --rounds interleaved rounds
(K = 1, 2, 4, 8, K = 1, 2, ...) of single blocked calls. On a busy shared machine most calls are
slowed by other jobs, so step times are read at their 20th percentile (the nearly undisturbed
ones; the median is printed as well). `examples_per_s` counts the examples of all K runs;
`speedup` = K x step_s(K = 1) / step_s(K): how much faster K runs finish stacked than one after
another (> 1: stacking pays).

Measured on the 2-core CPU (2026-12-03, shared with other jobs: load average ~5), three runs of

  nice env PYTHONPATH=. python tools/bench_multi.py     (~2.5 min each)

speedup (examples/s of all K runs / one run at a time; 20th-percentile step times), run 1 is the
first version of this tool (median of 3 rounds of averaged calls), runs 2 and 3 the current one:

  batch   K=2               K=4               K=8
  4       1.41 1.01 1.48    1.64 1.43 1.96    1.10 0.74 1.16
  8       0.99 1.22 1.28    0.99 0.93 1.16    0.71 0.80 0.78
  32      1.06 0.98 1.12    0.76 0.62 0.80    0.82 0.65 0.78

Throughput peaks near K x batch = 16 examples per step; spot_jax.train.multi.runs_per_step
encodes batch 4 -> K 4, batch 8 -> K 2, batch 32 -> K 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_model import log  # noqa: E402
from bench_train_step import make_batch, threaded  # noqa: E402

from spot_jax import embedded  # noqa: E402
from spot_jax.checkpoints import load_checkpoint  # noqa: E402
from spot_jax.embedded.protocol import CROSSFIT_METHODS  # noqa: E402
from spot_jax.peft import trees  # noqa: E402
from spot_jax.study.crossfit import Runner  # noqa: E402
from spot_jax.train import multi  # noqa: E402


def parse() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--ks", default="1,2,4,8")
  parser.add_argument("--batches", default="4,8,32")
  parser.add_argument("--input_len", type=int, default=24)
  parser.add_argument("--target_len", type=int, default=8)
  parser.add_argument("--method", default="prompt", choices=sorted(CROSSFIT_METHODS))
  parser.add_argument("--rounds", type=int, default=6)
  parser.add_argument("--seconds", type=float, default=0.75, help="timing per K and round")
  return parser.parse_args()


def timed_calls(call, seconds: float) -> list[float]:
  """Seconds of each blocked call of `call` over about `seconds`."""
  out, end = [], time.perf_counter() + seconds
  while time.perf_counter() < end or not out:
    t0 = time.perf_counter()
    jax.block_until_ready(call())
    out.append(time.perf_counter() - t0)
  return out


def main() -> None:
  args = parse()
  start = time.perf_counter()
  config, frozen = load_checkpoint(embedded.model_dir())
  config = config.replace(dropout_rate=0.0)
  method = CROSSFIT_METHODS[args.method]
  optimizer = Runner.optimizer
  step = multi.jit_multi_train_step(config, optimizer)
  device = jax.devices()[0]
  common = {"bench": "multi_train_step", "model": "embedded", "method": args.method,
            "input_len": args.input_len, "target_len": args.target_len, "jax": jax.__version__,
            "platform": device.platform, "device_kind": device.device_kind,
            "cpu_count": os.cpu_count()}
  ks = [int(k) for k in args.ks.split(",")]
  if 1 not in ks:
    ks = [1] + ks
  for batch in (int(b) for b in args.batches.split(",")):
    one = make_batch(config, argparse.Namespace(batch=batch, input_len=args.input_len,
                                                target_len=args.target_len))
    calls, compile_s = {}, {}
    for k in ks:
      trainables = [trees.init_trainable(method, config, frozen, jax.random.PRNGKey(i))
                    for i in range(k)]
      states = multi.create_states(trainables, optimizer, seeds=range(k),
                                   learning_rates=[1e-3] * k)
      calls[k] = threaded(step, states, frozen, multi.stack([one] * k))
      t0 = time.perf_counter()
      jax.block_until_ready(calls[k]())
      compile_s[k] = time.perf_counter() - t0
      log(f"batch {batch} K={k}: compiled in {compile_s[k]:.1f} s")
    times = {k: [] for k in ks}  # seconds of single blocked calls, all rounds
    for _ in range(args.rounds):
      for k in ks:
        times[k].extend(timed_calls(calls[k], args.seconds))
    for k in ks:
      fast, typical = (float(np.percentile(times[k], q)) for q in (20, 50))
      base_fast, base_typical = (float(np.percentile(times[1], q)) for q in (20, 50))
      line = {**common, "batch": batch, "runs": k, "step_s_p20": fast, "step_s_p50": typical,
              "examples_per_s": k * batch / fast,
              "speedup": k * base_fast / fast, "speedup_p50": k * base_typical / typical,
              "calls": len(times[k]), "compile_s": compile_s[k], "rounds": args.rounds}
      log(f"batch {batch} K={k}: speedup {line['speedup']:.2f} (p50 {line['speedup_p50']:.2f})")
      print(json.dumps(line), flush=True)
  log(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
  main()
