"""seqio's own input functions run without AutoGraph.

tf.data's `map` passes every function through AutoGraph before tracing it. seqio's preprocessors
and feature converters (tokenize, append_eos_after_trim, trim_and_pad, the EncDec converter, ...)
are plain TensorFlow whose Python control flow tests Python values only (packing's loop over a
tensor is the exception: `autograph_converts_seqio_utils` converts it), so converting them changes
nothing but the time: about 20 functions at ~0.1-0.5 s each, every process. On 2 CPU cores that was
a quarter of a one-step `spot-jax train` run (37 s -> 28 s, measured with a study on the other
core). User preprocessors (tasks/, any module of yours) are still converted as TensorFlow does.

TensorFlow has no public switch for a whole package, so this adds a DoNotConvert rule to AutoGraph's
conversion rules (the mechanism behind TensorFlow's own do-not-convert list). If a TensorFlow
release moves that module, nothing is changed and pipelines run as before, only slower.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator

PACKAGES = ("seqio",)


@functools.cache
def skip_seqio_autograph() -> bool:
  """Adds the rule once per process; returns whether it is in place."""
  try:
    from tensorflow.python.autograph.core import config, config_lib
  except ImportError:  # a TensorFlow without this module: leave AutoGraph as it is
    return False
  rules = tuple(config_lib.DoNotConvert(name) for name in PACKAGES)
  config.CONVERSION_RULES = rules + tuple(config.CONVERSION_RULES)
  return True


@contextlib.contextmanager
def autograph_converts_seqio_utils() -> Iterator[None]:
  """While building a dataset: AutoGraph converts seqio.utils again.

  skip_seqio_autograph tells AutoGraph to skip seqio (it only costs time there), but seqio's
  packing (utils.trim_and_pack_dataset) loops `for i in tf.range(...)` over a tensor, which only
  AutoGraph turns into a while_loop. tf.data traces map functions when the dataset is built, so a
  Convert rule ahead of the others for just that call is enough; the rules are restored after.
  """
  try:
    from tensorflow.python.autograph.core import config, config_lib
  except ImportError:  # a TensorFlow without this module also has no skip rule to undo
    yield
    return
  saved = config.CONVERSION_RULES
  config.CONVERSION_RULES = (config_lib.Convert("seqio.utils"),) + tuple(saved)
  try:
    yield
  finally:
    config.CONVERSION_RULES = saved
