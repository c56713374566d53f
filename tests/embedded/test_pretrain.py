"""Pretraining as library functions: the batches of a seed are pinned, objectives keep every token,
and bad drill choices fail before any work."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import sentencepiece as spm

from spot_jax import embedded
from spot_jax.embedded import language, pretrain
from spot_jax.errors import SpotError

# sha256[:12] of two make_batch calls (8 rows, 2 of them drills) on corpus documents 0-7 with the
# shipped vocabulary, rng [0, 1]: computed with tools/pretrain_embedded.py before the refactor.
PINNED_BATCHES = "66943f83ca9b"


def test_batches_of_a_seed_are_pinned():
  sp = spm.SentencePieceProcessor(model_file=str(embedded.vocabulary_path()))
  docs = [language.corpus_document(0, i) for i in range(8)]
  tokens = [np.asarray(t, np.int32) for t in sp.encode(docs)]
  drills = pretrain.tokenized_drills(sp, range(1))
  sentinel0 = sp.get_piece_size() + embedded.EXTRA_IDS - 1
  rng = np.random.default_rng([0, 1])
  digest = hashlib.sha256()
  for _ in range(2):
    batch = pretrain.make_batch(rng, tokens, 8, pretrain.LENGTHS, sentinel0, drills, 2)
    for key in sorted(batch):
      digest.update(key.encode())
      digest.update(np.ascontiguousarray(batch[key]).tobytes())
  assert digest.hexdigest()[:12] == PINNED_BATCHES


def test_span_corruption_hides_spans_behind_sentinels():
  tokens = np.arange(10, 50)
  inputs, targets = pretrain.span_corruption(np.random.default_rng(0), tokens, sentinel0=500)
  sentinels = [t for t in inputs if t > 400]
  assert sentinels == [500 - k for k in range(len(sentinels))] == [t for t in targets if t > 400]
  assert sorted(t for t in inputs + targets if t < 400) == list(tokens)  # every token once
  assert sum(t < 400 for t in targets) == round(0.15 * len(tokens))


def test_drill_choices_are_checked():
  config = pretrain.PretrainConfig(drill_families=["qa", "nli"], drill_weights={"nli": 2},
                                   drill_tasks=["synthetic_qa_where_v2", "synthetic_nli_location",
                                                "synthetic_sent_opinion_v2"])
  assert pretrain.drill_tasks(config) == ["synthetic_qa_where_v2", "synthetic_nli_location_v2"]
  for bad, error in [({"drill_families": ["poetry"]}, r"unknown drill families \['poetry'\]"),
                     ({"drill_weights": {"poetry": 2}}, r"unknown drill families \['poetry'\]"),
                     ({"drill_tasks": ["synthetic_nli_cb_v2"]},
                      r"drill tasks \['synthetic_nli_cb_v2'\] are not source tasks"),
                     ({"drill_tasks": ["nope"]}, "unknown embedded task")]:
    with pytest.raises(SpotError, match=error):
      pretrain.drill_tasks(pretrain.PretrainConfig(**bad))
