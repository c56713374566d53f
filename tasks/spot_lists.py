"""SPoT's task lists (paper Table 2) as registered seqio task names, and the `spot_all` mixture.

Table 2 names 16 source tasks (C4 + 15 data-rich supervised tasks) and 10 low-resource target tasks
(< 10K training examples), each list sorted by training set size. PAPER_TO_TASK maps the paper's
names to ours; `resolve` checks that they are registered, since some families are registered by
modules that may not be imported. Choices where the paper's name is ambiguous:
  * RTE (a target) -> glue_rte_v2; super_glue_rte_v102 holds the same data.
  * RACE -> race_middle_v200: Table 2 gives |Train| = 25K, the size of RACE-M (RACE-H has 62K).
  * WinoGrande -> the XL training set (40K, Table 2), as rainbow_winogrande reads it.
"""

from __future__ import annotations

import logging
from typing import Iterable, Optional

import seqio

from spot_jax.errors import SpotError
from tasks import catalog

PAPER_TO_TASK: dict[str, str] = {
    # source tasks
    "C4": "c4_prefix_lm_v310", "DocNLI": "docnli_v1", "Yelp-2": "yelp_polarity_reviews_v02",
    "MNLI": "glue_mnli_v2", "QQP": "glue_qqp_v2", "QNLI": "glue_qnli_v2",
    "ReCoRD": "super_glue_record_v102", "CxC": "cxc_sts", "SQuAD": "mrqa_squad_v100",
    "DROP": "drop_v200", "SST-2": "glue_sst2_v2", "WinoGrande": "rainbow_winogrande",
    "HellaSWAG": "rainbow_hellaswag", "MultiRC": "super_glue_multirc_v102",
    "CosmosQA": "rainbow_cosmos_qa", "RACE": "race_middle_v200",
    # target tasks
    "BoolQ": "super_glue_boolq_v102", "CoLA": "glue_cola_v2", "STS-B": "glue_stsb_v2",
    "WiC": "super_glue_wic_v102", "CR": "cr", "MRPC": "glue_mrpc_v2", "RTE": "glue_rte_v2",
    "WSC": "super_glue_wsc_fixed_v102", "COPA": "super_glue_copa_v102", "CB": "super_glue_cb_v102",
}
SOURCE_PAPER_NAMES = ("C4", "DocNLI", "Yelp-2", "MNLI", "QQP", "QNLI", "ReCoRD", "CxC", "SQuAD",
                      "DROP", "SST-2", "WinoGrande", "HellaSWAG", "MultiRC", "CosmosQA", "RACE")
TARGET_PAPER_NAMES = ("BoolQ", "CoLA", "STS-B", "WiC", "CR", "MRPC", "RTE", "WSC", "COPA", "CB")
SOURCE_TASKS = [PAPER_TO_TASK[n] for n in SOURCE_PAPER_NAMES]
TARGET_TASKS = [PAPER_TO_TASK[n] for n in TARGET_PAPER_NAMES]

C4_FAMILY = "c4"
# Not in spot_all: C4 is added on its own; CrossFit holds few-shot target samples, no source data;
# SPoT's GLUE (Appendix B) leaves out WNLI, as T5's GLUE mixture does.
_EXCLUDED_FAMILIES = (C4_FAMILY, "crossfit")
_EXCLUDED_TASKS = ("glue_wnli_v2",)


def resolve(names: Iterable[str]) -> list[str]:
  """Paper names (or our task names) -> registered task names; a one-line SpotError otherwise."""
  resolved = [PAPER_TO_TASK.get(name, name) for name in names]
  missing = [name for name in resolved if name not in seqio.TaskRegistry.names()]
  if missing:
    raise SpotError(f"SPoT tasks not registered: {', '.join(missing)}; import the module that "
                    "registers them (tasks/) or fix PAPER_TO_TASK in tasks/spot_lists.py")
  return resolved


def spot_all_tasks() -> list[str]:
  """C4 (when registered) + every registered labeled task that has a train split."""
  c4 = sorted(catalog.families().get(C4_FAMILY, []))
  if not c4:
    logging.warning("spot_all: no C4 task (family %r) is registered; the mixture has only labeled "
                    "tasks", C4_FAMILY)
  labeled = sorted(name for name, entry in catalog.ENTRIES.items()
                   if entry.family not in _EXCLUDED_FAMILIES and name not in _EXCLUDED_TASKS
                   and "train" in seqio.get_mixture_or_task(name).splits)
  return c4 + labeled


def register_spot_all(max_examples: Optional[int] = None) -> list[str]:
  """Registers `spot_all` (SPoT §2: C4 + all labeled datasets), examples-proportional with
  K = `max_examples`. Call after every family module is imported; returns the mixture's tasks."""
  names = spot_all_tasks()
  catalog.register_mixture("spot_all", names, max_examples=max_examples)
  return names
