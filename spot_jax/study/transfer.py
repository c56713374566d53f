"""SPoT's transferability study and targeted retrieval (paper §3) over one frozen model.

  1. source prompts + task embeddings: tune every source once; keep its early prompt (task
     embedding) and best prompt (source prompt) in a PromptLibrary (run "seed0")
  2. target task embeddings: tune each target for `embedding_step` steps with the same protocol.
     With several `embedding_seeds`, every source and target is also embedded from the init of
     each further seed (library runs "seed<s>", embedding only), and a source's similarity to a
     target is the mean over seeds of the similarity of their same-seed embeddings; ranking and
     the top-k weighted average are spot_jax.library.retrieval's
  3. the grid: every target tuned from every source prompt and from the default init (baseline),
     for each seed, as resumable cells (spot_jax.study.grid); plus retrieval's own cells: the
     top-k weighted average of source prompts (α_r = sim_r / Σ sim) per target and seed, and
     (Study.mixture) the top-k multi-task mixture: a prompt tuned on an examples-proportional
     seqio mixture of the top-k sources and the target initialises the target
  4. `summarize` computes the tables (relative error reduction, positive transfers, retrieval
     summary), the statistics (Pearson r, p, n and the r p < 0.05 needs) and the similarity
     matrix; `write_report` writes them (results.json, report.md) and draws the figures

Everything lands in OUT/: library/, cells/, results.json, report.md and the PNG figures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from typing import Mapping, Optional, Sequence

import numpy as np
from etils import epath

from spot_jax import validation
from spot_jax.errors import SpotError
from spot_jax.io import atomic_write
from spot_jax.library import retrieval
from spot_jax.library.store import ModelIdentity, PromptLibrary
from spot_jax.peft import load_prompt_file, save_prompt_file
from spot_jax.study import figures, grid, stats, tables
from spot_jax.study.runner import Tuner
from spot_jax.train import run_dir
from spot_jax.train.exports import params_checksum

# OUT/study.json: the settings every cell and library entry of OUT was computed with.
SETTINGS_FILE = "study.json"
WEIGHTED = "weighted_top{k}"
MIXTURE = "mixture_top{k}"


@dataclasses.dataclass(frozen=True)
class Study:
  sources: tuple[str, ...]
  targets: tuple[str, ...]
  seeds: tuple[int, ...] = (0,)
  source_steps: int = 300
  top_k: int = 3
  metric: str = "token_cosine"
  center: bool = True  # subtract the library's mean task embedding first (retrieval.rank_sources)
  mixture: bool = False  # also run the top-k multi-task mixture method
  mixture_steps: Optional[int] = None  # steps on the mixture (default: source_steps)
  families: Optional[Mapping[str, str]] = None  # task -> family, for figures and retrieval checks
  # Init seeds of the task embeddings (paper: one). Short tunings from one init are noisy
  # estimates of a task; averaging similarities over a few inits steadies the ranking.
  embedding_seeds: tuple[int, ...] = (0,)


def _say(message: str) -> None:
  print(f"spot-jax study: {message}", file=sys.stderr, flush=True)


def identity(tuner: Tuner, vocabulary: str) -> ModelIdentity:
  p = tuner.protocol.prompt_length
  return ModelIdentity(model=tuner.config.name, frozen_checksum=params_checksum(tuner.frozen),
                       vocabulary=vocabulary, prompt_length=p, embed_dim=tuner.config.emb_dim)


def run_name(seed: int) -> str:
  """The library run of a task tuned from the init of `seed`."""
  return f"seed{seed}"


def check_study(study: Study, protocol) -> None:
  """Refuses settings that could not produce a whole study, before the first run (a source run
  shorter than the embedding step would leave library entries without a task embedding)."""
  validation.check_positive({"steps": protocol.steps, "eval_every": protocol.eval_every,
                             "batch_size": protocol.batch_size,
                             "prompt_length": protocol.prompt_length,
                             "embedding_step": protocol.embedding_step,
                             "source_steps": study.source_steps, "top_k": study.top_k})
  validation.check_optional_positive({"mixture_steps": study.mixture_steps,
                                      "num_eval_examples": protocol.num_eval_examples})
  validation.check_finite({"learning_rate": protocol.learning_rate})
  if study.source_steps < protocol.embedding_step:
    raise SpotError(
        f"source_steps {study.source_steps} is below embedding_step {protocol.embedding_step}: "
        "source runs would end before their task embedding is taken; raise --source_steps or "
        "lower --embedding_step")
  for what, values in (("sources", study.sources), ("targets", study.targets),
                       ("seeds", study.seeds), ("embedding_seeds", study.embedding_seeds)):
    if not values or len(set(values)) != len(values):
      raise SpotError(f"{what} must be non-empty and without repeats, got {list(values)}")


def settings(tuner: Tuner, study: Study, model: ModelIdentity) -> dict:
  """What a cell's result depends on besides its target, source and seed: a study resumed with
  other settings would mix cells of two protocols, so run_study refuses it."""
  return {"protocol": dataclasses.asdict(tuner.protocol), "source_steps": study.source_steps,
          "mixture_steps": study.mixture_steps, "model": dataclasses.asdict(model)}


def build_library(tuner: Tuner, library: PromptLibrary, study: Study, model: ModelIdentity) -> None:
  """Tunes each source not yet in the library: its source run (run "seed0": source prompt + task
  embedding) and, for each further embedding seed s, a task embedding alone (run "seed<s>")."""
  for i, task in enumerate(study.sources):
    family = (study.families or {}).get(task)
    runs = {e.run for e in library.list(task)}
    if run_name(0) not in runs:
      _say(f"source {i + 1}/{len(study.sources)}: {task}")
      run = tuner.tune(task, seed=0, steps=study.source_steps, label="(source)")
      library.add(task, run_name(0), identity=model, source_prompt=run.source_prompt,
                  task_embedding=run.task_embedding,
                  metadata={"score": run.best_score, "step": run.best_step, "family": family})
    for seed in study.embedding_seeds:
      if seed != 0 and run_name(seed) not in runs:  # seed 0's embedding is the source run's
        run = tuner.tune(task, seed=seed, steps=tuner.protocol.embedding_step,
                         label=f"(embedding seed {seed})", validate=False)
        library.add(task, run_name(seed), identity=model, task_embedding=run.task_embedding,
                    metadata={"family": family, "seed": seed})
  if not library.index_is_current():  # a run killed between its last add and the index update
    library.reindex()


def target_embeddings(tuner: Tuner, study: Study,
                      out: epath.Path) -> dict[str, dict[str, np.ndarray]]:
  """Each target's task embeddings {run: [P, E]}: the prompt after `embedding_step` steps from
  the init of each embedding seed, cached in OUT/target_embeddings/<run>/<target>.npy."""
  embeddings = {}
  for target in study.targets:
    embeddings[target] = {}
    for seed in study.embedding_seeds:
      path = out / run_name(seed) / f"{target}.npy"
      if not path.exists():
        _say(f"embedding target {target} (seed {seed})")
        run = tuner.tune(target, seed=seed, steps=tuner.protocol.embedding_step,
                         label="(embedding)", validate=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_prompt_file(path, run.task_embedding)  # atomic: a killed run leaves no half file
      embeddings[target][run_name(seed)] = load_prompt_file(path)
  return embeddings


def retrieval_mixture(target: str, sources: Sequence[str]) -> str:
  """Registers (once) the examples-proportional seqio mixture of `sources` + `target`; its name."""
  from tasks import catalog  # the task registry; spot_jax.study itself only needs task names
  tasks = [*sources, target]
  name = f"spot_retrieval_{target}_{hashlib.sha1(' '.join(tasks).encode()).hexdigest()[:8]}"
  catalog.register_mixture(name, tasks)
  return name


def method_cell(method: str, ranking: Sequence[tuple[str, float]], k: int) -> str:
  """The grid source name of a retrieval method's cell: the method plus a digest of the top-k it
  used (tasks and similarities), so a study resumed with other sources or another metric runs
  that method again instead of reusing a cell built from a different retrieval."""
  top = " ".join(f"{task}:{score:.6f}" for task, score in ranking[:k])
  return f"{method}-{hashlib.sha1(top.encode()).hexdigest()[:8]}"


def run_study(tuner: Tuner, study: Study, out: str | epath.PathLike, *, vocabulary: str,
              reverse: bool = False) -> dict:
  """Runs (or resumes) the study into OUT; returns the summary. reverse: run the grid's cells
  last to first, for a second process on the same OUT (see grid.run_grid)."""
  out = epath.Path(out)
  check_study(study, tuner.protocol)
  model = identity(tuner, vocabulary)
  recorded = settings(tuner, study, model)
  run_dir.check_identity(out, recorded, file=SETTINGS_FILE,
                         fix="rerun with the settings it records")
  validation.check_writable_dir(out, setting="--out")
  out.mkdir(parents=True, exist_ok=True)
  run_dir.write_identity(out, recorded, file=SETTINGS_FILE)
  library = PromptLibrary(out / "library")
  build_library(tuner, library, study, model)
  queries = target_embeddings(tuner, study, out / "target_embeddings")
  rankings = {t: retrieval.rank_sources(library, q, study.metric, study.sources, study.center)
              for t, q in queries.items()}
  weighted, mixture = WEIGHTED.format(k=study.top_k), MIXTURE.format(k=study.top_k)
  methods = [weighted, mixture] if study.mixture else [weighted]
  retrieved = {(method_cell(m, rankings[t], study.top_k), t): m for m in methods for t in study.targets}

  def run_cell(cell: grid.Cell) -> dict:
    top = rankings[cell.target][:study.top_k]
    method = retrieved.get((cell.source, cell.target))
    if cell.is_baseline:
      init = None
    elif method == weighted:
      init = retrieval.weighted_prompt(library, top, study.top_k)
    elif method == mixture:
      name = retrieval_mixture(cell.target, [task for task, _ in top])
      init = tuner.tune(name, seed=cell.seed, steps=study.mixture_steps or study.source_steps,
                        label=f"(top-{study.top_k} mixture)", validate=False).final_prompt
    else:
      init = library.get(cell.source).source_prompt()
    run = tuner.tune(cell.target, seed=cell.seed, init=init, label=f"from {cell.source_name}")
    return {"score": run.best_score, "scores": run.scores, "seconds": run.seconds,
            **({"retrieved": top} if method else {})}

  cells = grid.cells(study.sources, study.targets, study.seeds)
  cells += [grid.Cell(t, source, seed) for (source, t) in retrieved for seed in study.seeds]
  cells.sort(key=lambda c: study.targets.index(c.target))  # target-major, as grid.cells orders
  results = grid.run_grid(cells, run_cell, out / "cells", reverse=reverse)
  summary = summarize(results, rankings, study, library, queries)
  write_report(out, summary, study)
  return summary


def summarize(results: Sequence[dict], rankings: Mapping[str, list[tuple[str, float]]],
              study: Study, library: PromptLibrary,
              queries: Mapping[str, Mapping[str, np.ndarray]]) -> dict:
  """Everything the study found, as JSON-ready data: the retrieval methods' per-target scores and
  their summary (Table 3), the rankings and the facts the paper checks of them, the transfer table
  (Table 6) and positive transfers (Table 7), similarity vs transfer with Pearson's r (Fig. 5) and
  the task similarity matrix (Fig. 4)."""
  transfer = [r for r in results if r["source"] in (*study.sources, grid.BASELINE)]
  k = study.top_k

  def cells_of(method: str) -> dict[str, str]:
    return {t: method_cell(method.format(k=k), rankings[t], k) for t in study.targets}

  mean = {key: value[0] for key, value in tables.mean_std(results).items()}
  methods = {"baseline": tables.seed_scores(results, {t: None for t in study.targets}),
             "top-1": tables.seed_scores(results, {t: rankings[t][0][0] for t in study.targets}),
             f"best of top-{k}": tables.seed_scores(results, {
                 t: max((s for s, _ in rankings[t][:k]), key=lambda s: mean[(s, t)])
                 for t in study.targets}),
             f"top-{k} weighted average": tables.seed_scores(results, cells_of(WEIGHTED))}
  if study.mixture:
    methods[f"top-{k} multi-task mixture"] = tables.seed_scores(results, cells_of(MIXTURE))
  methods["oracle"] = tables.oracle(transfer)
  families = study.families or {}
  top1_in_family = {t: families.get(rankings[t][0][0]) == families.get(t) for t in study.targets}
  pairs = {t: [(dict(rankings[t])[s],
                 tables.relative_error_reduction(mean[(s, t)], mean[(grid.BASELINE, t)]))
                for s in study.sources] for t in study.targets}
  sources, targets, rer = tables.transfer_table(transfer, study.sources, study.targets)
  names, sim = retrieval.task_similarities(library, queries, study.sources, study.metric,
                                           study.center)
  return {"methods": {m: {t: list(v) for t, v in s.items()} for m, s in methods.items()},
          "retrieval": [row._asdict() for row in tables.retrieval_summary(methods)],
          "rankings": dict(rankings), "top1_in_family": top1_in_family,
          "similarity_vs_transfer": pairs, "pearson": stats.similarity_vs_transfer(pairs),
          "transfer": {"sources": sources, "targets": targets,
                       "relative_error_reduction": rer.tolist()},
          "positive_transfers": [t._asdict() for t in tables.positive_transfers(transfer)],
          "task_similarity": {"names": names, "matrix": sim.tolist(), "families": {
              name: families.get(name.removesuffix(" (target)"), "?") for name in names}},
          "embedding_seeds": list(study.embedding_seeds)}


def write_report(out: epath.Path, summary: dict, study: Study) -> epath.Path:
  """results.json (the summary), report.md with Tables 3/6/7 analogues, and Figs. 3/4/5 analogues
  as PNGs beside it: only writes, everything shown was computed by `summarize`."""
  atomic_write(out / "results.json", json.dumps(summary, indent=1, default=float))
  transfer = summary["transfer"]
  figures.transfer_heatmap(transfer["sources"], transfer["targets"],
                           np.asarray(transfer["relative_error_reduction"], np.float64),
                           out / "transfer_heatmap.png")
  similar = summary["task_similarity"]
  figures.similarity_clustermap(similar["names"], np.asarray(similar["matrix"]),
                                out / "task_similarity.png", similar["families"])
  per_target = {t: tuple(map(list, zip(*pairs)))
                for t, pairs in summary["similarity_vs_transfer"].items()}
  figures.similarity_vs_transfer(per_target, summary["pearson"], out / "similarity_vs_transfer.png")

  lines = ["# SPoT study report", "",
           f"{len(study.sources)} sources × {len(study.targets)} targets × seeds {list(study.seeds)}; "
           f"similarity: {study.metric}, mean over task embeddings from init seeds "
           f"{list(study.embedding_seeds)}; top-k = {study.top_k}.", "",
           "## Retrieval (Table 3 analogue)", "",
           tables.markdown_table(["method", "mean score", "std over seeds", "abs. gain", "rel. gain %"],
                                 [(r["method"], r["mean"], r["std"], r["abs_gain"], r["rel_gain"])
                                  for r in summary["retrieval"]]),
           "", "## Ranked sources per target", ""]
  for t, ranking in summary["rankings"].items():
    top = ", ".join(f"{s} ({v:.3f})" for s, v in ranking[:5])
    lines.append(f"- **{t}**: {top}; top-1 in the target's family: "
                 f"{'yes' if summary['top1_in_family'][t] else 'no'}")
  positives = summary["positive_transfers"]
  rer = transfer["relative_error_reduction"]
  rer_rows = [(source, *row) for source, row in zip(transfer["sources"], rer)]
  lines += ["", "## Relative error reduction % over the baseline (Table 6 analogue)", "",
            tables.markdown_table(["source \\ target", *transfer["targets"]], rer_rows),
            "", "## Positive transfers (Table 7 analogue)", "",
            tables.markdown_table(["source", "target", "mean", "baseline", "gain"],
                                  [tuple(p.values()) for p in positives]) if positives else "none",
            "", "## Similarity vs transfer (Fig. 5 analogue): Pearson r, p", "",
            "One point per source; p < 0.05 over n points needs |r| of at least the last column.", "",
            tables.markdown_table(["target", "n", "r", "p", "r needed for p < 0.05"],
                                  [(t, c["n"], c["r"], c["p"], c["critical_r"])
                                   for t, c in summary["pearson"].items()], floatfmt=".3f"),
            "", "![transfer](transfer_heatmap.png)", "![similarity](task_similarity.png)",
            "![similarity vs transfer](similarity_vs_transfer.png)", ""]
  return atomic_write(out / "report.md", "\n".join(lines))
