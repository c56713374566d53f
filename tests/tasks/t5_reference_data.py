"""Shared by tests/tasks/test_t5_reference.py and tools/t5_golden.py: which TFDS config each GLUE /
SuperGLUE task reads, the golden file Google's t5 package wrote, and raw examples as TFDS yields them.

Imports neither `tasks` nor `t5` (both register super_glue_*_v102 in seqio's one TaskRegistry), so
the tool can load it next to t5 and the test next to our catalog.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

GOLDEN = pathlib.Path(__file__).with_name("t5_reference.json")

# Our task name -> the TFDS config it reads (tasks/glue.py); the test checks this is the catalog's.
TASKS = {
    **{f"glue_{n}_v2": f"glue/{n}:2.0.0"
       for n in ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")},
    **{f"super_glue_{n.replace('.', '_')}_v102": f"super_glue/{n}:1.0.2"
       for n in ("boolq", "cb", "copa", "multirc", "record", "rte", "wic", "wsc.fixed", "axb",
                 "axg")},
}


def features(tfds_name: str) -> tfds.features.FeaturesDict:
  """The config's feature spec, from TFDS's builder code (no data needed)."""
  return tfds.builder(tfds_name).info.features


def dataset(tfds_name: str, examples: Sequence[dict[str, Any]]) -> tf.data.Dataset:
  """`examples` (plain dicts: str, int, float, lists, nested idx dicts) as the TFDS config's
  tf.data examples: each goes through the feature spec's encode_example, which rejects a missing,
  extra or mistyped feature, and the dataset has the spec's dtypes and shapes."""
  spec = features(tfds_name)
  signature = spec.get_tensor_spec()
  encoded = [_tensors(spec.encode_example(example), signature) for example in examples]
  return tf.data.Dataset.from_generator(lambda: iter(encoded), output_signature=signature)


def _tensors(value: Any, signature: Any) -> Any:
  """encode_example's values (numpy, str object arrays among them) as tensors of `signature`."""
  if isinstance(signature, dict):
    return {k: _tensors(value[k], s) for k, s in signature.items()}
  array = np.asarray(value)
  if signature.dtype == tf.string:
    array = array.astype(str)
  return tf.constant(array, dtype=signature.dtype)


def load_golden() -> dict[str, Any]:
  return json.loads(GOLDEN.read_text())
