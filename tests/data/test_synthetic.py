"""The synthetic language and its tasks: determinism, families, disjoint splits, solvability."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from spot_jax.data import synthetic, synthetic_tasks as st

N = 300  # examples per task and split in these checks


def test_generator_is_deterministic_for_a_seed():
  for name in st.TASKS:
    assert st.example(name, "train", 7) == st.example(name, "train", 7)
  assert st.example("synthetic_nli_mixed", "train", 3, seed=1) != st.example(
      "synthetic_nli_mixed", "train", 3, seed=0)
  assert synthetic.corpus_document(0, 5) == synthetic.corpus_document(0, 5)
  assert synthetic.corpus_document(0, 5) != synthetic.corpus_document(1, 5)
  assert synthetic.lexicon(0) == synthetic.lexicon(0) and synthetic.lexicon(0) != synthetic.lexicon(1)


def test_universe_shape_matches_table_2():
  sources = [st.TASKS[n] for n in st.SOURCE_TASKS]
  targets = [st.TASKS[n] for n in st.TARGET_TASKS]
  assert len(sources) >= 16 and all(t.sizes[0] >= 10_000 for t in sources)
  assert len(targets) >= 10 and all(t.sizes[0] <= 2_000 for t in targets)
  assert len({t.family for t in sources}) >= 6
  # every target has related sources: its family has at least one source task
  assert {t.family for t in targets} <= {t.family for t in sources}
  assert any(t.kind == "regression" for t in sources)
  assert all(n.startswith("synthetic_") for n in st.TASKS)
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


def test_skills_hold_on_hand_written_cases():
  g = synthetic._Gen(synthetic.lexicon(), np.random.default_rng(0))
  lex = synthetic.lexicon()
  good, bad = lex.positive[0][0], lex.negative[0][0]
  # a negated positive adjective is negative; synonyms swap both ways
  for _ in range(50):
    text, positive = g.feeling("kavo")
    adjective = text.split()[-2]
    polar = any(adjective in pair for pair in lex.positive)
    assert positive == (polar != (" not " in text))
  swapped = synthetic._synonym_swap(g, f"kavo thinks the x is {good} .")
  assert swapped.split()[-2] == lex.positive[0][1] and bad not in swapped


def test_drills_are_source_train_inputs_with_the_generators_label_names(samples):
  for name in st.SOURCE_TASKS:
    spec = st.TASKS[name]
    drills = [st.drill(name, i) for i in range(100)]
    held_out = {e["inputs"] for split in ("validation", "test") for e in samples[name][split]}
    assert not held_out & {d["inputs"] for d in drills}, name
    assert all(st._split_of(d["inputs"]) == "train" for d in drills)
    if spec.verbalizer:  # label names, not the task's label words (except where they coincide)
      assert {d["targets"] for d in drills} <= set(spec.verbalizer), name
  for name in st.TARGET_TASKS:
    with pytest.raises(ValueError, match="source tasks only"):
      st.drill(name, 0)
