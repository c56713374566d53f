"""What the embedded universe's numbers are compared with: trivial guessing, and vanilla prompt
tuning against generic SPoT (tools/embedded_study.py), as resumable grids of runs.

  * source_margins: vanilla prompt tuning (sampled-vocab init) on each source task; validation
    score vs the task's trivial baseline (majority class; a random word of the answer's kind for
    extractive tasks; 0 for the regression, scored by Pearson/Spearman).
  * generic_spot: a prompt tuned on the mixture of all sources (tasks.SOURCES_MIXTURE) initialises
    each target; compared with vanilla prompt tuning at the same target steps, per seed (SPoT's
    Table 1 analogue).
Finished runs are kept under OUT and never recomputed (spot_jax.study.grid); `reverse` works
through the cells from the other end, for a second process on the same OUT.
"""

from __future__ import annotations

import collections
from typing import Sequence

import numpy as np
from etils import epath

from spot_jax import embedded
from spot_jax.checkpoints import load_checkpoint
from spot_jax.embedded import language
from spot_jax.embedded import protocol as embedded_protocol
from spot_jax.embedded import tasks as synthetic_tasks
from spot_jax.embedded.demo import embedded_tuner
from spot_jax.peft import load_prompt_file, save_prompt_file
from spot_jax.study import grid, tables


def _categories() -> list[set[str]]:
  lex = language.lexicon()
  return [set(lex.people), {p for ps in lex.places for p in ps},
          {w for objs in lex.objects for pair in objs for w in pair}]


def trivial_baseline(task: str) -> float:
  """The score of guessing (x100): majority class for classification; for extractive tasks the
  expected accuracy of picking a random word of the answer's kind (person, place, object) from the
  input; 0 correlation for regressions."""
  spec = synthetic_tasks.TASKS[task]
  if spec.kind == "regression":
    return 0.0
  examples = list(synthetic_tasks.examples(task, "validation"))
  if spec.kind == "extractive":
    categories, chances = _categories(), []
    for e in examples:
      kind = next(c for c in categories if e["targets"] in c)
      chances.append(1.0 / len(kind & set(e["inputs"].split())))
    return 100.0 * float(np.mean(chances))
  counts = collections.Counter(e["targets"] for e in examples)
  return 100.0 * counts.most_common(1)[0][1] / sum(counts.values())


def source_margins(out: str, *, steps: int, reverse: bool = False) -> dict:
  """Every source task tuned for `steps` steps vs its trivial baseline; prints the table."""
  t = embedded_tuner(embedded_protocol.study_protocol(
      steps, eval_every=steps // 4, embedding_step=embedded_protocol.SOURCE_RUN.embedding_step,
      num_eval_examples=None))
  cells = [grid.Cell(task, None, 0) for task in synthetic_tasks.SOURCE_TASKS]

  def run_cell(cell):
    run = t.tune(cell.target, seed=cell.seed)
    return {"score": run.best_score, "scores": run.scores, "trivial": trivial_baseline(cell.target),
            "family": synthetic_tasks.TASKS[cell.target].family, "seconds": run.seconds}

  results = grid.run_grid(cells, run_cell, epath.Path(out) / "sources", reverse=reverse)
  rows = [(r["target"], r["family"], r["trivial"], r["score"], r["score"] - r["trivial"])
          for r in results]
  print(tables.markdown_table(["source task", "family", "trivial", "prompt tuning", "margin"], rows))
  return {"sources": rows}


def generic_spot(out: str, *, seeds: Sequence[int], target_steps: int, mixture_steps: int,
                 reverse: bool = False) -> dict:
  """Each target from the mixture source prompt vs from scratch, per seed; prints the table."""
  mixture_name = synthetic_tasks.SOURCES_MIXTURE
  embedding_step = embedded_protocol.SOURCE_RUN.embedding_step
  model = load_checkpoint(embedded.model_dir())
  t = embedded_tuner(embedded_protocol.study_protocol(
      target_steps, eval_every=target_steps // 3, embedding_step=embedding_step,
      num_eval_examples=None), model)
  source_file = epath.Path(out) / "spot" / "mixture_source_prompt.npy"
  if not source_file.exists():  # validated on 100 examples of each source, 3 times
    mixture = embedded_tuner(embedded_protocol.study_protocol(
        mixture_steps, eval_every=mixture_steps // 3, embedding_step=embedding_step,
        num_eval_examples=100), model)
    save_prompt_file(source_file, mixture.tune(mixture_name, seed=0).source_prompt)
  source_prompt = load_prompt_file(source_file)
  cells = grid.cells([mixture_name], synthetic_tasks.TARGET_TASKS, seeds)

  def run_cell(cell):
    init = None if cell.is_baseline else source_prompt
    run = t.tune(cell.target, seed=cell.seed, init=init, label=cell.source_name)
    return {"score": run.best_score, "scores": run.scores, "seconds": run.seconds}

  results = grid.run_grid(cells, run_cell, epath.Path(out) / "spot" / "cells", reverse=reverse)
  stats = tables.mean_std(results)
  rows, wins = [], 0
  for target in synthetic_tasks.TARGET_TASKS:
    base = stats[(grid.BASELINE, target)]
    spot = stats[(mixture_name, target)]
    wins += spot[0] > base[0]
    rows.append((target, f"{base[0]:.1f} ± {base[1]:.1f}", f"{spot[0]:.1f} ± {spot[1]:.1f}",
                 spot[0] - base[0]))
  print(tables.markdown_table(["target", "prompt tuning", "SPoT (mixture source)", "gain"], rows))
  print(f"SPoT beats prompt tuning on {wins}/{len(rows)} targets (mean over seeds {list(seeds)})")
  return {"spot": rows, "wins": wins}
