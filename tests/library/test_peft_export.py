"""PEFT export: HF PEFT loads our adapter directory and prompts the encoder exactly like we do."""

import json

import numpy as np
import peft  # the test extra: the HF PEFT reference
import pytest
import torch
from hf_reference import hf_logits, make_hf_model, random_batch, to_ours

from spot_jax.library.peft_export import (CONFIG_FILE, WEIGHTS_FILE, export_peft,
                                          export_peft_for_config)
from spot_jax.peft import PromptError  # noqa: E402

P = 5


@pytest.fixture(scope="module")
def base(tmp_path_factory):
  """(HF model, its saved directory): a tiny random T5 1.1."""
  model = make_hf_model("1.1")
  path = tmp_path_factory.mktemp("base")
  model.save_pretrained(path)
  return model, path


def _prompt(d_model: int) -> np.ndarray:
  return np.random.default_rng(3).normal(size=(P, d_model)).astype(np.float32)  # [P, E]


def test_peft_loads_the_prompt_and_prompts_the_encoder_only(base, tmp_path):
  model, base_dir = base
  prompt = _prompt(model.config.d_model)
  out = export_peft(prompt, tmp_path / "adapter", base_model_name_or_path=str(base_dir),
                    num_layers=model.config.num_layers, num_attention_heads=model.config.num_heads,
                    token_dim=model.config.d_model)
  assert sorted(p.name for p in out.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
  inputs, decoder_inputs = random_batch(model.config.vocab_size)
  want = hf_logits(model, inputs, decoder_inputs, prefix=np.repeat(prompt[None], len(inputs), 0))

  peft_model = peft.PeftModel.from_pretrained(model, str(out)).eval()
  config = peft_model.peft_config["default"]
  assert config.num_transformer_submodules == 1 and config.num_virtual_tokens == P
  weights = peft_model.prompt_encoder["default"].embedding.weight.detach().numpy()
  np.testing.assert_allclose(weights, prompt, rtol=0, atol=0)
  ids = torch.tensor(inputs)
  with torch.no_grad():
    got = peft_model(input_ids=ids, attention_mask=(ids > 0).long(),
                     decoder_input_ids=torch.tensor(decoder_inputs)).logits.numpy()
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_export_for_config_takes_the_encoder_sizes(base, tmp_path):
  model, base_dir = base
  config, _ = to_ours(model)
  out = export_peft_for_config(_prompt(config.emb_dim), tmp_path / "adapter", config,
                               base_model_name_or_path=str(base_dir))
  written = json.loads((out / CONFIG_FILE).read_text())
  assert (written["num_layers"], written["num_attention_heads"], written["token_dim"]) == (
      model.config.num_layers, model.config.num_heads, model.config.d_model)
  assert written["peft_type"] == "PROMPT_TUNING" and written["task_type"] == "SEQ_2_SEQ_LM"


def test_refuses_a_wrong_size_and_an_existing_directory(base, tmp_path):
  model, base_dir = base
  kwargs = dict(base_model_name_or_path=str(base_dir), num_layers=3, num_attention_heads=3,
                token_dim=model.config.d_model)
  with pytest.raises(PromptError, match="token_dim"):
    export_peft(np.zeros((P, 7), np.float32), tmp_path / "a", **kwargs)
  assert not (tmp_path / "a").exists()
  export_peft(_prompt(model.config.d_model), tmp_path / "a", **kwargs)
  with pytest.raises(PromptError, match="already exists; .* pass overwrite=True"):
    export_peft(_prompt(model.config.d_model), tmp_path / "a", **kwargs)
  export_peft(np.ones((P, model.config.d_model)), tmp_path / "a", overwrite=True, **kwargs)
  assert [p.name for p in tmp_path.iterdir()] == ["a"]
