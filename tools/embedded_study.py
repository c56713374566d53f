"""Issue-5 numbers on the embedded universe with the shipped model, as resumable grids of runs.

  python tools/embedded_study.py sources --out /tmp/embedded_study   # every source vs its trivial baseline
  python tools/embedded_study.py spot --out /tmp/embedded_study --seeds 0 1 2   # Table 1 analogue

`sources`: vanilla prompt tuning (sampled-vocab init) on each source task; validation score vs the
majority-class share of its validation split (0 for the regression task: Pearson/Spearman).
`spot`: a prompt tuned on the mixture of all sources (`synthetic_sources`) initialises each target;
compared with vanilla prompt tuning at the same target steps, per seed. Finished runs are kept in
OUT/<grid>/ and never recomputed (spot_jax.study.grid); a second process started with `--reverse`
on the same OUT works through the cells from the other end.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys

import numpy as np
from etils import epath

from spot_jax import embedded
from spot_jax.checkpoints import load_checkpoint
from spot_jax.data import synthetic, synthetic_tasks
from spot_jax.demo import embedded_tuner
from spot_jax.peft import load_prompt_file, save_prompt_file
from spot_jax.study import grid, runner, tables
from tasks import synthetic as synthetic_seqio


def _categories() -> list[set[str]]:
  lex = synthetic.lexicon()
  return [set(lex.people), {p for ps in lex.places for p in ps},
          {w for objs in lex.objects for pair in objs for w in pair}]


def trivial_baseline(task: str) -> float:
  """The score of guessing (x100): majority class for classification; for extractive tasks the
  expected accuracy of picking a random word of the answer's kind (person, place, object) from the
  input; 0 correlation for regressions."""
  spec = synthetic_tasks.TASKS[task]
  examples = list(synthetic_tasks.examples(task, "validation"))
  if spec.kind == "regression":
    return 0.0
  if spec.kind == "extractive":
    chances = []
    for e in examples:
      kind = next(c for c in _categories() if e["targets"] in c)
      chances.append(1.0 / len(kind & set(e["inputs"].split())))
    return 100.0 * float(np.mean(chances))
  counts = collections.Counter(e["targets"] for e in examples)
  return 100.0 * counts.most_common(1)[0][1] / sum(counts.values())


def run_sources(args) -> dict:
  t = embedded_tuner(runner.Protocol(steps=args.source_steps, eval_every=args.source_steps // 4))
  cells = [grid.Cell(task, None, 0) for task in synthetic_tasks.SOURCE_TASKS]

  def run_cell(cell):
    run = t.tune(cell.target, seed=cell.seed)
    return {"score": run.best_score, "scores": run.scores, "trivial": trivial_baseline(cell.target),
            "family": synthetic_tasks.TASKS[cell.target].family, "seconds": run.seconds}

  results = grid.run_grid(cells, run_cell, epath.Path(args.out) / "sources", reverse=args.reverse)
  rows = [(r["target"], r["family"], r["trivial"], r["score"], r["score"] - r["trivial"])
          for r in results]
  print(tables.markdown_table(["source task", "family", "trivial", "prompt tuning", "margin"], rows))
  return {"sources": rows}


def run_spot(args) -> dict:
  protocol = runner.Protocol(steps=args.target_steps, eval_every=args.target_steps // 3)
  model = load_checkpoint(embedded.model_dir())
  t = embedded_tuner(protocol, model)
  out = epath.Path(args.out)
  source_file = out / "spot" / "mixture_source_prompt.npy"
  if not source_file.exists():  # validated on 100 examples of each source, 3 times
    mixture = embedded_tuner(runner.Protocol(steps=args.mixture_steps,
                                             eval_every=args.mixture_steps // 3,
                                             num_eval_examples=100), model)
    source = mixture.tune(synthetic_seqio.SOURCES_MIXTURE, seed=0)
    save_prompt_file(source_file, source.source_prompt)
  source_prompt = load_prompt_file(source_file)
  cells = grid.cells([synthetic_seqio.SOURCES_MIXTURE], synthetic_tasks.TARGET_TASKS, args.seeds)

  def run_cell(cell):
    init = None if cell.is_baseline else source_prompt
    run = t.tune(cell.target, seed=cell.seed, init=init, label=cell.source_name)
    return {"score": run.best_score, "scores": run.scores, "seconds": run.seconds}

  results = grid.run_grid(cells, run_cell, out / "spot" / "cells", reverse=args.reverse)
  stats = tables.mean_std(results)
  rows, wins = [], 0
  for target in synthetic_tasks.TARGET_TASKS:
    base = stats[(grid.BASELINE, target)]
    spot = stats[(synthetic_seqio.SOURCES_MIXTURE, target)]
    wins += spot[0] > base[0]
    rows.append((target, f"{base[0]:.1f} ± {base[1]:.1f}", f"{spot[0]:.1f} ± {spot[1]:.1f}",
                 spot[0] - base[0]))
  print(tables.markdown_table(["target", "prompt tuning", "SPoT (mixture source)", "gain"], rows))
  print(f"SPoT beats prompt tuning on {wins}/{len(rows)} targets (mean over seeds {args.seeds})")
  return {"spot": rows, "wins": wins}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("what", choices=("sources", "spot"))
  parser.add_argument("--out", default="/tmp/embedded_study")
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--source-steps", type=int, default=600)
  parser.add_argument("--mixture-steps", type=int, default=1500)
  parser.add_argument("--target-steps", type=int, default=300)
  parser.add_argument("--reverse", action="store_true",
                      help="run the cells last to first: a second process on the same OUT")
  args = parser.parse_args(argv)
  summary = run_sources(args) if args.what == "sources" else run_spot(args)
  (epath.Path(args.out) / f"{args.what}_summary.json").write_text(json.dumps(summary, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
