"""The embedded tasks: pinned examples, versioned names, families, disjoint splits, solvability."""

from __future__ import annotations

import collections
import hashlib

import pytest

from spot_jax.embedded import language as synthetic
from spot_jax.embedded import tasks as st
from spot_jax.errors import SpotError

N = 300  # examples per task and split in these checks

# sha256[:12] of examples 0-2 of each split ("idx<TAB>inputs<TAB>targets" lines), computed on the
# code before the embedded package existed (spot_jax/data/synthetic_tasks.py, universe v2): a
# change here is a new universe, and bumps tasks.UNIVERSE_VERSION.
PINNED = {
    "sent_opinion": "397f7d49c47b", "sent_review": "67a675bc06f6", "sent_rating": "46d579877c6c",
    "nli_location": "d1dfe61b94c7", "nli_possession": "5f3b3d2813e0", "nli_mixed": "d19bfee692c4",
    "para_pair": "d3cc38819b92", "para_story": "0a6d2d888f7d", "para_sts": "2b67d366bb0d",
    "qa_where": "acdfa8ec4a9f", "qa_what": "7026ef70f815", "mc_usage": "30a9e86c721c",
    "mc_domain": "9b29f99efe9c", "cola_order": "a49cd25a6dad", "cola_missing": "777d9a4582dc",
    "wsd_sense": "f3cf9da47214", "sent_mood": "ae2ef9f7206b", "sent_story": "16fe59a4af79",
    "nli_cb": "4ea0a5c3fa91", "nli_rte": "d78bbd1e9b0c", "para_mrpc": "157b254a22fb",
    "para_sts_small": "de316e993961", "qa_who": "0175235682fb", "mc_copa": "3041d49bd023",
    "cola_judge": "2fef2495d9ba", "wsd_wic": "22a16a3a8dc9"}
PINNED_DRILLS = "cea5f5757052"  # drills 0-1 of every source task, task-major


def _digest(rows) -> str:
  text = "\n".join(f"{r['idx']}\t{r['inputs']}\t{r['targets']}" for r in rows)
  return hashlib.sha256(text.encode()).hexdigest()[:12]


def test_examples_are_the_pinned_ones():
  got = {name.removeprefix("synthetic_").removesuffix(f"_v{st.UNIVERSE_VERSION}"):
         _digest([st.example(name, split, i) for split in st.SPLITS for i in range(3)])
         for name in st.TASKS}
  assert got == PINNED
  assert _digest([st.drill(n, i) for n in st.SOURCE_TASKS for i in range(2)]) == PINNED_DRILLS


def test_generator_is_deterministic_for_a_seed():
  for name in st.TASKS:
    assert st.example(name, "train", 7) == st.example(name, "train", 7)
  name = st.task_name("nli_mixed")
  assert st.example(name, "train", 3, seed=1) != st.example(name, "train", 3, seed=0)


def test_names_carry_the_universe_version():
  assert st.UNIVERSE_VERSION == 2
  assert all(n.startswith("synthetic_") and n.endswith("_v2") for n in st.TASKS)
  assert st.task_name("sent_mood") == "synthetic_sent_mood_v2" in st.TARGET_TASKS
  assert st.SOURCES_MIXTURE == "synthetic_sources_v2"
  assert st.resolve(["synthetic_nli_cb_v2", "synthetic_nli_cb"]) == ("synthetic_nli_cb_v2",) * 2
  with pytest.raises(SpotError, match=r"unknown embedded task\(s\) synthetic_nli_cb_v1, nope; "
                     r"known \(universe v2\): synthetic_sent_opinion_v2, .*synthetic_wsd_wic_v2$"):
    st.resolve(["synthetic_nli_cb_v1", "synthetic_sent_mood", "nope"])


def test_universe_shape_matches_table_2():
  sources = [st.TASKS[n] for n in st.SOURCE_TASKS]
  targets = [st.TASKS[n] for n in st.TARGET_TASKS]
  assert len(sources) >= 16 and all(t.sizes[0] >= 10_000 for t in sources)
  assert len(targets) >= 10 and all(t.sizes[0] <= 2_000 for t in targets)
  assert len({t.family for t in sources}) >= 6
  # every target has related sources: its family has at least one source task
  assert {t.family for t in targets} <= {t.family for t in sources}
  assert any(t.kind == "regression" for t in sources)
  assert sum(len(v) for v in st.families().values()) == len(st.TASKS)


@pytest.fixture(scope="module")
def samples():
  return {name: {split: list(st.examples(name, split, limit=N)) for split in st.SPLITS}
          for name in st.TASKS}


def test_splits_are_disjoint(samples):
  for name, splits in samples.items():
    inputs = {split: {e["inputs"] for e in exs} for split, exs in splits.items()}
    assert not inputs["train"] & inputs["validation"], name
    assert not inputs["train"] & inputs["test"], name
    assert not inputs["validation"] & inputs["test"], name


def test_every_task_is_a_function_of_its_input(samples):
  for name, splits in samples.items():
    seen: dict[str, str] = {}
    for ex in (e for exs in splits.values() for e in exs):
      assert seen.setdefault(ex["inputs"], ex["targets"]) == ex["targets"], (name, ex["inputs"])


def test_labels_and_outputs(samples):
  for name, spec in st.TASKS.items():
    targets = [e["targets"] for e in samples[name]["validation"]]
    if spec.classes:
      assert set(targets) <= set(spec.classes), name
      assert len(set(targets)) == len(spec.classes), f"{name}: a class never occurs"
      top = collections.Counter(targets).most_common(1)[0][1] / len(targets)
      assert top < 0.7, f"{name}: majority class is {top:.0%}"
    elif spec.kind == "regression":
      assert {float(t) for t in targets} <= set(range(5)), name
    else:  # extractive: the answer is a word of the input
      for e in samples[name]["validation"]:
        assert e["targets"] in e["inputs"].split(), (name, e)


def test_target_label_words_are_words_pretraining_produces():
  """A target's label word must be a corpus word or a drilled label name: the frozen decoder
  cannot learn to emit a token it was never trained to produce from a prompt alone."""
  produced = set(synthetic.lexicon().words()) | set(synthetic.POSITIVE_CONSEQUENCES)
  produced |= set(synthetic.NEGATIVE_CONSEQUENCES)
  produced |= {label for n in st.SOURCE_TASKS for label in st.TASKS[n].verbalizer or ()}
  for name in st.TARGET_TASKS:
    words = set(st.TASKS[name].classes or ())
    assert words <= produced, f"{name}: {words - produced} never produced in pretraining"


def test_drills_are_source_train_inputs_with_the_generators_label_names(samples):
  for name in st.SOURCE_TASKS:
    spec = st.TASKS[name]
    drills = [st.drill(name, i) for i in range(100)]
    held_out = {e["inputs"] for split in ("validation", "test") for e in samples[name][split]}
    assert not held_out & {d["inputs"] for d in drills}, name
    assert all(synthetic.split_of(d["inputs"]) == "train" for d in drills)
    if spec.verbalizer:  # label names, not the task's label words (except where they coincide)
      assert {d["targets"] for d in drills} <= set(spec.verbalizer), name
  for name in st.TARGET_TASKS:
    with pytest.raises(ValueError, match="source tasks only"):
      st.drill(name, 0)


# Reference solvers: each redesigned family's label computed from the input text by its rule, with
# the lexicon. They pin the skill a family tests (and fail if a generator drifts from it).

def _domains():
  lex = synthetic.lexicon()
  of = {p: d for d, places in enumerate(lex.places) for p in places}
  of |= {w: d for d, pairs in enumerate(lex.objects) for pair in pairs for w in pair}
  return lex, of


def _sentences(text: str) -> list[list[str]]:
  return [s.split() for s in text.split(" .") if s.strip()]


def _solve_nli(text: str) -> str:
  lex, domain_of = _domains()
  premise, hypothesis = text.split("premise: ")[1].split(" hypothesis: ")
  claim = hypothesis.split()
  marker = " is in the " if "place" in claim else " has the "  # the fact the claim is about
  facts = [s for s in _sentences(premise) if marker in f" {' '.join(s)} "]
  if not facts:
    return "neutral"
  stated = domain_of[facts[0][-1]]
  claimed = lex.domains.index(claim[claim.index("a") + 1])
  return "entailment" if (claimed == stated) != ("not" in claim) else "contradiction"


def _places():
  return {p for ps in synthetic.lexicon().places for p in ps}


def test_nli_labels_follow_domain_and_negation(samples):
  for name in ("synthetic_nli_location_v2", "synthetic_nli_possession_v2", "synthetic_nli_mixed_v2",
               "synthetic_nli_cb_v2"):
    for e in samples[name]["validation"]:
      text = e["inputs"].replace("nli premise:", "premise:")
      assert _solve_nli(text) == e["targets"], (name, e)
  for e in samples["synthetic_nli_rte_v2"]["validation"]:
    text = e["inputs"].replace("sentence1:", "premise:").replace(" sentence2:", " hypothesis:")
    assert (_solve_nli(text) == "entailment") == (e["targets"] == "entailment"), e


def _fits(sentences: str) -> bool:
  """One domain of objects/places and one polarity of adjectives throughout."""
  lex, domain_of = _domains()
  words = sentences.split()
  positive = {w for pair in lex.positive for w in pair}
  negative = {w for pair in lex.negative for w in pair}
  return (len({domain_of[w] for w in words if w in domain_of}) <= 1
          and not (positive & set(words) and negative & set(words)))


def test_paraphrase_labels_follow_whether_every_concept_still_fits(samples):
  markers = {"synthetic_para_pair_v2": ("sentence1:", "sentence2:"),
             "synthetic_para_mrpc_v2": ("first:", "second:"),
             "synthetic_para_story_v2": ("story1:", "story2:")}
  for name, (a, b) in markers.items():
    for e in samples[name]["validation"]:
      first, second = e["inputs"].removeprefix(a + " ").split(f" {b} ")
      same = e["targets"] in ("duplicate", "equivalent")
      assert _fits(first) and _fits(first + " " + second) == same, (name, e)
  for name, (a, b) in {"synthetic_para_sts_v2": ("text1:", "text2:"),
                       "synthetic_para_sts_small_v2": ("a:", "b:")}.items():
    for e in samples[name]["validation"]:
      first, second = e["inputs"].removeprefix(a + " ").split(f" {b} ")
      pairs = zip(_sentences(first), _sentences(second))
      shared = sum(_fits(" ".join(r + s)) for r, s in pairs)
      assert str(shared) == e["targets"], (name, e)


def test_qa_answers_are_the_one_candidate_of_the_asked_domain(samples):
  lex, domain_of = _domains()
  for e in (samples["synthetic_qa_where_v2"]["validation"]
            + samples["synthetic_qa_what_v2"]["validation"]):
    question, context = e["inputs"].split(" context: ")
    asked = lex.domains.index(question.split()[question.split().index("a") + 1])
    wants_place = question.startswith("question: where")
    candidates = {w for w in context.split() if w in domain_of and domain_of[w] == asked
                  and (w in _places()) == wants_place}
    assert candidates == {e["targets"]}, e
  for e in samples["synthetic_qa_who_v2"]["validation"]:
    question, context = e["inputs"].split(" context: ")
    asked = lex.domains.index(question.split()[question.split().index("a") + 1])
    who = [s[0] for s in _sentences(context) if s[1:4] == ["is", "in", "the"]
           and domain_of[s[-1]] == asked]
    assert who == [e["targets"]], e
