"""`spot-jax demo` and `spot-jax study transfer` on the embedded universe with the shipped model.

The demo is a small SPoT study (spot_jax.study.transfer): one source task per family is tuned
into a prompt library (task embedding + source prompt), a held-out target is embedded, sources are
retrieved by similarity, and the target is tuned from every source, from the top-k weighted average
and from scratch; report.md with tables and figures lands in the output directory.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, Sequence

from spot_jax import embedded
from spot_jax.data import synthetic_tasks
from spot_jax.errors import SpotError
from spot_jax.study import tables
from spot_jax.study.runner import Protocol, Tuner
from spot_jax.study.transfer import Study, run_study

# One data-rich source per family, and a held-out target whose family has exactly one of them.
DEMO_SOURCES = ("synthetic_sent_opinion", "synthetic_nli_mixed", "synthetic_para_pair",
                "synthetic_qa_where", "synthetic_mc_usage", "synthetic_cola_order",
                "synthetic_wsd_sense")
DEMO_TARGET = "synthetic_sent_mood"
DEMO_PROTOCOL = Protocol(steps=200, eval_every=100, embedding_step=50, num_eval_examples=300)


def embedded_tuner(protocol: Protocol, model=None) -> Tuner:
  """A Tuner over the shipped model (or `model` = (config, params), to share one loaded copy)."""
  from spot_jax.checkpoints import load_checkpoint
  from tasks import synthetic
  config, frozen = model or load_checkpoint(embedded.model_dir())
  return Tuner(config, frozen, protocol, feature_lengths=synthetic.feature_lengths)


def check_tasks(names: Sequence[str]) -> None:
  unknown = [n for n in names if n not in synthetic_tasks.TASKS]
  if unknown:
    raise SpotError(f"unknown embedded task(s) {', '.join(unknown)}; known: "
                    f"{', '.join(synthetic_tasks.TASKS)}")


def study(out: str, *, sources: Sequence[str], targets: Sequence[str], seeds: Sequence[int],
          protocol: Protocol, source_steps: int, top_k: int = 3, metric: str = "token_cosine",
          mixture: bool = False, embedding_seeds: Sequence[int] = (0,),
          reverse: bool = False) -> dict:
  """Runs (or resumes) a transfer study on the embedded universe; returns the summary."""
  check_tasks([*sources, *targets])
  families = {name: spec.family for name, spec in synthetic_tasks.TASKS.items()}
  spec = Study(sources=tuple(sources), targets=tuple(targets), seeds=tuple(seeds),
               source_steps=source_steps, top_k=min(top_k, len(sources)), metric=metric,
               families=families, mixture=mixture, embedding_seeds=tuple(embedding_seeds))
  return run_study(embedded_tuner(protocol), spec, out, vocabulary="spot_jax/embedded",
                   reverse=reverse)


def run_demo(out: str = "spot_demo", *, target: Optional[str] = None,
             sources: Optional[Sequence[str]] = None, protocol: Protocol = DEMO_PROTOCOL,
             source_steps: int = 300) -> dict:
  start = time.perf_counter()
  sources, target = tuple(sources or DEMO_SOURCES), target or DEMO_TARGET
  check_tasks([*sources, target])
  print(f"spot-jax demo: SPoT on the embedded universe -> {out}/ (resumes if interrupted)",
        file=sys.stderr, flush=True)
  summary = study(out, sources=sources, targets=[target], seeds=[0],
                  protocol=protocol, source_steps=source_steps)
  rows = tables.retrieval_summary(summary["methods"])
  print(tables.markdown_table(["method", f"{target} score", "gain over baseline"],
                              [(r.method, r.mean, r.abs_gain) for r in rows]))
  ranking = ", ".join(f"{s} {v:.3f}" for s, v in summary["rankings"][target][:3])
  print(f"retrieved for {target}: {ranking}")
  print(f"report: {out}/report.md ({time.perf_counter() - start:.0f} s)")
  return summary

