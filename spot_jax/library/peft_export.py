"""A soft prompt as a Hugging Face PEFT prompt-tuning adapter, so PyTorch users can run it.

  OUT/adapter_config.json        peft_type PROMPT_TUNING, task_type SEQ_2_SEQ_LM, P virtual tokens
  OUT/adapter_model.safetensors  {"prompt_embeddings": float32 [P, E]}

`peft.PeftModel.from_pretrained(t5, OUT)` loads it. The prompt goes before the encoder input only,
as in prompt tuning and SPoT: num_transformer_submodules is 1 (PEFT would default to 2 for
SEQ_2_SEQ_LM, i.e. a [2P, E] table whose second half is meant for the decoder).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from etils import epath
from safetensors.numpy import save as save_safetensors

from spot_jax import __version__
from spot_jax.io import atomic_directory
from spot_jax.model.config import T5Config
from spot_jax.peft.prompts import PromptError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
WEIGHTS_KEY = "prompt_embeddings"  # the key PEFT's save_pretrained uses for prompt tuning


def export_peft(prompt: Any, out_dir: str | epath.PathLike, *, base_model_name_or_path: str,
                num_layers: int, num_attention_heads: int, token_dim: int,
                overwrite: bool = False) -> epath.Path:
  """Writes prompt [P, E] as a PEFT adapter directory `out_dir`, all or nothing.

  `base_model_name_or_path` is what PEFT records as the base (an HF hub name or directory);
  num_layers / num_attention_heads / token_dim describe that model's encoder.
  """
  prompt = np.asarray(prompt)
  if prompt.ndim != 2 or not np.issubdtype(prompt.dtype, np.number):
    raise PromptError(f"a prompt to export must be a numeric [length, embed] array, got shape "
                      f"{prompt.shape} ({prompt.dtype})")
  if prompt.shape[1] != token_dim:
    raise PromptError(f"the prompt has embedding size {prompt.shape[1]} but the base model's "
                      f"token_dim is {token_dim}; export it for the model it was tuned on")
  prompt = np.ascontiguousarray(prompt, dtype=np.float32)
  if not np.all(np.isfinite(prompt)):
    raise PromptError("the prompt to export contains NaN or inf values")
  config = {
      "auto_mapping": None,
      "base_model_name_or_path": base_model_name_or_path,
      "inference_mode": True,
      "modules_to_save": None,
      "num_attention_heads": int(num_attention_heads),
      "num_layers": int(num_layers),
      "num_transformer_submodules": 1,  # encoder-side prompt only
      "num_virtual_tokens": int(prompt.shape[0]),
      "peft_type": "PROMPT_TUNING",
      "prompt_tuning_init": "RANDOM",  # unused when loading; TEXT would need a tokenizer
      "prompt_tuning_init_text": None,
      "revision": None,
      "task_type": "SEQ_2_SEQ_LM",
      "token_dim": int(token_dim),
      "tokenizer_kwargs": None,
      "tokenizer_name_or_path": None,
  }
  weights = save_safetensors({WEIGHTS_KEY: prompt},
                             metadata={"format": "pt", "spot_jax_version": __version__})
  out_dir = epath.Path(out_dir)
  exists = PromptError(f"{out_dir} already exists; choose another directory or pass overwrite=True "
                       "(--overwrite on the command line)")
  with atomic_directory(out_dir, overwrite=overwrite, exists_error=exists) as tmp:
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    (tmp / WEIGHTS_FILE).write_bytes(weights)
  return out_dir


def export_peft_for_config(prompt: Any, out_dir: str | epath.PathLike, config: T5Config, *,
                           base_model_name_or_path: str, overwrite: bool = False) -> epath.Path:
  """`export_peft` with the encoder sizes taken from our T5Config of the frozen model."""
  return export_peft(prompt, out_dir, base_model_name_or_path=base_model_name_or_path,
                     num_layers=config.num_encoder_layers, num_attention_heads=config.num_heads,
                     token_dim=config.emb_dim, overwrite=overwrite)
