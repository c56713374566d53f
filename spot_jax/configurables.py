"""The functions and classes gin files may bind, registered under short names.

Importing this module registers them; only the CLI (spot_jax.gin_utils.parse) imports it.
"""

from __future__ import annotations

from typing import Sequence

import gin

from spot_jax import embedded, peft
from spot_jax.data import local
from spot_jax.embedded import protocol as embedded_protocol
from spot_jax.peft import trees
from spot_jax.study import crossfit
from spot_jax.train import meta, optim, trainer
from tasks import catalog
from spot_jax.train import inference  # noqa: E402


def class_label_init(*, labels: Sequence[str], vocabulary: str,
                     fallback: peft.PromptInitializer = peft.SampledVocabInit()) -> peft.ClassLabelInit:
  """ClassLabelInit from label words, tokenized with the SentencePiece model at `vocabulary`."""
  import seqio
  vocab = seqio.SentencePieceVocabulary(vocabulary, extra_ids=100)
  return peft.ClassLabelInit(tuple(tuple(vocab.encode(w)) for w in labels), fallback=fallback)


def embedded_model_dir() -> str:
  """Path of the shipped embedded frozen model (gin: INITIAL_CHECKPOINT_PATH = @embedded_model_dir())."""
  return str(embedded.model_dir())


def embedded_vocabulary() -> str:
  """Path of the shipped embedded SentencePiece model."""
  return str(embedded.vocabulary_path())


for _fn, _name in [(embedded_model_dir, "embedded_model_dir"),
                   (embedded_vocabulary, "embedded_vocabulary"), (trainer.train, "train"), (inference.evaluate, "evaluate"),
                   (inference.infer, "infer"), (optim.adafactor, "adafactor"),
                   (optim.adam, "adam"), (class_label_init, "class_label_init"),
                   (peft.UniformInit, "UniformInit"), (peft.SampledVocabInit, "SampledVocabInit"),
                   (peft.FromFileInit, "FromFileInit"),
                   (peft.WeightedCombinationInit, "WeightedCombinationInit"),
                   (local.set_data_dir, "set_data_dir"),
                   (catalog.set_mixture_limit, "set_mixture_limit"),
                   (trees.Method, "Method"), (meta.MetaConfig, "MetaConfig"),
                   (crossfit.Upstream, "Upstream"), (crossfit.Presets, "crossfit_presets")]:
  gin.external_configurable(_fn, name=_name)

# The embedded protocol's numbers, bound by gin_configs/embedded/*.gin as %EMBEDDED_*.
for _name, _value in embedded_protocol.gin_constants().items():
  gin.constant(_name, _value)
