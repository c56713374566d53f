"""The embedded universe's language: a seeded lexicon, sentence builders and the pretraining corpus.

The embedded default of spot-jax: no pretrained T5 and no NLP data are reachable offline, so the
frozen model is pretrained on text of this language (spot_jax.embedded.pretrain) and prompts are
tuned on tasks over it (spot_jax.embedded.tasks). Pure Python + numpy (no TensorFlow), so
pretraining runs wherever JAX does.

The language: invented content words (people, places grouped into domains, objects with two
synonymous names, polar adjectives with synonyms, ambiguous words with one sense per domain)
glued by English function words. Every skill a task family needs is *distributional* in the
corpus, so predicting masked text requires it:
  * sentiment   - a polar adjective predicts its consequence ("so kavo smiles"); rare negation flips it.
  * NLI / QA    - facts stated early recur later ("later , kavo is still in the mipa ."), and short
                  question-answer exchanges ask about the people of the story.
  * paraphrase  - "in other words ," restates a sentence with synonyms swapped.
  * commonsense - objects are used in places of their own domain.
  * word sense  - an ambiguous word appears beside places/objects of its sense's domain.
  * acceptability - the corpus is grammatical.
Splits are disjoint by construction: a text belongs to the split its hash falls in (split_of).
"""

from __future__ import annotations

import dataclasses
import functools
import zlib
from typing import Optional, Sequence

import numpy as np

LANGUAGE_SEED = 0
SPLITS = ("train", "validation", "test")
# An input text belongs to train, validation or test by crc32(text) % 20: 0-15 / 16-17 / 18-19.
_SPLIT_BUCKETS = {"train": range(0, 16), "validation": range(16, 18), "test": range(18, 20)}

POSITIVE_CONSEQUENCES = ("smiles", "laughs", "sings", "cheers")
NEGATIVE_CONSEQUENCES = ("frowns", "cries", "sighs", "groans")


@dataclasses.dataclass(frozen=True)
class Lexicon:
  """The content words of the language; everything else is fixed English glue."""
  people: tuple[str, ...]
  domains: tuple[str, ...]
  places: tuple[tuple[str, ...], ...]          # [domain] -> places
  objects: tuple[tuple[tuple[str, str], ...], ...]  # [domain] -> (name, synonym) concepts
  positive: tuple[tuple[str, str], ...]        # (adjective, synonym)
  negative: tuple[tuple[str, str], ...]
  colors: tuple[str, ...]
  ambiguous: tuple[tuple[str, int, int], ...]  # (word, domain of sense 0, domain of sense 1)

  def domain_of_place(self, place: str) -> int:
    return next(d for d, places in enumerate(self.places) if place in places)

  def domain_of_object(self, obj: tuple[str, str]) -> int:
    return next(d for d, pairs in enumerate(self.objects) if obj in pairs)

  def words(self) -> list[str]:
    """Every content word (for the tokenizer's training text)."""
    out = [*self.people, *self.domains, *self.colors, *(w for w, _, _ in self.ambiguous)]
    out += [w for places in self.places for w in places]
    out += [w for objs in self.objects for pair in objs for w in pair]
    out += [w for pair in (*self.positive, *self.negative) for w in pair]
    return out


@functools.lru_cache(maxsize=4)
def lexicon(seed: int = LANGUAGE_SEED) -> Lexicon:
  """Invented words: two or three consonant-vowel syllables, unique, drawn from `seed`."""
  rng = np.random.default_rng([seed, 7])
  syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
  used: set[str] = set()

  def fresh(n: int) -> tuple[str, ...]:
    out = []
    while len(out) < n:
      word = "".join(rng.choice(syllables, size=int(rng.integers(2, 4))))
      if word not in used:
        used.add(word)
        out.append(word)
    return tuple(out)

  def pairs(n: int) -> tuple[tuple[str, str], ...]:
    words = fresh(2 * n)
    return tuple(zip(words[::2], words[1::2]))

  n_domains = 4
  return Lexicon(
      people=fresh(30), domains=fresh(n_domains),
      places=tuple(fresh(4) for _ in range(n_domains)),
      objects=tuple(pairs(8) for _ in range(n_domains)),
      positive=pairs(12), negative=pairs(12), colors=fresh(8),
      ambiguous=tuple((w, i % n_domains, (i + 1 + i // n_domains) % n_domains)
                      for i, w in enumerate(fresh(8))))


def split_of(text: str) -> str:
  """The split (train, validation or test) a text belongs to: its crc32 bucket."""
  bucket = zlib.crc32(text.encode()) % 20
  return next(s for s, buckets in _SPLIT_BUCKETS.items() if bucket in buckets)


# ------------------------------------------------------------------------------------ sentences

class Generator:
  """Sentence builders over one lexicon and one numpy Generator: every task generator and the
  corpus draw their words through one of these, so a seed fixes the text."""

  def __init__(self, lex: Lexicon, rng: np.random.Generator):
    self.lex, self.rng = lex, rng

  def pick(self, seq: Sequence, k: Optional[int] = None):
    if k is None:
      return seq[int(self.rng.integers(len(seq)))]
    return [seq[int(i)] for i in self.rng.choice(len(seq), size=k, replace=False)]

  def coin(self, p: float) -> bool:
    return bool(self.rng.random() < p)

  def name(self, pair: tuple[str, str]) -> str:
    return pair[int(self.rng.integers(2))]

  def obj(self, domain: Optional[int] = None) -> tuple[int, tuple[str, str]]:
    d = int(self.rng.integers(len(self.lex.domains))) if domain is None else domain
    return d, self.pick(self.lex.objects[d])

  def place(self, domain: Optional[int] = None) -> str:
    d = int(self.rng.integers(len(self.lex.domains))) if domain is None else domain
    return self.pick(self.lex.places[d])

  def adjective(self, positive: bool) -> str:
    return self.name(self.pick(self.lex.positive if positive else self.lex.negative))

  def feeling(self, person: str, negated: Optional[bool] = None) -> tuple[str, bool]:
    """'{p} thinks the {obj} is [not] {adj} .' and whether the feeling is positive."""
    polar = self.coin(0.5)
    negated = self.coin(0.15) if negated is None else negated
    _, obj = self.obj()
    text = f"{person} thinks the {self.name(obj)} is {'not ' if negated else ''}{self.adjective(polar)} ."
    return text, polar != negated

  def consequence(self, person: str, positive: bool) -> str:
    return f"so {person} {self.pick(POSITIVE_CONSEQUENCES if positive else NEGATIVE_CONSEQUENCES)} ."

  def sense_context(self, word: str, domain: int) -> str:
    if self.coin(0.5):
      return f"{self.pick(self.lex.people)} saw the {word} near the {self.place(domain)} ."
    return f"the {word} was next to the {self.name(self.obj(domain)[1])} ."


@dataclasses.dataclass
class World:
  """A few people with one place and one possession each."""
  people: list[str]
  places: list[str]
  possessions: list[tuple[str, tuple[str, str]]]  # (color, (name, synonym))


def world(g: Generator, n: int) -> World:
  people = g.pick(g.lex.people, n)
  places = [g.place() for _ in people]
  possessions = [(g.pick(g.lex.colors), g.obj()[1]) for _ in people]
  return World(people, places, possessions)


def location(p: str, place: str) -> str:
  return f"{p} is in the {place} ."


def possession(g: Generator, p: str, color: str, obj: tuple[str, str]) -> str:
  return f"{p} has the {color} {g.name(obj)} ."


def facts(g: Generator, w: World) -> list[str]:
  """Where each person is and what each has, shuffled."""
  out = [location(p, place) for p, place in zip(w.people, w.places)]
  out += [possession(g, p, c, o) for p, (c, o) in zip(w.people, w.possessions)]
  g.rng.shuffle(out)
  return out


def synonym_swap(g: Generator, sentence: str) -> str:
  """Each object/adjective name replaced by its synonym (the 'in other words' restatement)."""
  table = {}
  for pairs in (*g.lex.objects, g.lex.positive, g.lex.negative):
    for a, b in pairs:
      table[a], table[b] = b, a
  return " ".join(table.get(word, word) for word in sentence.split())


def document(rng: np.random.Generator, lex: Optional[Lexicon] = None) -> str:
  """One pretraining document (~60-120 words): a small world told, restated and questioned."""
  g = Generator(lex or lexicon(), rng)
  w = world(g, int(rng.integers(2, 5)))
  out = facts(g, w)
  for _ in range(int(rng.integers(3, 7))):
    i = int(rng.integers(len(w.people)))
    p = w.people[i]
    kind = int(rng.integers(8))
    if kind == 0:
      text, positive = g.feeling(p)
      out += [text, g.consequence(p, positive)]
    elif kind == 1:
      out.append(f"later , {p} is still in the {w.places[i]} .")
    elif kind == 2:
      color, obj = w.possessions[i]
      out.append(f"indeed , {p} has the {color} {g.name(obj)} .")
    elif kind == 3:
      question = g.pick([(f"where is {p} ?", f"in the {w.places[i]} ."),
                         (f"what does {p} have ?", f"the {g.name(w.possessions[i][1])} .")])
      out.append(" ".join(question))
    elif kind == 4:
      d, obj = g.obj()
      out.append(f"{p} uses the {g.name(obj)} in the {g.place(d)} .")
    elif kind == 5:
      word, *senses = g.pick(g.lex.ambiguous)
      out.append(g.sense_context(word, senses[int(rng.integers(2))]))
    elif kind == 6:
      text = possession(g, p, *w.possessions[i]) if g.coin(0.5) else g.feeling(p)[0]
      out += [text, "in other words , " + synonym_swap(g, text)]
    else:
      place = w.places[i]
      out.append(f"the {place} is a {g.lex.domains[g.lex.domain_of_place(place)]} place .")
  return " ".join(out)


def corpus_document(seed: int, index: int) -> str:
  """Pretraining document `index` of the corpus drawn from `seed`."""
  return document(np.random.default_rng([seed, 11, index]))
