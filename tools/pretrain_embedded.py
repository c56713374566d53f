"""Pretrains the embedded default's frozen T5 on the synthetic language and writes it, with a
SentencePiece vocabulary trained on the same text, into spot_jax/embedded/.

  python tools/pretrain_embedded.py                        # the shipped model (see its pretrain.json)
  python tools/pretrain_embedded.py --steps 300 --out /tmp/emb   # a quick check
  python tools/pretrain_embedded.py --init spot_jax/embedded --first-doc 50000   # continue training

Objectives: T5 span corruption (15 % noise, mean span 3, sentinels <extra_id_k>) and prefix LM (a
document cut at a random point; predict the continuation), half each, on the synthetic corpus
(spot_jax.data.synthetic.document); and, for a `--drills` share of each batch, supervised
pretraining drills (synthetic_tasks.drill: source generators with their own label names, train
split, another seed), like T5 1.0's multi-task mixture. No target task is ever trained on.
Runs on CPU or GPU (JAX picks the device); everything is seeded.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import multiprocessing
import os
import sys
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sentencepiece as spm

from spot_jax import embedded
from spot_jax.checkpoints.hf import read_hf_checkpoint, write_hf_checkpoint
from spot_jax.data import synthetic, synthetic_tasks
from spot_jax.model.config import get_config
from spot_jax.model.params import init_params
from spot_jax.model.t5 import T5
from spot_jax.train.step import cross_entropy

PAD, EOS = 0, 1
LENGTHS = (96, 32)  # encoder inputs, decoder targets (word-level tokens; documents are ~100)
HELD_DRILLS = 32  # held-out drills per source task, scored at every log step


def _documents(seed: int, start: int, count: int, workers: int) -> list[str]:
  with multiprocessing.Pool(workers) as pool:
    return pool.map(functools.partial(synthetic.corpus_document, seed), range(start, start + count),
                    chunksize=512)


def _glossary() -> list[str]:
  """Every word the tasks use (prefixes, label words), one line: the tokenizer must know them
  even where the corpus never says them. Only the word set is used, never an example."""
  words = set(synthetic.lexicon().words())
  for name in synthetic_tasks.TASKS:
    for ex in synthetic_tasks.examples(name, "train", limit=50):
      words.update(ex["inputs"].split() + ex["targets"].split())
  words = sorted(words)
  return [" ".join(words[i:i + 20]) for i in range(0, len(words), 20)]


def train_vocabulary(docs: list[str], vocab_size: int) -> bytes:
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(docs + _glossary()), model_writer=model, vocab_size=vocab_size,
      model_type="word", pad_id=PAD, eos_id=EOS, unk_id=2, bos_id=-1, hard_vocab_limit=False,
      character_coverage=1.0, shuffle_input_sentence=False, num_threads=1, minloglevel=2)
  return model.getvalue()


def _partition(rng: np.random.Generator, total: int, parts: int) -> np.ndarray:
  """`total` split into `parts` positive lengths at random."""
  cuts = np.sort(rng.choice(np.arange(1, total), parts - 1, replace=False))
  return np.diff(np.r_[0, cuts, total])


def span_corruption(rng: np.random.Generator, tokens: np.ndarray, sentinel0: int,
                    noise: float = 0.15, mean_span: float = 3.0) -> tuple[list[int], list[int]]:
  """T5's objective: random spans (about `noise` of the tokens) replaced by sentinels in the
  input; the target lists each sentinel followed by the span it hides."""
  n = len(tokens)
  num_noise = min(max(1, int(round(n * noise))), n - 1)
  num_spans = max(1, min(int(round(num_noise / mean_span)), n - num_noise))
  noise_lengths = _partition(rng, num_noise, num_spans)
  keep_lengths = _partition(rng, n - num_noise, num_spans)
  inputs, targets, pos = [], [], 0
  for k, (keep, drop) in enumerate(zip(keep_lengths, noise_lengths)):
    inputs += list(tokens[pos:pos + keep]) + [sentinel0 - k]
    targets += [sentinel0 - k] + list(tokens[pos + keep:pos + keep + drop])
    pos += keep + drop
  return inputs, targets


def prefix_lm(rng: np.random.Generator, tokens: np.ndarray, max_target: int) -> tuple[list, list]:
  cut = int(rng.integers(len(tokens) // 4, 3 * len(tokens) // 4 + 1))
  return list(tokens[:cut]), list(tokens[cut:cut + max_target])


def _drills(sp: spm.SentencePieceProcessor, indices: range,
            tasks: Sequence[str] = synthetic_tasks.SOURCE_TASKS) -> list[tuple[list[int], list[int]]]:
  """Drills `indices` of each of `tasks` (task-major), tokenized: (inputs, targets)."""
  pairs = [synthetic_tasks.drill(name, i) for name in tasks for i in indices]
  return list(zip(sp.encode([p["inputs"] for p in pairs]), sp.encode([p["targets"] for p in pairs])))


def _batch(pairs: Sequence[tuple[list[int], list[int]]], lengths: tuple[int, int]) -> dict:
  """Token (inputs, targets) pairs as a model batch, each truncated and closed with EOS."""
  in_len, out_len = lengths
  out = {k: np.zeros((len(pairs), n), np.int32) for k, n in
         (("encoder_input_tokens", in_len), ("decoder_target_tokens", out_len))}
  for b, (inputs, targets) in enumerate(pairs):
    inputs, targets = list(inputs[:in_len - 1]) + [EOS], list(targets[:out_len - 1]) + [EOS]
    out["encoder_input_tokens"][b, :len(inputs)] = inputs
    out["decoder_target_tokens"][b, :len(targets)] = targets
  out["decoder_input_tokens"] = np.pad(out["decoder_target_tokens"][:, :-1], ((0, 0), (1, 0)))
  out["decoder_loss_weights"] = (out["decoder_target_tokens"] > 0).astype(np.float32)
  return out


def make_batch(rng: np.random.Generator, docs: list[np.ndarray], batch: int, lengths: tuple[int, int],
               sentinel0: int, drills: Sequence[tuple[list[int], list[int]]] = (),
               num_drills: int = 0) -> dict[str, np.ndarray]:
  """`num_drills` rows of drills, the rest corpus (alternately span corruption and prefix LM)."""
  in_len, out_len = lengths
  pairs = [drills[int(rng.integers(len(drills)))] for _ in range(num_drills)]
  for b in range(num_drills, batch):
    doc = docs[int(rng.integers(len(docs)))]
    start = int(rng.integers(max(1, len(doc) - (in_len - 16) + 1)))
    if b % 2 == 0:
      pairs.append(span_corruption(rng, doc[start:start + in_len - 16], sentinel0))
    else:
      pairs.append(prefix_lm(rng, doc[start:start + in_len + out_len], out_len - 1))
  return _batch(pairs, lengths)


def _family_weights(parser: argparse.ArgumentParser, items: Sequence[str]) -> dict[str, int]:
  weights = {}
  for item in items:
    family, _, weight = item.partition("=")
    if not weight.isdigit() or int(weight) < 1:
      parser.error(f"--drill-weight wants FAMILY=W with a whole W >= 1, got {item!r}")
    weights[family] = int(weight)
  return weights


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=str(embedded.ROOT))
  parser.add_argument("--steps", type=int, default=4_000)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--lr", type=float, default=3e-3)
  parser.add_argument("--warmup", type=int, default=300)
  parser.add_argument("--docs", type=int, default=50_000)
  parser.add_argument("--vocab-size", type=int, default=512)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--log-every", type=int, default=250)
  parser.add_argument("--workers", type=int, default=os.cpu_count())
  parser.add_argument("--init", help="continue from a directory this tool wrote (its model and "
                      "vocabulary are kept); default: a fresh model and vocabulary")
  parser.add_argument("--first-doc", type=int, default=0,
                      help="index of the first corpus document (fresh text when continuing)")
  parser.add_argument("--drills", type=float, default=0.0,
                      help="share of each batch given to pretraining drills (0: corpus only)")
  parser.add_argument("--drills-per-task", type=int, default=10_000)
  parser.add_argument("--drill-families", nargs="+", metavar="FAMILY",
                      help="train on the drills of these source families only (default: all)")
  parser.add_argument("--drill-tasks", nargs="+", metavar="TASK",
                      help="train on the drills of these source tasks only (synthetic_nli_location "
                      "...; with --drill-families, the tasks of those families among them)")
  parser.add_argument("--drill-weight", nargs="+", metavar="FAMILY=W", default=[],
                      help="give FAMILY W times the distinct drills per task (and so W times "
                      "its share of the drill rows), e.g. nli=3")
  args = parser.parse_args(argv)
  families = {synthetic_tasks.TASKS[n].family for n in synthetic_tasks.SOURCE_TASKS}
  weights = _family_weights(parser, args.drill_weight)
  unknown = (set(args.drill_families or ()) | set(weights)) - families
  if unknown:
    parser.error(f"unknown drill families {sorted(unknown)}; choose from {sorted(families)}")
  not_sources = set(args.drill_tasks or ()) - set(synthetic_tasks.SOURCE_TASKS)
  if not_sources:
    parser.error(f"--drill-tasks {sorted(not_sources)} are not source tasks; choose from "
                 f"{', '.join(synthetic_tasks.SOURCE_TASKS)}")
  drill_tasks = [n for n in (args.drill_tasks or synthetic_tasks.SOURCE_TASKS)
                 if synthetic_tasks.TASKS[n].family in (args.drill_families or families)]
  t0 = time.time()
  out = os.path.abspath(args.out)
  os.makedirs(out, exist_ok=True)

  docs = _documents(args.seed, args.first_doc, args.docs, args.workers)
  held_out = _documents(args.seed, 10_000_000, 1_000, args.workers)  # never a training document
  if args.init:
    with open(os.path.join(args.init, "sentencepiece.model"), "rb") as f:
      sp_model = f.read()
    with open(os.path.join(args.init, "pretrain.json")) as f:
      previous = json.load(f)
  else:
    sp_model, previous = train_vocabulary(docs[:20_000], args.vocab_size), None
  sp = spm.SentencePieceProcessor(model_proto=sp_model)
  config = get_config(embedded.MODEL_CONFIG)
  if sp.get_piece_size() + embedded.EXTRA_IDS > config.vocab_size:
    raise SystemExit(f"vocabulary of {sp.get_piece_size()} + {embedded.EXTRA_IDS} extra ids does not "
                     f"fit the model's {config.vocab_size} rows")
  sentinel0 = sp.get_piece_size() + embedded.EXTRA_IDS - 1  # seqio's <extra_id_0>
  tokens = [np.asarray(t, np.int32) for t in sp.encode(docs)]
  held = [np.asarray(t, np.int32) for t in sp.encode(held_out)]
  drills = [pair for name in drill_tasks if args.drills
            for pair in _drills(sp, range(args.drills_per_task
                                          * weights.get(synthetic_tasks.TASKS[name].family, 1)),
                                [name])]
  num_drills = int(round(args.drills * args.batch))
  print(f"pretrain: {len(drills)} drills ({num_drills} per batch); {len(docs)} documents, "
        f"{sum(map(len, tokens)) / len(tokens):.0f} tokens each, "
        f"vocabulary {sp.get_piece_size()} pieces ({time.time() - t0:.0f} s); device "
        f"{jax.devices()[0].platform}", flush=True)

  model = T5(config)
  params = (read_hf_checkpoint(os.path.join(args.init, "model"))[1] if args.init
            else init_params(config, args.seed))
  warmup = min(args.warmup, args.steps // 10)
  schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, warmup, args.steps, args.lr / 10)
  optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.01))
  opt_state = optimizer.init(params)

  def logits_of(params, batch):
    return model.apply({"params": params}, batch["encoder_input_tokens"],
                       batch["decoder_input_tokens"], deterministic=True)

  def loss_of(params, batch):
    return cross_entropy(logits_of(params, batch), batch["decoder_target_tokens"],
                         batch["decoder_loss_weights"])

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, opt_state, batch):
    (loss, metrics), grads = jax.value_and_grad(loss_of, has_aux=True)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, metrics

  evaluate = jax.jit(lambda p, b: loss_of(p, b)[1])

  @jax.jit
  def exact_match(params, batch):  # teacher-forced: every target token is the argmax
    right = logits_of(params, batch).argmax(-1) == batch["decoder_target_tokens"]
    return (right | (batch["decoder_loss_weights"] == 0)).all(-1)

  # Held-out drills, scored per family.
  first_held = args.drills_per_task * max(weights.values(), default=1)  # after every trained index
  held_indices = range(first_held, first_held + HELD_DRILLS)
  drill_batch = _batch(_drills(sp, held_indices), LENGTHS)
  drill_names = np.array([n for n in synthetic_tasks.SOURCE_TASKS for _ in held_indices])
  drill_families = np.array([synthetic_tasks.TASKS[n].family for n in drill_names])
  rng = np.random.default_rng([args.seed, 1])
  eval_batches = [make_batch(np.random.default_rng([args.seed, 2, i]), held, 256, LENGTHS, sentinel0)
                  for i in range(4)]
  history, train_losses = [], []
  for i in range(1, args.steps + 1):
    params, opt_state, metrics = step(params, opt_state,
                                      make_batch(rng, tokens, args.batch, LENGTHS, sentinel0,
                                                 drills, num_drills))
    train_losses.append(metrics["loss"])
    if i % args.log_every == 0 or i == args.steps:
      train_loss = float(np.mean(jax.device_get(train_losses)))
      train_losses = []
      evals = [jax.device_get(evaluate(params, b)) for b in eval_batches]
      right = np.asarray(exact_match(params, drill_batch))

      def accuracy(groups, keys):  # held-out drill exact match per family / per task
        return {k: round(float(right[groups == k].mean()), 3) for k in keys}

      record = {"step": i, "train_loss": round(train_loss, 4),
                "eval_loss": round(float(np.mean([e["loss"] for e in evals])), 4),
                "eval_token_accuracy": round(float(np.mean([e["token_accuracy"] for e in evals])), 4),
                "drill_accuracy": accuracy(drill_families, dict.fromkeys(drill_families)),
                "drilled_task_accuracy": accuracy(drill_names, drill_tasks if num_drills else ()),
                "elapsed_s": round(time.time() - t0, 1)}
      history.append(record)
      print(json.dumps(record), flush=True)

  write_hf_checkpoint(os.path.join(out, "model"), jax.device_get(params), config, overwrite=True)
  with open(os.path.join(out, "sentencepiece.model"), "wb") as f:
    f.write(sp_model)
  summary = {"command": "python tools/pretrain_embedded.py " + " ".join(argv or sys.argv[1:]),
             "args": vars(args) | {"out": None}, "device": jax.devices()[0].device_kind,
             "jax": jax.__version__, "wall_time_s": round(time.time() - t0, 1),
             "final": history[-1], "history": history, "model_config": config.name,
             "total_steps": args.steps + (previous.get("total_steps", previous["args"]["steps"])
                                          if previous else 0),
             "previous": {k: v for k, v in (previous or {}).items() if k != "history"} or None,
             "num_params": int(sum(x.size for x in jax.tree.leaves(params)))}
  with open(os.path.join(out, "pretrain.json"), "w") as f:
    json.dump(summary, f, indent=1)
  print(f"pretrain: wrote {out} in {summary['wall_time_s']:.0f} s; final eval loss "
        f"{history[-1]['eval_loss']}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
