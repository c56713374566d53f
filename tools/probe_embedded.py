"""Zero-shot probes of a pretrained embedded T5: does the frozen LM already have the skills the
embedded tasks need? Run it before building a study on a model (seconds on CPU).

  python tools/probe_embedded.py [--model spot_jax/embedded/model] [--n 200]

Prints one JSON line per probe with the LM's rank-classification accuracy and chance:
  sentiment: "X thinks the O is [not] ADJ . so X" -> smiles | frowns  (polarity, negation)
  recall:    "<facts> where is X ? in the" -> each place of the story   (fact lookup)
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import sentencepiece as spm

from spot_jax import embedded
from spot_jax.checkpoints import load_checkpoint
from spot_jax.embedded import language
from spot_jax.model import decoding


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default=str(embedded.MODEL_DIR))
  parser.add_argument("--n", type=int, default=200)
  args = parser.parse_args(argv)
  config, params = load_checkpoint(args.model)
  sp = spm.SentencePieceProcessor(model_file=str(embedded.VOCABULARY))
  g = language.Generator(language.lexicon(), np.random.default_rng(5))

  def best(text: str, words: list[str]) -> str:
    ids = sp.encode(text)[:63] + [1]
    candidates = np.array([[sp.piece_to_id("▁" + w), 1] for w in words])
    scores = decoding.rank_classification(params, np.array([ids]), candidates, config=config)
    return words[int(np.argmax(np.asarray(scores)[0]))]

  hits = []
  for _ in range(args.n):
    text, positive = g.feeling("kavo")
    hits.append(best(text + " so kavo", ["smiles", "frowns"]) == ("smiles" if positive else "frowns"))
  print(json.dumps({"probe": "sentiment", "accuracy": float(np.mean(hits)), "chance": 0.5}))

  hits, chance = [], []
  for _ in range(args.n):
    w = language.world(g, 3)
    i = int(g.rng.integers(3))
    places = list(dict.fromkeys(w.places))
    text = " ".join(language.facts(g, w)) + f" where is {w.people[i]} ? in the"
    hits.append(best(text, places) == w.places[i])
    chance.append(1 / len(places))
  print(json.dumps({"probe": "recall", "accuracy": float(np.mean(hits)),
                    "chance": float(np.mean(chance))}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
