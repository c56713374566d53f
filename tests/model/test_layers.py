"""Layer-level invariants: relative position buckets, parameter names and logical axes."""

import numpy as np
import pytest
import torch
from transformers.models.t5.modeling_t5 import T5Attention

from spot_jax.errors import ConfigError
from spot_jax.model import get_config, param_shapes
from spot_jax.model.layers import relative_position_buckets
from spot_jax.model.params import flatten, logical_axes


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (4, 8), (8, 20)])
def test_relative_position_buckets_match_hf(bidirectional, num_buckets, max_distance):
  ours = relative_position_buckets(300, 310, bidirectional=bidirectional, num_buckets=num_buckets,
                                   max_distance=max_distance)
  relative = np.arange(310)[None, :] - np.arange(300)[:, None]
  ref = T5Attention._relative_position_bucket(torch.tensor(relative), bidirectional=bidirectional,
                                              num_buckets=num_buckets, max_distance=max_distance)
  np.testing.assert_array_equal(ours, ref.numpy())


def test_tiny_config_has_the_52_t5x_parameters():
  shapes = param_shapes(get_config("t5_1_1_tiny"))
  assert len(shapes) == 52
  assert shapes["token_embedder/embedding"] == (32128, 4)
  assert shapes["encoder/layers_0/attention/query/kernel"] == (4, 4)
  assert shapes["encoder/relpos_bias/rel_embedding"] == (2, 4)
  assert shapes["decoder/layers_1/mlp/wi_1/kernel"] == (4, 8)
  assert shapes["decoder/logits_dense/kernel"] == (4, 32128)


def test_t5_1_0_names_have_single_wi_and_no_logits_dense():
  shapes = param_shapes(get_config("t5_1_0_small"))
  assert "encoder/layers_0/mlp/wi/kernel" in shapes
  assert not any("wi_0" in k or "logits_dense" in k for k in shapes)
  # Published T5 1.0 small: 60.5M parameters (embedding shared, 32128 vocabulary).
  assert sum(np.prod(s) for s in shapes.values()) == 60_506_624


def test_published_t5_1_1_base_size():
  shapes = param_shapes(get_config("t5_1_1_base"))
  assert sum(np.prod(s) for s in shapes.values()) == 247_577_856


def test_logical_axes_golden():
  axes = {k: tuple(v) for k, v in flatten(logical_axes(get_config("t5_1_1_tiny"))).items()}
  assert axes["token_embedder/embedding"] == ("vocab", "embed")
  assert axes["encoder/layers_0/attention/query/kernel"] == ("embed", "joined_kv")
  assert axes["encoder/layers_0/attention/out/kernel"] == ("joined_kv", "embed")
  assert axes["decoder/layers_0/mlp/wo/kernel"] == ("mlp", "embed")
  assert axes["decoder/logits_dense/kernel"] == ("embed", "vocab")
  assert axes["encoder/relpos_bias/rel_embedding"] == ("heads", "relpos_buckets")
  assert axes["encoder/encoder_norm/scale"] == ("embed",)
  assert set(axes) == set(param_shapes(get_config("t5_1_1_tiny")))


def test_unknown_config_name_lists_the_known_ones():
  with pytest.raises(ConfigError, match="unknown model config 't5_2_base'.*t5_1_1_base"):
    get_config("t5_2_base")
