"""The frozen T5 encoder-decoder: config, network, parameters, decoding."""

from spot_jax.model.config import CONFIGS, T5Config, get_config
from spot_jax.model.params import check_params, init_params, param_shapes
from spot_jax.model.t5 import T5

__all__ = ["CONFIGS", "T5", "T5Config", "check_params", "get_config", "init_params", "param_shapes"]
