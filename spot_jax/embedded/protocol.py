"""The embedded protocol: how a prompt is tuned on the shipped model, in one place.

SPoT's protocol scaled to a 1.1M-parameter model: P=20 sampled-vocabulary rows, Adam lr 0.1 (more
reliable than Adafactor 0.3 at this scale), batch 32, no dropout; the task embedding is the prompt
after a few steps (the paper's 10K), the source prompt the best validated one.

Two readers, one set of numbers:
  * `spot-jax demo`, `spot-jax study transfer` / `embed` and tools/embedded_study.py tune in process
    with a study Protocol built here (study_protocol, DEMO_PROTOCOL, DEMO_SOURCE_STEPS);
  * `spot-jax train --gin_file=embedded/*.gin` binds gin constants `EMBEDDED_*` (gin_constants(),
    registered by spot_jax.configurables): source.gin is a SOURCE_RUN, target.gin a TARGET_RUN.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from spot_jax.embedded import tasks
from spot_jax.peft.trees import Method
from spot_jax.study.crossfit import Presets, Universe, Upstream
from spot_jax.study.runner import Protocol
from spot_jax.train.meta import MetaConfig

PROMPT_LENGTH = 20       # paper: 100
LEARNING_RATE = 0.1      # Adam; paper: Adafactor 0.3
BATCH_SIZE = 32          # paper: 32
DROPOUT_RATE = 0.0       # paper: 0.1
VOCAB_LIMIT = 279        # sampled-vocab init rows: the word pieces (above: sentinels, padding)
LOG_EVERY = 50           # train-loss lines of a gin run


@dataclasses.dataclass(frozen=True)
class Run:
  """How long one kind of `spot-jax train` run tunes, and when it looks."""
  steps: int
  eval_every: int          # also the checkpoint period
  embedding_step: int      # task embedding = prompt after this many steps (paper: 10K)
  num_eval_examples: int


SOURCE_RUN = Run(steps=1000, eval_every=250, embedding_step=100, num_eval_examples=500)
TARGET_RUN = dataclasses.replace(SOURCE_RUN, steps=300, eval_every=100, num_eval_examples=300)


def study_protocol(steps: int = 200, *, eval_every: Optional[int] = None, embedding_step: int = 50,
                   num_eval_examples: Optional[int] = 300) -> Protocol:
  """The study Protocol of an in-process run on the shipped model: validated at the middle and
  the end unless `eval_every`; num_eval_examples=None validates on the whole split. The defaults
  are the demo's (and `spot-jax study transfer`'s) target runs."""
  return Protocol(steps=steps, eval_every=max(1, steps // 2) if eval_every is None else eval_every,
                  batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, prompt_length=PROMPT_LENGTH,
                  embedding_step=embedding_step, num_eval_examples=num_eval_examples,
                  vocab_limit=VOCAB_LIMIT)


DEMO_PROTOCOL = study_protocol()
DEMO_SOURCE_STEPS = 300  # source prompts of the demo's library


def gin_constants() -> dict[str, object]:
  """The values gin_configs/embedded/*.gin bind, by gin constant name. Prefixed EMBEDDED_ because
  gin matches a constant by its last name component, which must not shadow a macro (PROMPT_LENGTH)."""
  return {
      "EMBEDDED_PROMPT_LENGTH": PROMPT_LENGTH, "EMBEDDED_LEARNING_RATE": LEARNING_RATE,
      "EMBEDDED_BATCH_SIZE": BATCH_SIZE, "EMBEDDED_DROPOUT_RATE": DROPOUT_RATE,
      "EMBEDDED_VOCAB_LIMIT": VOCAB_LIMIT, "EMBEDDED_LOG_EVERY": LOG_EVERY,
      "EMBEDDED_FEATURE_LENGTHS": dict(tasks.FEATURE_LENGTHS),
      "EMBEDDED_SOURCE_STEPS": SOURCE_RUN.steps, "EMBEDDED_SOURCE_EVAL_EVERY": SOURCE_RUN.eval_every,
      "EMBEDDED_SOURCE_EVAL_EXAMPLES": SOURCE_RUN.num_eval_examples,
      "EMBEDDED_TARGET_STEPS": TARGET_RUN.steps, "EMBEDDED_TARGET_EVAL_EVERY": TARGET_RUN.eval_every,
      "EMBEDDED_TARGET_EVAL_EXAMPLES": TARGET_RUN.num_eval_examples,
      "EMBEDDED_EMBEDDING_STEP": SOURCE_RUN.embedding_step}


# ------------------------------------------------------------ the CrossFit study on the shipped model
# Tunable ratios to the 1.08M frozen parameters near the seed's where a size is free: adapters
# with bottleneck 20 hold 3.9 % (seed: 4 % on BART-base); the prompt keeps SPoT's P = 20 (0.24 %;
# the seed's 100 x 768 is 0.05 % of BART-base, which would be 4 rows here). Learning rates: AdamW.
CROSSFIT_METHODS = {
    "prompt": Method("prompt", prompt_length=PROMPT_LENGTH, vocab_limit=VOCAB_LIMIT),
    "prefix": Method("prefix", prefix_length=10, vocab_limit=VOCAB_LIMIT),
    "adapter": Method("adapter", bottleneck=20),
    "full": Method("full"),
}
# The three rates of best mean dev score over the probe's 9 (1 ... 1e-4; targets sent_mood and nli_cb,
# seed 13, batch 8, 300 steps; docs/crossfit.md), best first.
CROSSFIT_LEARNING_RATES = {"prompt": (1.0, 0.1, 0.03), "prefix": (0.03, 0.3, 0.1),
                           "adapter": (3e-4, 1e-4, 1e-3), "full": (1e-3, 1e-4, 3e-4)}
# Upstream (not tuned): MTL and MAML's outer AdamW at a probe rate; MAML's inner SGD step larger,
# as SGD has no per-parameter normalisation.
CROSSFIT_UPSTREAM_LEARNING_RATES = {"prompt": 0.1, "prefix": 0.03, "adapter": 3e-4, "full": 3e-4}
CROSSFIT_INNER_LEARNING_RATES = {"prompt": 1.0, "prefix": 0.3, "adapter": 0.01, "full": 0.01}
CROSSFIT_META = {m: MetaConfig("maml", inner_lr=CROSSFIT_INNER_LEARNING_RATES[m],
                               outer_lr=CROSSFIT_UPSTREAM_LEARNING_RATES[m], inner_batch_size=8,
                               meta_batch_size=4) for m in CROSSFIT_METHODS}


def crossfit_universe() -> Universe:
  """The embedded universe in CrossFit form (spot_jax.embedded.crossfit): 7 classification targets,
  11 classification sources upstream (k-shot, every seed). MTL trains on the upstream tasks' k-shot
  train sets; MTL and MAML keep the tree best on the seed-13 tasks' k-shot dev sets (CrossFit's MTL
  trains on train + dev and selects nothing; the embedded universe has no separate dev tasks)."""
  from spot_jax.embedded import crossfit
  return Universe(name="embedded", targets=crossfit.TARGETS, target_task=crossfit.target_name,
                  upstream_tasks=tuple(crossfit.UPSTREAM), upstream_mixture=crossfit.MIXTURE,
                  feature_lengths=crossfit.feature_lengths, seeds=crossfit.SEEDS,
                  dev_mixture=crossfit.DEV_MIXTURE)


CROSSFIT_PRESETS = Presets(
    methods=CROSSFIT_METHODS, learning_rates=CROSSFIT_LEARNING_RATES,
    upstream=Upstream(learning_rates=CROSSFIT_UPSTREAM_LEARNING_RATES, meta=CROSSFIT_META,
                      batch_size=BATCH_SIZE))
