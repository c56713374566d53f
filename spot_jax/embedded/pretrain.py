"""Pretraining of the embedded default's frozen T5 on the synthetic language, with a SentencePiece
vocabulary trained on the same text (tools/pretrain_embedded.py is its command line).

Objectives: T5 span corruption (15 % noise, mean span 3, sentinels <extra_id_k>) and prefix LM (a
document cut at a random point; predict the continuation), half each, on the synthetic corpus
(language.corpus_document); and, for a `drills` share of each batch, supervised pretraining drills
(tasks.drill: source generators with their own label names, train split, another seed), like T5
1.0's multi-task mixture. No target task is ever trained on. Runs on CPU or GPU (JAX picks the
device); everything is seeded, so a seed gives the same batches.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import multiprocessing
import os
import time
from typing import Callable, Mapping, Optional, Sequence

import jax
import numpy as np
import optax
import sentencepiece as spm

from spot_jax import embedded
from spot_jax.checkpoints.hf import read_hf_checkpoint, write_hf_checkpoint
from spot_jax.embedded import language
from spot_jax.embedded import tasks as synthetic_tasks
from spot_jax.errors import SpotError
from spot_jax.model.config import T5Config, get_config
from spot_jax.model.params import init_params
from spot_jax.model.t5 import T5
from spot_jax.train.step import cross_entropy

PAD, EOS = 0, 1
LENGTHS = (96, 32)  # encoder inputs, decoder targets (word-level tokens; documents are ~100)
HELD_DRILLS = 32  # held-out drills per source task, scored at every log step
HELD_OUT_FIRST_DOC = 10_000_000  # held-out corpus documents start here: never a training document

Pair = tuple[list[int], list[int]]  # token ids: (inputs, targets)


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
  """One pretraining run (the shipped model's values: spot_jax/embedded/pretrain.json)."""
  steps: int = 4_000
  batch: int = 64             # rows per step
  lr: float = 3e-3            # AdamW peak; cosine decay to lr / 10
  warmup: int = 300           # linear warmup steps (at most steps / 10)
  docs: int = 50_000          # corpus documents trained on (the vocabulary sees the first 20K)
  vocab_size: int = 512       # SentencePiece pieces of a fresh vocabulary
  seed: int = 0               # corpus, initial model and batch order
  log_every: int = 250        # steps between held-out evaluations
  workers: int = 1            # processes that generate the corpus
  init: Optional[str] = None  # a directory this module wrote: continue its model and vocabulary
  first_doc: int = 0          # index of the first corpus document (fresh text when continuing)
  drills: float = 0.0         # share of each batch given to drills (0: corpus only)
  drills_per_task: int = 10_000
  drill_families: Optional[Sequence[str]] = None  # None: every source family
  drill_tasks: Optional[Sequence[str]] = None     # None: every source task (of drill_families)
  drill_weights: Mapping[str, int] = dataclasses.field(default_factory=dict)  # family -> W


@dataclasses.dataclass
class Pretrained:
  """A finished run: the model, its vocabulary and the log of held-out scores."""
  config: PretrainConfig
  params: dict
  vocabulary: bytes  # a serialized SentencePiece model
  model_config: T5Config
  history: list[dict]
  previous: Optional[dict]  # the pretrain.json of the run continued (config.init)
  started: float            # time.time() at the start


def drill_tasks(config: PretrainConfig) -> list[str]:
  """The source tasks whose drills the run trains on; a SpotError names a bad family or task."""
  families = {synthetic_tasks.TASKS[n].family for n in synthetic_tasks.SOURCE_TASKS}
  unknown = (set(config.drill_families or ()) | set(config.drill_weights)) - families
  if unknown:
    raise SpotError(f"unknown drill families {sorted(unknown)}; choose from {sorted(families)}")
  chosen = synthetic_tasks.resolve(config.drill_tasks or synthetic_tasks.SOURCE_TASKS)
  not_sources = set(chosen) - set(synthetic_tasks.SOURCE_TASKS)
  if not_sources:
    raise SpotError(f"drill tasks {sorted(not_sources)} are not source tasks; choose from "
                    f"{', '.join(synthetic_tasks.SOURCE_TASKS)}")
  wanted = set(config.drill_families or families)
  return [n for n in chosen if synthetic_tasks.TASKS[n].family in wanted]


def documents(seed: int, start: int, count: int, workers: int) -> list[str]:
  """Corpus documents start .. start+count-1 of the corpus drawn from `seed`."""
  with multiprocessing.Pool(workers) as pool:
    return pool.map(functools.partial(language.corpus_document, seed), range(start, start + count),
                    chunksize=512)


def glossary() -> list[str]:
  """Every word the tasks use (prefixes, label words), 20 a line: the tokenizer must know them
  even where the corpus never says them. Only the word set is used, never an example."""
  words = set(language.lexicon().words())
  for name in synthetic_tasks.TASKS:
    for ex in synthetic_tasks.examples(name, "train", limit=50):
      words.update(ex["inputs"].split() + ex["targets"].split())
  words = sorted(words)
  return [" ".join(words[i:i + 20]) for i in range(0, len(words), 20)]


def train_vocabulary(docs: list[str], vocab_size: int) -> bytes:
  """A word-level SentencePiece model of `docs` + the glossary, with T5's pad 0 / EOS 1 / UNK 2."""
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(docs + glossary()), model_writer=model, vocab_size=vocab_size,
      model_type="word", pad_id=PAD, eos_id=EOS, unk_id=2, bos_id=-1, hard_vocab_limit=False,
      character_coverage=1.0, shuffle_input_sentence=False, num_threads=1, minloglevel=2)
  return model.getvalue()


def _partition(rng: np.random.Generator, total: int, parts: int) -> np.ndarray:
  """`total` split into `parts` positive lengths at random."""
  cuts = np.sort(rng.choice(np.arange(1, total), parts - 1, replace=False))
  return np.diff(np.r_[0, cuts, total])


def span_corruption(rng: np.random.Generator, tokens: np.ndarray, sentinel0: int,
                    noise: float = 0.15, mean_span: float = 3.0) -> Pair:
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


def prefix_lm(rng: np.random.Generator, tokens: np.ndarray, max_target: int) -> Pair:
  """The document cut at a random point in its middle half; the target continues it."""
  cut = int(rng.integers(len(tokens) // 4, 3 * len(tokens) // 4 + 1))
  return list(tokens[:cut]), list(tokens[cut:cut + max_target])


def tokenized_drills(sp: spm.SentencePieceProcessor, indices: range,
                     tasks: Sequence[str] = synthetic_tasks.SOURCE_TASKS) -> list[Pair]:
  """Drills `indices` of each of `tasks` (task-major), tokenized."""
  pairs = [synthetic_tasks.drill(name, i) for name in tasks for i in indices]
  return list(zip(sp.encode([p["inputs"] for p in pairs]), sp.encode([p["targets"] for p in pairs])))


def to_batch(pairs: Sequence[Pair], lengths: tuple[int, int]) -> dict[str, np.ndarray]:
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
               sentinel0: int, drills: Sequence[Pair] = (),
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
  return to_batch(pairs, lengths)


def _model_functions(model: T5, optimizer: optax.GradientTransformation):
  """Jitted (train step, eval metrics, teacher-forced exact match per row)."""

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

  return step, evaluate, exact_match


def pretrain(config: PretrainConfig, log: Callable[[str], None] = print) -> Pretrained:
  """Trains the model (fresh, or continuing `config.init`); logs one JSON record per log step:
  train/eval loss, eval token accuracy, held-out drill exact match per family and drilled task."""
  trained_tasks = drill_tasks(config)
  t0 = time.time()
  docs = documents(config.seed, config.first_doc, config.docs, config.workers)
  held_out = documents(config.seed, HELD_OUT_FIRST_DOC, 1_000, config.workers)
  if config.init:
    with open(os.path.join(config.init, "sentencepiece.model"), "rb") as f:
      sp_model = f.read()
    with open(os.path.join(config.init, "pretrain.json")) as f:
      previous = json.load(f)
  else:
    sp_model, previous = train_vocabulary(docs[:20_000], config.vocab_size), None
  sp = spm.SentencePieceProcessor(model_proto=sp_model)
  model_config = get_config(embedded.MODEL_CONFIG)
  if sp.get_piece_size() + embedded.EXTRA_IDS > model_config.vocab_size:
    raise SpotError(f"vocabulary of {sp.get_piece_size()} + {embedded.EXTRA_IDS} extra ids does not "
                    f"fit the model's {model_config.vocab_size} rows; lower the vocabulary size")
  sentinel0 = sp.get_piece_size() + embedded.EXTRA_IDS - 1  # seqio's <extra_id_0>
  tokens = [np.asarray(t, np.int32) for t in sp.encode(docs)]
  held = [np.asarray(t, np.int32) for t in sp.encode(held_out)]
  family_of = {name: spec.family for name, spec in synthetic_tasks.TASKS.items()}
  drills = [pair for name in trained_tasks if config.drills
            for pair in tokenized_drills(sp, range(config.drills_per_task
                                                   * config.drill_weights.get(family_of[name], 1)),
                                         [name])]
  num_drills = int(round(config.drills * config.batch))
  log(f"pretrain: {len(drills)} drills ({num_drills} per batch); {len(docs)} documents, "
      f"{sum(map(len, tokens)) / len(tokens):.0f} tokens each, "
      f"vocabulary {sp.get_piece_size()} pieces ({time.time() - t0:.0f} s); device "
      f"{jax.devices()[0].platform}")

  model = T5(model_config)
  params = (read_hf_checkpoint(os.path.join(config.init, "model"))[1] if config.init
            else init_params(model_config, config.seed))
  warmup = min(config.warmup, config.steps // 10)
  schedule = optax.warmup_cosine_decay_schedule(0.0, config.lr, warmup, config.steps, config.lr / 10)
  optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.01))
  opt_state = optimizer.init(params)
  step, evaluate, exact_match = _model_functions(model, optimizer)

  # Held-out drills (after every trained index), scored per family and per drilled task.
  first_held = config.drills_per_task * max(config.drill_weights.values(), default=1)
  held_indices = range(first_held, first_held + HELD_DRILLS)
  drill_batch = to_batch(tokenized_drills(sp, held_indices), LENGTHS)
  drill_names = np.array([n for n in synthetic_tasks.SOURCE_TASKS for _ in held_indices])
  drill_families = np.array([family_of[n] for n in drill_names])
  rng = np.random.default_rng([config.seed, 1])
  eval_batches = [make_batch(np.random.default_rng([config.seed, 2, i]), held, 256, LENGTHS,
                             sentinel0) for i in range(4)]
  history, train_losses = [], []
  for i in range(1, config.steps + 1):
    params, opt_state, metrics = step(params, opt_state,
                                      make_batch(rng, tokens, config.batch, LENGTHS, sentinel0,
                                                 drills, num_drills))
    train_losses.append(metrics["loss"])
    if i % config.log_every == 0 or i == config.steps:
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
                "drilled_task_accuracy": accuracy(drill_names, trained_tasks if num_drills else ()),
                "elapsed_s": round(time.time() - t0, 1)}
      history.append(record)
      log(json.dumps(record))
  return Pretrained(config, jax.device_get(params), sp_model, model_config, history, previous, t0)


def write(out: str, run: Pretrained, *, command: str, args: Optional[Mapping] = None) -> dict:
  """Writes OUT/model (HF layout), OUT/sentencepiece.model and OUT/pretrain.json (the record:
  command, `args` (default: the run's config), device, wall time, history, total steps over
  continued runs); returns the record."""
  os.makedirs(out, exist_ok=True)
  write_hf_checkpoint(os.path.join(out, "model"), run.params, run.model_config, overwrite=True)
  with open(os.path.join(out, "sentencepiece.model"), "wb") as f:
    f.write(run.vocabulary)
  previous = run.previous
  summary = {"command": command,
             "args": dict(dataclasses.asdict(run.config) if args is None else args),
             "device": jax.devices()[0].device_kind, "jax": jax.__version__,
             "wall_time_s": round(time.time() - run.started, 1), "final": run.history[-1],
             "history": run.history, "model_config": run.model_config.name,
             "total_steps": run.config.steps + (previous.get("total_steps", previous["args"]["steps"])
                                                if previous else 0),
             "previous": {k: v for k, v in (previous or {}).items() if k != "history"} or None,
             "num_params": int(sum(x.size for x in jax.tree.leaves(run.params)))}
  with open(os.path.join(out, "pretrain.json"), "w") as f:
    json.dump(summary, f, indent=1)
  return summary
