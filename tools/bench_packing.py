"""Examples/s of the real train step with prompt-aware packing vs padding; one JSON object a line.

Run from the repository root:

  PYTHONPATH=. python tools/bench_packing.py [--part a,b] [--config t5_1_1_embedded] [--rows 8] ...

Both modes run `spot_jax.train.step.jit_train_step` (Adafactor, the config's dropout) on batches of
`--rows` rows made by the real data code: padded rows by seqio's EncDecFeatureConverter(pack=False),
packed rows by spot_jax.data.packing.pack (P prompt slots per example, seqio's greedy packing,
rows of P + inputs_length encoder and targets_length x max_examples_per_row decoder tokens).
examples/s = (examples per row) x rows / (seconds per step); examples per row is 1 when padded and,
packed, the mean number of segments over every row the sampled examples filled (not only the timed
batch). Step time does not depend on the tokens, so one batch per mode is timed; the two modes are
timed in alternating rounds and each keeps its fastest (the machine's other load only slows).
Each line also gives `flop_speedup`, the same ratio from XLA's FLOP count per step: a load-free
check of `speedup` on a busy machine.

(a) "glue_like": SPoT's setting, prompt 100, inputs padded to 512, targets to --glue_targets (16,
    as gin_configs/runs/prompt_finetune.gin). Input lengths in
    SentencePiece tokens (task prefix and EOS included) are drawn from a documented GLUE-like mix:
      95%  lognormal(median 45, sigma 0.7)   single sentences and pairs (SST-2, CoLA, MNLI, QQP,
           MRPC, STS-B): mean 58, 99th percentile 230
       5%  lognormal(median 150, sigma 0.5)  long pairs (RTE, QNLI, BoolQ-like): mean 170
    rounded, clipped to [4, 512]; the default 1000-example draw has mean 60.8, median 45 and 99th
    percentile 253 tokens (each line reports its draw's). Targets: a label
    word + EOS, 2 or 3 tokens with equal chance. Token ids are random in [2, vocab) with EOS 1 last.
(b) "embedded": the embedded tasks' real examples (spot_jax/embedded, prompt 20 as its protocol),
    padded to (i) the tight per-task lengths the studies use (seqio_tasks.feature_lengths) and (ii)
    the shipped training default tasks.FEATURE_LENGTHS (80 / 8), vs packed at the same lengths.

--config picks the frozen model's shape (random weights; default t5_1_1_embedded, the shipped
embedded model: 2+2 layers, d_model 128), small enough for each measurement to take well under a
minute on 2 busy CPU cores. Timings come from a shared machine: read them as ratios within a run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Iterable, Mapping

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_model import log, time_call, xla_flops  # noqa: E402
from bench_train_step import threaded  # noqa: E402

from spot_jax.data import packing  # noqa: E402
from spot_jax.model.config import T5Config, get_config  # noqa: E402
from spot_jax.model.params import init_params  # noqa: E402
from spot_jax.peft.prompts import SampledVocabInit  # noqa: E402
from spot_jax.train.optim import adafactor  # noqa: E402
from spot_jax.train.state import TrainState  # noqa: E402
from spot_jax.train.step import jit_train_step  # noqa: E402

Row = dict[str, np.ndarray]


def glue_like_lengths(n: int, seed: int = 0) -> np.ndarray:
  """Input lengths of the mix in the module docstring."""
  rng = np.random.RandomState(seed)
  long = rng.rand(n) < 0.05
  lengths = np.where(long, rng.lognormal(np.log(150), 0.5, n), rng.lognormal(np.log(45), 0.7, n))
  return np.clip(np.round(lengths), 4, 512).astype(np.int32)


def glue_like_dataset(n: int, vocab_size: int, seed: int = 0):
  """tf.data of n tokenized examples with glue_like_lengths inputs and 2-3 token targets."""
  import tensorflow as tf
  rng = np.random.RandomState(seed + 1)
  examples = []
  for length in glue_like_lengths(n, seed):
    inputs = rng.randint(2, vocab_size, length).astype(np.int32)
    targets = rng.randint(2, vocab_size, rng.randint(2, 4)).astype(np.int32)
    inputs[-1] = targets[-1] = 1
    examples.append((inputs, targets))
  spec = tf.TensorSpec([None], tf.int32)
  return tf.data.Dataset.from_generator(
      lambda: ({"inputs": i, "targets": t} for i, t in examples),
      output_signature={"inputs": spec, "targets": spec})


def padded_rows(ds, lengths: Mapping[str, int]) -> list[Row]:
  import seqio
  return list(seqio.EncDecFeatureConverter(pack=False)(ds, dict(lengths)).as_numpy_iterator())


def row_lengths(lengths: Mapping[str, int], prompt_length: int,
                args: argparse.Namespace) -> dict[str, int]:
  """The packed row lengths: packing's default rule, or its decoder row cut to
  targets_length x --decoder_factor (the train() argument pack_lengths does the same)."""
  rows = packing.packed_lengths(lengths, prompt_length)
  if args.decoder_factor:
    rows["targets"] = lengths["targets"] * args.decoder_factor
  return rows


def packed_rows(ds, lengths: Mapping[str, int], prompt_length: int,
                args: argparse.Namespace) -> list[Row]:
  rows = row_lengths(lengths, prompt_length, args)
  return list(packing.pack(ds, lengths, prompt_length, rows).as_numpy_iterator())


def stack(rows: list[Row], n: int) -> dict[str, np.ndarray]:
  if len(rows) < n:
    raise SystemExit(f"only {len(rows)} rows; sample more examples (--examples)")
  return {k: np.stack([r[k] for r in rows[:n]]) for k in rows[0]}


def row_stats(rows: list[Row], packed: bool, prompt_length: int) -> dict[str, float]:
  """Mean examples per row and the fraction of encoder / decoder positions that are not padding
  (the prompt counts as content: unpacked, the model prepends P positions to every row)."""
  if packed:
    per_row = [len(set(r["encoder_segment_ids"].tolist()) - {0}) for r in rows]
    enc = np.mean([np.mean(r["encoder_segment_ids"] > 0) for r in rows])
  else:
    per_row = [1] * len(rows)
    width = prompt_length + rows[0]["encoder_input_tokens"].shape[0]
    enc = np.mean([(prompt_length + np.sum(r["encoder_input_tokens"] > 0)) / width for r in rows])
  dec = np.mean([np.mean(r["decoder_loss_weights"] > 0) for r in rows])
  return {"examples_per_row": float(np.mean(per_row)), "encoder_fill": float(enc),
          "decoder_fill": float(dec), "rows_counted": len(rows)}


def step_call(cfg: T5Config, frozen: Any, batch: dict[str, np.ndarray], prompt_length: int):
  """(A no-argument call of the compiled train step on `batch`, its state threaded through; XLA's
  FLOP count of one step)."""
  optimizer = adafactor()
  embedding = np.asarray(frozen["token_embedder"]["embedding"])
  prompt = SampledVocabInit()(jax.random.PRNGKey(0), embedding, prompt_length)
  state = TrainState.create({"prompt": prompt}, optimizer, 0)
  step = jit_train_step(cfg, optimizer)
  batch = {k: jax.numpy.asarray(v) for k, v in batch.items()}
  flops = xla_flops(step, state, frozen, batch)  # lowering does not consume the donated state
  return threaded(step, state, frozen, batch), flops


def compare(name: str, cfg: T5Config, frozen: Any, make_ds, lengths: Mapping[str, int],
            prompt_length: int, args: argparse.Namespace, extra: dict[str, Any]) -> dict[str, Any]:
  """One line: padded vs packed examples/s of the same examples at the same task lengths.

  The two steps are timed in alternation, `--rounds` times `--min_seconds` each, and each keeps
  its fastest round: on a shared machine a slow round is someone else's load, not the step's.
  """
  line: dict[str, Any] = {"bench": "packing", "case": name, "config": cfg.name, "rows": args.rows,
                          "prompt_len": prompt_length, "feature_lengths": dict(lengths),
                          "packed_lengths": row_lengths(lengths, prompt_length, args), **extra}
  calls = {}
  for mode in ("padded", "packed"):
    packed = mode == "packed"
    rows = (packed_rows(make_ds(), lengths, prompt_length, args) if packed
            else padded_rows(make_ds(), lengths))
    line[mode] = row_stats(rows, packed, prompt_length)
    calls[mode], flops = step_call(cfg, frozen, stack(rows, args.rows), prompt_length)
    line[mode]["gflops_per_step"] = flops / 1e9
  log(f"{name}: {line['packed']['examples_per_row']:.2f} examples per packed row; timing")
  rounds = {mode: [] for mode in calls}
  for _ in range(args.rounds):
    for mode, call in calls.items():
      rounds[mode].append(time_call(call, (), args.min_seconds)[0])
  for mode in calls:
    step_s = min(rounds[mode])
    line[mode].update(step_s=step_s, rounds_s=rounds[mode],
                      examples_per_s=line[mode]["examples_per_row"] * args.rows / step_s)
    log(f"{name} {mode}: {step_s:.4f} s/step, {line[mode]['examples_per_s']:.1f} examples/s")
  line["speedup"] = line["packed"]["examples_per_s"] / line["padded"]["examples_per_s"]
  # The same ratio from XLA's FLOP counts: immune to the machine's load, blind to memory traffic.
  line["flop_speedup"] = (line["packed"]["examples_per_row"] * line["padded"]["gflops_per_step"]
                          / line["packed"]["gflops_per_step"])
  return line


def part_a(cfg: T5Config, frozen: Any, args: argparse.Namespace) -> Iterable[dict[str, Any]]:
  lengths = {"inputs": 512, "targets": args.glue_targets}
  sample = glue_like_lengths(args.examples)
  extra = {"examples": args.examples, "input_len_mean": float(sample.mean()),
           "input_len_median": float(np.median(sample)),
           "input_len_p99": float(np.percentile(sample, 99))}
  yield compare("glue_like", cfg, frozen, lambda: glue_like_dataset(args.examples, cfg.vocab_size),
                lengths, 100, args, extra)


def part_b(cfg: T5Config, frozen: Any, args: argparse.Namespace) -> Iterable[dict[str, Any]]:
  import tasks  # noqa: F401  (registers the catalog, the embedded tasks included)
  from spot_jax.data.pipeline import host_shard_info
  from spot_jax.validation import resolve_task
  from spot_jax.embedded import protocol, seqio_tasks
  from spot_jax.embedded import tasks as embedded_tasks
  for task in args.embedded_tasks.split(","):
    for regime, lengths in (("tight", seqio_tasks.feature_lengths(task)),
                            ("shipped", dict(embedded_tasks.FEATURE_LENGTHS))):
      def make_ds(task=task, lengths=lengths):  # the task's tokenized, trimmed train examples
        return resolve_task(task).get_dataset(lengths, split="train", shuffle=True, seed=0,
                                          num_epochs=1, shard_info=host_shard_info(),
                                          use_cached=False).take(args.examples)
      yield compare(f"embedded/{task}/{regime}", cfg, frozen, make_ds, lengths,
                    protocol.PROMPT_LENGTH, args, {"examples": args.examples})


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--part", default="a,b", help="a (GLUE-like), b (embedded tasks), or a,b")
  parser.add_argument("--config", default="t5_1_1_embedded")
  parser.add_argument("--rows", type=int, default=8, help="rows per batch, both modes")
  parser.add_argument("--glue_targets", type=int, default=16, help="(a): targets feature length")
  parser.add_argument("--examples", type=int, default=1000, help="examples sampled per case")
  parser.add_argument("--embedded_tasks", default="synthetic_sources_v2,synthetic_qa_where_v2,"
                      "synthetic_nli_location_v2,synthetic_sent_opinion_v2")
  parser.add_argument("--decoder_factor", type=int, default=0,
                      help="packed decoder row = targets length x this (0: packing's default rule)")
  parser.add_argument("--min_seconds", type=float, default=2.0, help="per timing round")
  parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the fastest counts")
  args = parser.parse_args()
  cfg = get_config(args.config)
  frozen = init_params(cfg, 0)
  device = jax.devices()[0]
  common = {"jax": jax.__version__, "platform": device.platform, "device_kind": device.device_kind}
  parts = {"a": part_a, "b": part_b}
  for part in args.part.split(","):
    for line in parts[part.strip()](cfg, frozen, args):
      print(json.dumps({**line, **common}), flush=True)


if __name__ == "__main__":
  main()
