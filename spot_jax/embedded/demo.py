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

from spot_jax import embedded, validation
from spot_jax.embedded import protocol as embedded_protocol
from spot_jax.embedded import tasks as synthetic_tasks
from spot_jax.embedded.tasks import task_name
from spot_jax.study import tables
from spot_jax.study.runner import Protocol, Tuner
from spot_jax.study.transfer import Study, run_study

# One data-rich source per family, and a held-out target whose family has exactly one of them.
DEMO_SOURCES = tuple(task_name(t) for t in ("sent_opinion", "nli_mixed", "para_pair", "qa_where",
                                            "mc_usage", "cola_order", "wsd_sense"))
DEMO_TARGET = task_name("sent_mood")


def embedded_tuner(protocol: Protocol, model=None) -> Tuner:
  """A Tuner over the shipped model (or `model` = (config, params), to share one loaded copy)."""
  from spot_jax.checkpoints import load_checkpoint
  from spot_jax.embedded import seqio_tasks  # registers the tasks the tuner reads
  config, frozen = model or load_checkpoint(embedded.model_dir())
  return Tuner(config, frozen, protocol, feature_lengths=seqio_tasks.feature_lengths)


def study(out: str, *, sources: Sequence[str], targets: Sequence[str], seeds: Sequence[int],
          protocol: Protocol, source_steps: int, top_k: int = 3, metric: str = "token_cosine",
          mixture: bool = False, embedding_seeds: Sequence[int] = (0,),
          reverse: bool = False) -> dict:
  """Runs (or resumes) a transfer study on the embedded universe; returns the summary. Task names
  may omit their version (synthetic_sent_mood); results carry the registered names."""
  sources, targets = synthetic_tasks.resolve(sources), synthetic_tasks.resolve(targets)
  families = {name: spec.family for name, spec in synthetic_tasks.TASKS.items()}
  spec = Study(sources=sources, targets=targets, seeds=tuple(seeds),
               source_steps=source_steps, top_k=min(top_k, len(sources)), metric=metric,
               families=families, mixture=mixture, embedding_seeds=tuple(embedding_seeds))
  return run_study(embedded_tuner(protocol), spec, out, vocabulary=embedded.VOCABULARY_ID,
                   reverse=reverse)


def run_demo(out: str = "spot_demo", *, target: Optional[str] = None,
             sources: Optional[Sequence[str]] = None,
             protocol: Protocol = embedded_protocol.DEMO_PROTOCOL,
             source_steps: int = embedded_protocol.DEMO_SOURCE_STEPS) -> dict:
  start = time.perf_counter()
  sources = synthetic_tasks.resolve(sources or DEMO_SOURCES)
  (target,) = synthetic_tasks.resolve([target or DEMO_TARGET])
  validation.check_writable_dir(out, setting="--out")
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
