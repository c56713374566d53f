"""The embedded universe's tasks, like SPoT's Table 2: names, roles, sizes, label words, examples.

16 data-rich source tasks (>= 10K train examples) and 10 low-resource targets (<= 2K) in seven
families: sentiment, nli, paraphrase (incl. regression), qa (extractive), multiple_choice,
acceptability, word_sense. Each draws its examples from a generator (spot_jax.embedded.generators).

Names are versioned seqio-style (glue_rte_v2): `synthetic_<task>_v<UNIVERSE_VERSION>`, so every
result says which universe made it; a change to any generator, label word or size bumps the version.
The examples of a task are seeded by its unversioned name (`TaskSpec.stream`), so a version that
keeps a generator keeps its examples.

Label words follow the family as T5's verbalizers do (entailment / contradiction / neutral for NLI,
duplicate / equivalent / different for paraphrase, acceptable / unacceptable); a prompt on a model
this small could not remap a skill onto arbitrary words (acceptability: drills 0.73, "still/not" at
chance). Sentiment keeps the corpus's consequence words (smiles / frowns ...), which the corpus ties
to polarity.

Examples are indexed: example i of a split is a pure function of (seed, task, split, i), and splits
are disjoint by construction (an example belongs to the split its input text hashes to).
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from spot_jax.embedded import generators
from spot_jax.embedded import language as lang
from spot_jax.errors import SpotError

UNIVERSE_VERSION = 2  # of the tasks; the shipped model has its own (spot_jax/embedded/pretrain.json)
SPLITS = lang.SPLITS
FEATURE_LENGTHS = {"inputs": 80, "targets": 8}  # every input fits in 80 word tokens, a label in 8
Make = Callable[[lang.Generator], tuple[str, str]]


def task_name(short: str) -> str:
  """The registered name of task `short` (sent_mood -> synthetic_sent_mood_v2)."""
  return f"synthetic_{short}_v{UNIVERSE_VERSION}"


SOURCES_MIXTURE = task_name("sources")  # all source tasks, examples-proportional


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  name: str                 # registered, versioned: synthetic_sent_mood_v2
  family: str
  role: str                 # "source" or "target"
  make: Make
  sizes: tuple[int, int, int]  # train, validation, test
  classes: Optional[tuple[str, ...]] = None  # label words; None: free text (QA) or regression
  kind: str = "classification"  # "classification" | "regression" | "extractive"
  verbalizer: Optional[dict[str, str]] = None  # generator's label -> label word of the language
  stream: str = ""          # seeds the examples: the unversioned name (synthetic_sent_mood)

  def size(self, split: str) -> int:
    """Examples in `split` (one of SPLITS)."""
    return self.sizes[SPLITS.index(split)]


def _spec(short, family, role, make, train, verbalizer=None, kind="classification"):
  """Label words are words of the language that pretraining made the decoder produce (like T5's
  English label words); a label the corpus never says would have to be learned from nothing."""
  evaluation = (500, 500) if role == "source" else (300, 500)
  classes = tuple(verbalizer.values()) if verbalizer else None
  return TaskSpec(task_name(short), family, role, make, (train, *evaluation), classes, kind,
                  verbalizer, stream=f"synthetic_{short}")


def _words(labels: str, words: str) -> dict[str, str]:
  return dict(zip(labels.split(), words.split()))


def _names(labels: str) -> dict[str, str]:
  """The generator's own label names as label words (T5's verbalizers: 'entailment', ...)."""
  return _words(labels, labels)


_NLI3_NAMES = _names("entailment neutral contradiction")
_NLI2_NAMES = _names("entailment contradiction")
_ACCEPTABILITY = _names("acceptable unacceptable")
TASKS: dict[str, TaskSpec] = {t.name: t for t in [
    _spec("sent_opinion", "sentiment", "source", generators.sent_opinion, 20_000,
          _words("positive negative", "smiles frowns")),
    _spec("sent_review", "sentiment", "source", generators.sent_review, 12_000,
          _words("positive negative", "laughs cries")),
    _spec("sent_rating", "sentiment", "source", generators.sent_rating, 15_000,
          _words("positive negative neutral", "sings groans still")),
    _spec("nli_location", "nli", "source", generators.nli_location, 20_000, _NLI2_NAMES),
    _spec("nli_possession", "nli", "source", generators.nli_possession, 12_000, _NLI2_NAMES),
    _spec("nli_mixed", "nli", "source", generators.nli_mixed, 15_000, _NLI3_NAMES),
    _spec("para_pair", "paraphrase", "source", generators.para_pair, 20_000,
          _names("duplicate different")),
    _spec("para_story", "paraphrase", "source", generators.para_story, 10_000,
          _names("equivalent different")),
    _spec("para_sts", "paraphrase", "source", generators.para_sts, 15_000, kind="regression"),
    _spec("qa_where", "qa", "source", generators.qa_where, 20_000, kind="extractive"),
    _spec("qa_what", "qa", "source", generators.qa_what, 12_000, kind="extractive"),
    _spec("mc_usage", "multiple_choice", "source", generators.mc_usage, 15_000, kind="extractive"),
    _spec("mc_domain", "multiple_choice", "source", generators.mc_domain, 10_000, kind="extractive"),
    _spec("cola_order", "acceptability", "source", generators.cola_order, 20_000, _ACCEPTABILITY),
    _spec("cola_missing", "acceptability", "source", generators.cola_missing, 10_000, _ACCEPTABILITY),
    _spec("wsd_sense", "word_sense", "source", generators.wsd_sense, 15_000,
          {d: d for d in lang.lexicon().domains}),
    _spec("sent_mood", "sentiment", "target", generators.sent_mood, 1_000,
          _words("good bad", "cheers sighs")),
    _spec("sent_story", "sentiment", "target", generators.sent_story, 500,
          _words("positive negative", "smiles frowns")),
    _spec("nli_cb", "nli", "target", generators.nli_cb, 250, _NLI3_NAMES),
    # "not_entailment" (RTE) and "same" (WiC) are no word the corpus or a drill ever says, so the
    # frozen decoder never produces them (measured: both targets stuck at the majority class).
    _spec("nli_rte", "nli", "target", generators.nli_rte, 2_000,
          _words("entailment not_entailment", "entailment contradiction")),
    _spec("para_mrpc", "paraphrase", "target", generators.para_mrpc, 1_000,
          _names("equivalent different")),
    _spec("para_sts_small", "paraphrase", "target", generators.para_sts_small, 500, kind="regression"),
    _spec("qa_who", "qa", "target", generators.qa_who, 1_000, kind="extractive"),
    _spec("mc_copa", "multiple_choice", "target", generators.mc_copa, 400, kind="extractive"),
    _spec("cola_judge", "acceptability", "target", generators.cola_judge, 1_000, _ACCEPTABILITY),
    _spec("wsd_wic", "word_sense", "target", generators.wsd_wic, 1_000,
          _words("same different", "equivalent different")),
]}
SOURCE_TASKS = tuple(n for n, t in TASKS.items() if t.role == "source")
TARGET_TASKS = tuple(n for n, t in TASKS.items() if t.role == "target")


def resolve(names: Sequence[str]) -> tuple[str, ...]:
  """The registered names of `names`, each given as registered (synthetic_sent_mood_v2) or without
  its version (synthetic_sent_mood: this universe's task). An unknown name is a SpotError that
  lists the known ones."""
  unversioned = {name.removesuffix(f"_v{UNIVERSE_VERSION}"): name for name in TASKS}
  unknown = [n for n in names if n not in TASKS and n not in unversioned]
  if unknown:
    raise SpotError(f"unknown embedded task(s) {', '.join(unknown)}; known (universe "
                    f"v{UNIVERSE_VERSION}): {', '.join(TASKS)}")
  return tuple(n if n in TASKS else unversioned[n] for n in names)


def example(name: str, split: str, index: int, seed: int = 0, verbalize: bool = True) -> dict:
  """Example `index` of `split`: drawn until its input hashes into `split` (disjoint splits).
  `verbalize=False` keeps the generator's own label name (positive, entailment, ...)."""
  spec = TASKS[name]
  task_id = zlib.crc32(spec.stream.encode())
  split_id = SPLITS.index(split)
  for attempt in range(10_000):
    rng = np.random.default_rng([seed, task_id, split_id, index, attempt])
    g = lang.Generator(lang.lexicon(), rng)
    inputs, targets = spec.make(g)
    if verbalize:
      targets = (spec.verbalizer or {}).get(targets, targets)
    if lang.split_of(inputs) == split:
      return {"inputs": inputs, "targets": targets, "idx": index}
  raise RuntimeError(f"{name}: no {split} example after 10000 draws")  # unreachable in practice


# Pretraining drills (spot_jax.embedded.pretrain): source generators only, train split only, another
# seed, and the generators' own label names instead of the tasks' label words. Like T5 1.0's
# supervised pretraining mixture, they teach the frozen model the families' skills; no target task
# and no target format is ever among them, and source validation/test inputs cannot be (splits are
# disjoint by the input's hash).
DRILL_SEED = 1_000


def drill(name: str, index: int) -> dict:
  """Pretraining drill `index` of source task `name`."""
  if TASKS[name].role != "source":
    raise ValueError(f"{name} is a {TASKS[name].role} task; drills come from source tasks only")
  return example(name, "train", index, seed=DRILL_SEED, verbalize=False)


def examples(name: str, split: str, seed: int = 0, limit: Optional[int] = None) -> Iterator[dict]:
  """The split's examples in index order (its size from TASKS unless `limit`)."""
  size = TASKS[name].size(split)
  for i in range(size if limit is None else min(size, limit)):
    yield example(name, split, i, seed)


def families() -> dict[str, list[str]]:
  out: dict[str, list[str]] = {}
  for spec in TASKS.values():
    out.setdefault(spec.family, []).append(spec.name)
  return out
