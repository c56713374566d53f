"""seqio's own input functions run without AutoGraph.

tf.data's `map` passes every function through AutoGraph before tracing it. seqio's preprocessors
and feature converters (tokenize, append_eos_after_trim, trim_and_pad, the EncDec converter, ...)
are plain TensorFlow whose Python control flow tests Python values only, so converting them changes
nothing but the time: about 20 functions at ~0.1-0.5 s each, every process. On 2 CPU cores that was
a quarter of a one-step `spot-jax train` run (37 s -> 28 s, measured with a study on the other
core). User preprocessors (tasks/, any module of yours) are still converted as TensorFlow does.

TensorFlow has no public switch for a whole package, so this adds a DoNotConvert rule to AutoGraph's
conversion rules (the mechanism behind TensorFlow's own do-not-convert list). If a TensorFlow
release moves that module, nothing is changed and pipelines run as before, only slower.
"""

from __future__ import annotations

import functools

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
