"""seqio's functions skip AutoGraph; everyone else's preprocessors are still converted."""

import numpy as np
import seqio
import tensorflow as tf
from tensorflow.python.autograph.impl import conversion

from spot_jax.data.autograph import skip_seqio_autograph


def _clip_negative(x):  # Python `if` on a tensor: runs in tf.data only when AutoGraph converts it
  if x < 0:
    x = tf.zeros_like(x)
  return x


def test_seqio_functions_are_left_alone_and_user_functions_converted():
  assert skip_seqio_autograph()
  assert skip_seqio_autograph()  # idempotent: the rule is added once
  assert conversion.is_allowlisted(seqio.preprocessors.append_eos_after_trim)
  assert conversion.is_allowlisted(seqio.utils.trim_and_pad_dataset)
  assert not conversion.is_allowlisted(_clip_negative)
  ds = tf.data.Dataset.from_tensor_slices(np.array([-2, 3], np.int32)).map(_clip_negative)
  assert list(ds.as_numpy_iterator()) == [0, 3]
