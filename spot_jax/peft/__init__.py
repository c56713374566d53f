"""Parameter-efficient fine-tuning: soft prompts for a frozen T5 (no gin, orbax or seqio here)."""

from spot_jax.peft.prompts import (
    ClassLabelInit,
    FromFileInit,
    PromptError,
    PromptInitializer,
    SampledVocabInit,
    UniformInit,
    WeightedCombinationInit,
    load_prompt_file,
    save_prompt_file,
)

__all__ = [
    "ClassLabelInit", "FromFileInit", "PromptError", "PromptInitializer", "SampledVocabInit",
    "UniformInit", "WeightedCombinationInit", "load_prompt_file", "save_prompt_file",
]
