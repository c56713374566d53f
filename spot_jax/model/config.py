"""T5 model configurations: one frozen dataclass, and the published sizes by name.

Field names follow t5x's `network.T5Config` so gin files read the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from spot_jax.errors import ConfigError


# Names of the activation rematerialisation policies (spot_jax.model.layers.remat_layer maps them).
REMAT_POLICIES = ("none", "full", "dots", "dots_with_no_batch_dims")


@dataclasses.dataclass(frozen=True)
class T5Config:
  """Hyper-parameters of a T5 encoder-decoder (T5 1.0, T5 1.1, LM-adapted, mT5)."""

  vocab_size: int = 32128
  emb_dim: int = 512
  num_heads: int = 8
  num_encoder_layers: int = 6
  num_decoder_layers: int = 6
  head_dim: int = 64
  mlp_dim: int = 2048
  # ('relu',) is T5 1.0; ('gelu', 'linear') is the gated-GELU of T5 1.1 / LM-adapted / mT5.
  mlp_activations: tuple[str, ...] = ("gelu", "linear")
  dropout_rate: float = 0.1
  # True: logits = embedding.attend(y) * emb_dim**-0.5 (T5 1.0); False: separate `logits_dense`.
  logits_via_embedding: bool = False
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  layer_norm_epsilon: float = 1e-6
  dtype: str = "float32"  # activations
  param_dtype: str = "float32"
  float32_attention_logits: bool = True
  # Activation rematerialisation of each encoder/decoder layer in the backward pass (a training
  # knob, like dropout_rate): 'none' keeps every activation; 'full' recomputes each layer;
  # 'dots' / 'dots_with_no_batch_dims' save only matmul outputs (jax.checkpoint_policies).
  # Prompt tuning still backpropagates through every frozen layer, so this is what bounds
  # activation memory at long inputs (docs/scale.md). Numerics are unchanged.
  remat_policy: str = "none"
  name: str = "custom"

  def __post_init__(self):
    for act in self.mlp_activations:
      if act not in ("gelu", "relu", "linear", "gelu_exact", "silu"):
        raise ConfigError(f"unknown MLP activation {act!r}; use gelu, relu, linear, gelu_exact or silu")
    if self.remat_policy not in REMAT_POLICIES:
      raise ConfigError(f"unknown remat_policy {self.remat_policy!r}; use one of "
                        f"{', '.join(REMAT_POLICIES)}")
    if self.relative_attention_num_buckets % 2:
      raise ConfigError("relative_attention_num_buckets must be even (half per direction in the encoder)")

  def replace(self, **changes: Any) -> "T5Config":
    return dataclasses.replace(self, **changes)

  @property
  def is_gated(self) -> bool:
    return len(self.mlp_activations) > 1

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d["mlp_activations"] = list(self.mlp_activations)
    return d

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "T5Config":
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
      raise ConfigError(f"unknown T5Config fields {unknown}")
    d = dict(d)
    if "mlp_activations" in d:
      d["mlp_activations"] = tuple(d["mlp_activations"])
    return cls(**d)


# (emb_dim, num_heads, head_dim, mlp_dim, num_layers) of the published checkpoints.
_T5_1_0_SIZES = {
    "small": (512, 8, 64, 2048, 6),
    "base": (768, 12, 64, 3072, 12),
    "large": (1024, 16, 64, 4096, 24),
    "xl": (1024, 32, 128, 16384, 24),  # "3B"
    "xxl": (1024, 128, 128, 65536, 24),  # "11B"
}
_T5_1_1_SIZES = {
    "small": (512, 6, 64, 1024, 8),
    "base": (768, 12, 64, 2048, 12),
    "large": (1024, 16, 64, 2816, 24),
    "xl": (2048, 32, 64, 5120, 24),
    "xxl": (4096, 64, 64, 10240, 24),
}
_FAMILIES = {
    # family: (sizes, vocab, activations, logits_via_embedding)
    "t5_1_0": (_T5_1_0_SIZES, 32128, ("relu",), True),
    "t5_1_1": (_T5_1_1_SIZES, 32128, ("gelu", "linear"), False),
    "t5_1_1_lm_adapted": (_T5_1_1_SIZES, 32128, ("gelu", "linear"), False),
    "mt5": (_T5_1_1_SIZES, 250112, ("gelu", "linear"), False),
}


def _build_registry() -> dict[str, T5Config]:
  configs = {}
  for family, (sizes, vocab, acts, tied) in _FAMILIES.items():
    for size, (emb, heads, head_dim, mlp, layers) in sizes.items():
      name = f"{family}_{size}"
      configs[name] = T5Config(vocab_size=vocab, emb_dim=emb, num_heads=heads, head_dim=head_dim,
                               mlp_dim=mlp, num_encoder_layers=layers, num_decoder_layers=layers,
                               mlp_activations=acts, logits_via_embedding=tied, name=name)
  # Tiny configs for tests and smoke runs. `t5_1_1_tiny` is the shape of the t5x test checkpoint
  # shipped with google-research/prompt-tuning (test_data/test_t5_1_1_tiny).
  configs["t5_1_1_tiny"] = T5Config(vocab_size=32128, emb_dim=4, num_heads=2, head_dim=2, mlp_dim=8,
                                    num_encoder_layers=2, num_decoder_layers=2,
                                    relative_attention_num_buckets=4,
                                    relative_attention_max_distance=8, name="t5_1_1_tiny")
  configs["t5_1_1_test"] = T5Config(vocab_size=512, emb_dim=32, num_heads=4, head_dim=8, mlp_dim=64,
                                    num_encoder_layers=2, num_decoder_layers=2, name="t5_1_1_test")
  configs["t5_1_0_test"] = configs["t5_1_1_test"].replace(mlp_activations=("relu",),
                                                          logits_via_embedding=True, name="t5_1_0_test")
  # The embedded default's frozen model (tools/pretrain_embedded.py, shipped in spot_jax/embedded):
  # a T5 1.1 small enough that a prompt-tuning step takes ~0.1 s on 2 CPU cores. Pretrained
  # without dropout, and prompt tuning at this scale does not want it either.
  configs["t5_1_1_embedded"] = T5Config(vocab_size=384, emb_dim=128, num_heads=4, head_dim=32,
                                        mlp_dim=384, num_encoder_layers=2, num_decoder_layers=2,
                                        dropout_rate=0.0, name="t5_1_1_embedded")
  return configs


CONFIGS: dict[str, T5Config] = _build_registry()


def get_config(name: str, **overrides: Any) -> T5Config:
  """Returns the named config, e.g. `get_config("t5_1_1_base", dropout_rate=0.0)`."""
  if name not in CONFIGS:
    raise ConfigError(f"unknown model config {name!r}; known: {', '.join(sorted(CONFIGS))}")
  config = CONFIGS[name]
  return config.replace(**overrides) if overrides else config
