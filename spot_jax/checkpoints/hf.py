"""HF transformers T5 <-> our (t5x-named) parameters, and HF checkpoint directories.

An HF directory is config.json + model.safetensors (or pytorch_model.bin, read through torch if it is
installed). torch is never needed to read or write safetensors: we use safetensors' numpy API.

Example row of the name map (T5 1.1):
  "encoder.block.0.layer.0.SelfAttention.q.weight" [H*D, E]  <->  "encoder/layers_0/attention/query/kernel" [E, H*D]
Torch Linear weights are [out, in]; t5x kernels are [in, out], hence the transposes.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping

import numpy as np
from etils import epath

from spot_jax.io import atomic_directory
from spot_jax.errors import CheckpointError
from spot_jax.model.config import T5Config
from spot_jax.model.params import check_params, flatten, unflatten

_ATTN = {"q": "query", "k": "key", "v": "value", "o": "out"}


def _mlp_names(config: T5Config) -> list[tuple[str, str]]:
  wis = ["wi"] if not config.is_gated else [f"wi_{i}" for i in range(len(config.mlp_activations))]
  return [(w, w) for w in wis] + [("wo", "wo")]


def name_map(config: T5Config) -> Iterator[tuple[str, str, bool]]:
  """Yields (hf_name, our_name, transpose) for every parameter of `config`."""
  yield "shared.weight", "token_embedder/embedding", False
  for stack, n_layers in (("encoder", config.num_encoder_layers), ("decoder", config.num_decoder_layers)):
    yield (f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
           f"{stack}/relpos_bias/rel_embedding", True)  # [buckets, H] <-> [H, buckets]
    yield f"{stack}.final_layer_norm.weight", f"{stack}/{stack}_norm/scale", False
    for i in range(n_layers):
      hf, ours = f"{stack}.block.{i}.layer", f"{stack}/layers_{i}"
      if stack == "encoder":
        blocks = [("0.SelfAttention", "attention", "pre_attention_layer_norm")]
        mlp_index = 1
      else:
        blocks = [("0.SelfAttention", "self_attention", "pre_self_attention_layer_norm"),
                  ("1.EncDecAttention", "encoder_decoder_attention", "pre_cross_attention_layer_norm")]
        mlp_index = 2
      for hf_attn, our_attn, our_norm in blocks:
        for a, b in _ATTN.items():
          yield f"{hf}.{hf_attn}.{a}.weight", f"{ours}/{our_attn}/{b}/kernel", True
        yield f"{hf}.{hf_attn.split('.')[0]}.layer_norm.weight", f"{ours}/{our_norm}/scale", False
      for a, b in _mlp_names(config):
        yield f"{hf}.{mlp_index}.DenseReluDense.{a}.weight", f"{ours}/mlp/{b}/kernel", True
      yield f"{hf}.{mlp_index}.layer_norm.weight", f"{ours}/pre_mlp_layer_norm/scale", False
  if not config.logits_via_embedding:
    yield "lm_head.weight", "decoder/logits_dense/kernel", True


def to_hf_state_dict(params: Mapping, config: T5Config) -> dict[str, np.ndarray]:
  """Our parameter tree -> HF T5ForConditionalGeneration state dict (numpy, contiguous)."""
  flat = flatten(params)
  check_params(flat, config, source="parameter tree")
  out = {}
  for hf_name, ours, transpose in name_map(config):
    value = np.asarray(flat[ours])
    out[hf_name] = np.ascontiguousarray(value.T if transpose else value)
  return out


def from_hf_state_dict(state_dict: Mapping[str, Any], config: T5Config) -> dict:
  """HF state dict (numpy or torch tensors) -> our nested parameter tree.

  Tied copies HF keeps (encoder/decoder.embed_tokens, lm_head of tied models) are ignored.
  """
  flat, missing = {}, []
  for hf_name, ours, transpose in name_map(config):
    if hf_name == "lm_head.weight" and hf_name not in state_dict:
      hf_name = "shared.weight"  # saved tied (transformers>=5) but used without output rescale
    if hf_name not in state_dict:
      missing.append(hf_name)
      continue
    value = _to_numpy(state_dict[hf_name])
    flat[ours] = value.T if transpose else value
  if missing:
    raise CheckpointError(f"HF state dict lacks {len(missing)} parameters of config {config.name!r} "
                          f"(first: {missing[0]}); pick the config it was saved with.")
  check_params(flat, config, source="HF state dict")
  return unflatten(flat)


def _to_numpy(x: Any) -> np.ndarray:
  if hasattr(x, "detach"):  # a torch tensor; bf16 goes through float32 (numpy has no bf16 in torch)
    x = x.detach().cpu()
    if str(x.dtype) == "torch.bfloat16":
      x = x.float()
    return x.numpy()
  return np.asarray(x)


def to_hf_config(config: T5Config) -> dict[str, Any]:
  """Our config -> HF T5Config dict (config.json)."""
  if config.is_gated:
    act = config.mlp_activations[0]
    ff = "gated-" + {"gelu": "gelu", "gelu_exact": "gelu", "silu": "silu"}.get(act, act)
  else:
    ff = config.mlp_activations[0]
  return {
      "architectures": ["T5ForConditionalGeneration"], "model_type": "t5", "is_encoder_decoder": True,
      "vocab_size": config.vocab_size, "d_model": config.emb_dim, "d_kv": config.head_dim,
      "d_ff": config.mlp_dim, "num_layers": config.num_encoder_layers,
      "num_decoder_layers": config.num_decoder_layers, "num_heads": config.num_heads,
      "relative_attention_num_buckets": config.relative_attention_num_buckets,
      "relative_attention_max_distance": config.relative_attention_max_distance,
      "dropout_rate": config.dropout_rate, "layer_norm_epsilon": config.layer_norm_epsilon,
      "feed_forward_proj": ff, "tie_word_embeddings": config.logits_via_embedding,
      "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0,
      "spot_jax_config": config.to_dict(),  # exact round trip (activation variants, dtypes, name)
  }


def from_hf_config(d: Mapping[str, Any]) -> T5Config:
  """HF config.json dict -> our config (exact if it was written by `to_hf_config`)."""
  if "spot_jax_config" in d:
    return T5Config.from_dict(d["spot_jax_config"])
  ff = d.get("feed_forward_proj", "relu")
  gated = ff.startswith("gated-")
  act = ff.split("-")[-1]
  act = {"gelu_new": "gelu", "gelu": "gelu", "relu": "relu", "silu": "silu"}.get(act, act)
  n_layers = d["num_layers"]
  return T5Config(
      vocab_size=d["vocab_size"], emb_dim=d["d_model"], head_dim=d["d_kv"], mlp_dim=d["d_ff"],
      num_heads=d["num_heads"], num_encoder_layers=n_layers,
      num_decoder_layers=d.get("num_decoder_layers") or n_layers,
      mlp_activations=(act, "linear") if gated else (act,),
      # transformers>=5 always writes tie_word_embeddings=true and keeps T5 1.1's "no output
      # rescale" in scale_decoder_outputs; older configs say tie_word_embeddings=false.
      logits_via_embedding=d.get("scale_decoder_outputs", d.get("tie_word_embeddings", True)),
      relative_attention_num_buckets=d.get("relative_attention_num_buckets", 32),
      relative_attention_max_distance=d.get("relative_attention_max_distance", 128),
      dropout_rate=d.get("dropout_rate", 0.1), layer_norm_epsilon=d.get("layer_norm_epsilon", 1e-6),
      name=d.get("_name_or_path") or "hf")


def read_hf_checkpoint(path: str | epath.PathLike) -> tuple[T5Config, dict]:
  """Reads an HF T5 directory (config.json + model.safetensors | pytorch_model.bin)."""
  path = epath.Path(path)
  config_file = path / "config.json"
  if not config_file.exists():
    raise CheckpointError(f"{path} is not an HF checkpoint directory: no config.json; "
                          "expected config.json + model.safetensors")
  try:
    config = from_hf_config(json.loads(config_file.read_text()))
  except (KeyError, ValueError) as e:
    raise CheckpointError(f"{config_file} is not a T5 config ({e!r})") from None
  weights = path / "model.safetensors"
  if weights.exists():
    from safetensors.numpy import load
    try:
      state_dict = load(weights.read_bytes())
    except Exception as e:  # safetensors raises its own error types for corrupt files
      raise CheckpointError(f"cannot read {weights}: {e}") from None
  elif (path / "pytorch_model.bin").exists():
    try:
      import torch
    except ImportError:
      raise CheckpointError(f"{path} holds pytorch_model.bin, which needs torch; install torch or "
                            "convert it to model.safetensors") from None
    with (path / "pytorch_model.bin").open("rb") as f:
      state_dict = torch.load(f, map_location="cpu", weights_only=True)
  else:
    raise CheckpointError(f"{path} has config.json but no model.safetensors or pytorch_model.bin")
  return config, from_hf_state_dict(state_dict, config)


def write_hf_checkpoint(path: str | epath.PathLike, params: Mapping, config: T5Config, *,
                        overwrite: bool = False) -> None:
  """Writes config.json + model.safetensors so `T5ForConditionalGeneration.from_pretrained` loads it."""
  from safetensors.numpy import save
  state_dict = {k: v.astype(np.float32) if v.dtype.name == "bfloat16" else v
                for k, v in to_hf_state_dict(params, config).items()}
  exists = CheckpointError(f"{path} already exists; choose another destination or pass "
                           "--overwrite")
  with atomic_directory(path, overwrite=overwrite, exists_error=exists) as tmp:
    (tmp / "config.json").write_text(json.dumps(to_hf_config(config), indent=2))
    (tmp / "model.safetensors").write_bytes(save(state_dict, metadata={"format": "pt"}))
