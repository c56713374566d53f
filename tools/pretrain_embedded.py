"""Pretrains the embedded default's frozen T5 on the synthetic language and writes it, with a
SentencePiece vocabulary trained on the same text, into spot_jax/embedded/ (spot_jax.embedded.pretrain).

  python tools/pretrain_embedded.py                        # the shipped model (see its pretrain.json)
  python tools/pretrain_embedded.py --steps 300 --out /tmp/emb   # a quick check
  python tools/pretrain_embedded.py --init spot_jax/embedded --first-doc 50000   # continue training
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from spot_jax import embedded
from spot_jax.embedded import pretrain
from spot_jax.errors import SpotError


def _family_weights(parser: argparse.ArgumentParser, items: Sequence[str]) -> dict[str, int]:
  weights = {}
  for item in items:
    family, _, weight = item.partition("=")
    if not weight.isdigit() or int(weight) < 1:
      parser.error(f"--drill-weight wants FAMILY=W with a whole W >= 1, got {item!r}")
    weights[family] = int(weight)
  return weights


def main(argv=None) -> int:
  defaults = pretrain.PretrainConfig()
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=str(embedded.ROOT))
  parser.add_argument("--steps", type=int, default=defaults.steps)
  parser.add_argument("--batch", type=int, default=defaults.batch)
  parser.add_argument("--lr", type=float, default=defaults.lr)
  parser.add_argument("--warmup", type=int, default=defaults.warmup)
  parser.add_argument("--docs", type=int, default=defaults.docs)
  parser.add_argument("--vocab-size", type=int, default=defaults.vocab_size)
  parser.add_argument("--seed", type=int, default=defaults.seed)
  parser.add_argument("--log-every", type=int, default=defaults.log_every)
  parser.add_argument("--workers", type=int, default=os.cpu_count())
  parser.add_argument("--init", help="continue from a directory this tool wrote (its model and "
                      "vocabulary are kept); default: a fresh model and vocabulary")
  parser.add_argument("--first-doc", type=int, default=defaults.first_doc,
                      help="index of the first corpus document (fresh text when continuing)")
  parser.add_argument("--drills", type=float, default=defaults.drills,
                      help="share of each batch given to pretraining drills (0: corpus only)")
  parser.add_argument("--drills-per-task", type=int, default=defaults.drills_per_task)
  parser.add_argument("--drill-families", nargs="+", metavar="FAMILY",
                      help="train on the drills of these source families only (default: all)")
  parser.add_argument("--drill-tasks", nargs="+", metavar="TASK",
                      help="train on the drills of these source tasks only (synthetic_nli_location_v2 "
                      "...; with --drill-families, the tasks of those families among them)")
  parser.add_argument("--drill-weight", nargs="+", metavar="FAMILY=W", default=[],
                      help="give FAMILY W times the distinct drills per task (and so W times "
                      "its share of the drill rows), e.g. nli=3")
  args = parser.parse_args(argv)
  config = pretrain.PretrainConfig(
      steps=args.steps, batch=args.batch, lr=args.lr, warmup=args.warmup, docs=args.docs,
      vocab_size=args.vocab_size, seed=args.seed, log_every=args.log_every, workers=args.workers,
      init=args.init, first_doc=args.first_doc, drills=args.drills,
      drills_per_task=args.drills_per_task, drill_families=args.drill_families,
      drill_tasks=args.drill_tasks, drill_weights=_family_weights(parser, args.drill_weight))
  try:  # a bad drill family or task fails before any work
    run = pretrain.pretrain(config, log=lambda line: print(line, flush=True))
  except SpotError as e:
    parser.error(e.message)
  out = os.path.abspath(args.out)
  command = "python tools/pretrain_embedded.py " + " ".join(argv or sys.argv[1:])
  summary = pretrain.write(out, run, command=command, args=vars(args) | {"out": None})
  print(f"pretrain: wrote {out} in {summary['wall_time_s']:.0f} s; final eval loss "
        f"{run.history[-1]['eval_loss']}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
