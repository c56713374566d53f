"""The two RAINBOW datasets without a TFDS builder, read from their published files.

Layout under the local data root (spot_jax.data.local), as AllenAI publishes them:
  art/{train,dev}.jsonl + art/{train,dev}-labels.lst            alphaNLI: obs1, obs2, hyp1, hyp2; label 1|2
  social_i_qa/{train,dev}.jsonl + social_i_qa/{train,dev}-labels.lst
                                                   SocialIQa: context, question, answerA/B/C; label 1|2|3
Example (art): {"obs1": "Tom went out.", "obs2": "Tom got wet.", "hyp1": "It rained.", "hyp2": "..."}
with label 1 -> {"inputs": "art obs1: Tom went out. obs2: Tom got wet. hyp1: It rained. hyp2: ...",
                 "targets": "hyp1"}
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Optional, Sequence

import seqio
import tensorflow as tf

from spot_jax.data import local, metrics, preprocessors
from spot_jax.errors import SpotError
from tasks import catalog

_SPLITS = {"train": "train", "validation": "dev"}


@dataclasses.dataclass(frozen=True)
class JsonlWithLabels:
  dataset: str
  fields: Sequence[str]  # input fields, in the order they are written; also the label words

  @property
  def layout(self) -> str:
    return "{train,dev}.jsonl with one example per line + {train,dev}-labels.lst (1-based labels)"

  def examples(self, split: str) -> tuple[list[list[str]], list[int]]:
    directory = local.dataset_dir(self.dataset, self.layout)
    files = directory / f"{_SPLITS[split]}.jsonl", directory / f"{_SPLITS[split]}-labels.lst"
    for f in files:
      if not f.exists():
        raise SpotError(f"local dataset {self.dataset!r}: {f} does not exist (expected {self.layout})")
    rows = [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]
    labels = [int(line) - 1 for line in files[1].read_text().splitlines() if line.strip()]
    if len(rows) != len(labels):
      raise SpotError(f"{files[0]} has {len(rows)} examples but {files[1]} has {len(labels)} labels")
    return [[str(r.get(k, "")) for k in self.fields] for r in rows], labels

  def read(self, split: str, shuffle_files: bool = False, seed: Optional[int] = None):
    del shuffle_files, seed  # one file per split
    values, labels = self.examples(split)
    columns = {k: tf.constant([row[i] for row in values], tf.string)
               for i, k in enumerate(self.fields)}
    return tf.data.Dataset.from_tensor_slices({**columns, "label": tf.constant(labels, tf.int64)})


class JsonlSource(seqio.FunctionDataSource):
  """Reads when data is asked for; sizes are line counts, for examples-proportional mixtures."""

  def __init__(self, files: JsonlWithLabels):
    super().__init__(files.read, splits=tuple(_SPLITS))
    self.files = files
    self.local_dataset = files.dataset

  def num_input_examples(self, split: str) -> int:
    return len(self.files.examples(split)[1])


SPECS = [JsonlWithLabels("art", ("obs1", "obs2", "hyp1", "hyp2")),
         JsonlWithLabels("social_i_qa", ("context", "question", "answerA", "answerB", "answerC"))]
_CHOICES = {"art": ("hyp1", "hyp2"), "social_i_qa": ("answerA", "answerB", "answerC")}

TASKS = []
for _spec in SPECS:
  _labels = _CHOICES[_spec.dataset]
  TASKS.append(f"rainbow_{_spec.dataset}")
  catalog.register_task(
      TASKS[-1], family="rainbow", source=JsonlSource(_spec),
      preprocessors=[functools.partial(preprocessors.preprocess, prefix=_spec.dataset,
                                       feature_names=_spec.fields, label_names=_labels)],
      postprocess_fn=functools.partial(preprocessors.label_to_class_id, label_names=_labels),
      metric_fns=[metrics.accuracy])

# The family mixture, now with every RAINBOW task (tasks/generation.py registered the TFDS ones).
catalog.register_mixture("rainbow", catalog.families()["rainbow"])


def _sample(spec: JsonlWithLabels, split: str) -> dict[str, str]:
  rows = [{k: f"{k} text {i}" for k in spec.fields} for i in range(3)]
  return {f"{spec.dataset}/{split}.jsonl": "".join(json.dumps(r) + "\n" for r in rows),
          f"{spec.dataset}/{split}-labels.lst": "1\n2\n1\n"}


SAMPLE_FILES = {k: v for spec in SPECS for split in _SPLITS.values() for k, v in _sample(spec, split).items()}
