"""The embedded language: a seeded lexicon and corpus, sentence builders that keep the skills the
tasks rest on, and the split rule."""

from __future__ import annotations

import hashlib

import numpy as np

from spot_jax.embedded import language

PINNED_CORPUS = "b109d20f9ba6"  # sha256[:12] of corpus documents 0-4 of seed 0, before the refactor


def test_lexicon_and_corpus_are_seeded_and_pinned():
  assert language.corpus_document(0, 5) == language.corpus_document(0, 5)
  assert language.corpus_document(0, 5) != language.corpus_document(1, 5)
  assert language.lexicon(0) == language.lexicon(0) and language.lexicon(0) != language.lexicon(1)
  text = "\n".join(language.corpus_document(0, i) for i in range(5))
  assert hashlib.sha256(text.encode()).hexdigest()[:12] == PINNED_CORPUS


def test_skills_hold_on_hand_written_cases():
  g = language.Generator(language.lexicon(), np.random.default_rng(0))
  lex = language.lexicon()
  good, bad = lex.positive[0][0], lex.negative[0][0]
  # a negated positive adjective is negative; synonyms swap both ways
  for _ in range(50):
    text, positive = g.feeling("kavo")
    adjective = text.split()[-2]
    polar = any(adjective in pair for pair in lex.positive)
    assert positive == (polar != (" not " in text))
  swapped = language.synonym_swap(g, f"kavo thinks the x is {good} .")
  assert swapped.split()[-2] == lex.positive[0][1] and bad not in swapped


def test_every_text_has_one_split_in_the_16_2_2_proportions():
  texts = [language.corpus_document(0, i) for i in range(400)]
  splits = [language.split_of(t) for t in texts]
  assert splits == [language.split_of(t) for t in texts]
  share = {s: splits.count(s) / len(splits) for s in language.SPLITS}
  assert abs(share["train"] - 0.8) < 0.08 and min(share["validation"], share["test"]) > 0.04
