"""Soft prompt initializers: plain functions of (rng, frozen embedding table, length) -> [P, E].

Each initializer is a small frozen dataclass so gin can configure it by its fields later; none of
them knows about gin, orbax or seqio. Prompt files are plain .npy arrays ([P, E] float32, or
[1, P, E] as some released google prompt-tuning files are), read through etils.epath so gs:// works.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Protocol, Union

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from spot_jax.io import atomic_write
from spot_jax.errors import SpotError

Array = Union[np.ndarray, jax.Array]
# Token ids that carry no label meaning: T5's pad (0) and EOS (1).
_IGNORED_LABEL_IDS = (0, 1)


class PromptError(SpotError):
  """A prompt that cannot be built: wrong shape, unreadable file, bad initializer settings."""


class PromptInitializer(Protocol):
  """Builds a float32 [length, E] prompt from the frozen token embedding table [V, E]."""

  def __call__(self, rng: jax.Array, embedding: Array, length: int) -> jax.Array:
    ...


def _check_length(length: int) -> int:
  if int(length) != length or length < 1:
    raise PromptError(f"the prompt length must be a positive integer, got {length!r}")
  return int(length)


def _embed_dim(embedding: Array) -> int:
  if embedding.ndim != 2:
    raise PromptError(f"the embedding table must be [vocab, embed], got shape {tuple(embedding.shape)}")
  return int(embedding.shape[1])


def load_prompt_file(path: str | epath.PathLike) -> np.ndarray:
  """Reads a .npy prompt as float32 [P, E]; a leading batch axis of 1 ([1, P, E]) is squeezed."""
  path = epath.Path(path)
  if not path.exists():
    raise PromptError(f"prompt file {path} does not exist")
  try:
    with path.open("rb") as f:
      # Through BytesIO: np.load wants a seekable file, which remote (gs://) handles may not be.
      arr = np.load(io.BytesIO(f.read()), allow_pickle=False)
  except (OSError, ValueError, EOFError) as e:
    raise PromptError(f"cannot read prompt file {path} as a .npy array ({type(e).__name__}: {e})") from e
  if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number):
    raise PromptError(f"prompt file {path} does not hold a numeric array")
  if arr.ndim == 3 and arr.shape[0] == 1:
    arr = arr[0]
  if arr.ndim != 2:
    raise PromptError(f"prompt file {path} has shape {arr.shape}; expected [length, embed] "
                      "(or [1, length, embed])")
  if not np.all(np.isfinite(arr)):
    raise PromptError(f"prompt file {path} contains NaN or inf values")
  return arr.astype(np.float32)


def save_prompt_file(path: str | epath.PathLike, prompt: Array) -> None:
  """Writes a [P, E] prompt as float32 .npy atomically (temp file in the same directory, then rename)."""
  prompt = np.asarray(prompt, dtype=np.float32)
  if prompt.ndim != 2:
    raise PromptError(f"a prompt to save must be [length, embed], got shape {prompt.shape}")
  buf = io.BytesIO()
  np.save(buf, prompt, allow_pickle=False)
  atomic_write(path, buf.getvalue())


def _check_prompt(prompt: np.ndarray, what: str, length: int, embed: int) -> None:
  """Refuses a [rows, cols] prompt that does not fit a [length, embed] slot; `what` names its source."""
  rows, cols = prompt.shape
  if cols != embed:
    raise PromptError(f"{what} was trained with a model of embedding size {cols}, this model has "
                      f"{embed}; use a prompt trained for a model of this size")
  if rows != length:
    raise PromptError(f"{what} has {rows} rows but the prompt length is {length}; set the prompt "
                      f"length to {rows} or pick another file")


@dataclasses.dataclass(frozen=True)
class UniformInit:
  """Uniform in [-scale, scale]: Lester et al.'s "random uniform" initialization."""

  scale: float = 0.5

  def __call__(self, rng: jax.Array, embedding: Array, length: int) -> jax.Array:
    length, embed = _check_length(length), _embed_dim(embedding)
    return jax.random.uniform(rng, (length, embed), jnp.float32, -self.scale, self.scale)  # [P, E]


@dataclasses.dataclass(frozen=True)
class SampledVocabInit:
  """P distinct rows of the first `vocab_limit` embedding rows (SPoT §2.1.4: 5,000 most common tokens).

  T5's SentencePiece ids are roughly frequency-ordered, so the first rows are the common tokens.
  """

  vocab_limit: int = 5000

  def __call__(self, rng: jax.Array, embedding: Array, length: int) -> jax.Array:
    length, _ = _check_length(length), _embed_dim(embedding)
    if self.vocab_limit < 1:
      raise PromptError(f"SampledVocabInit.vocab_limit must be positive, got {self.vocab_limit}")
    n = min(self.vocab_limit, int(embedding.shape[0]))
    if length > n:
      raise PromptError(f"cannot sample {length} distinct prompt rows from {n} vocabulary rows; "
                        "raise vocab_limit or shorten the prompt")
    idx = jax.random.choice(rng, n, (length,), replace=False)  # [P]
    return jnp.asarray(embedding[:n], jnp.float32)[idx]  # [P, E]


@dataclasses.dataclass(frozen=True)
class ClassLabelInit:
  """Row i is the mean embedding of label i's sub-tokens; the remaining rows come from `fallback`.

  Ids 0 (pad) and 1 (EOS) are ignored. With more labels than prompt rows, only the first `length`
  labels are used.
  """

  label_token_ids: tuple[tuple[int, ...], ...]
  fallback: PromptInitializer = SampledVocabInit()

  def __post_init__(self):
    # Tuples (not lists from gin or json) keep the dataclass hashable.
    labels = tuple(tuple(int(t) for t in label) for label in self.label_token_ids)
    for i, label in enumerate(labels):
      if not [t for t in label if t not in _IGNORED_LABEL_IDS]:
        raise PromptError(f"class label {i} has no token ids besides pad/EOS: {label}")
    object.__setattr__(self, "label_token_ids", labels)

  def __call__(self, rng: jax.Array, embedding: Array, length: int) -> jax.Array:
    length, embed = _check_length(length), _embed_dim(embedding)
    vocab = int(embedding.shape[0])
    rows = []
    for i, label in enumerate(self.label_token_ids[:length]):
      ids = [t for t in label if t not in _IGNORED_LABEL_IDS]
      bad = [t for t in ids if not 0 <= t < vocab]
      if bad:  # jnp indexing would silently clamp them.
        raise PromptError(f"class label {i} has token ids {bad} outside the vocabulary of size {vocab}")
      rows.append(jnp.asarray(embedding[np.asarray(ids)], jnp.float32).mean(axis=0))  # [E]
    prompt = jnp.stack(rows)  # [L, E]
    rest = length - len(rows)
    if rest:
      filler = jnp.asarray(self.fallback(rng, embedding, rest), jnp.float32)  # [P - L, E]
      if filler.shape != (rest, embed):
        raise PromptError(f"the fallback initializer returned shape {filler.shape}, expected {(rest, embed)}")
      prompt = jnp.concatenate([prompt, filler], axis=0)
    return prompt  # [P, E]


@dataclasses.dataclass(frozen=True)
class FromFileInit:
  """Loads a saved prompt (ours, or a released google prompt-tuning .npy); ignores the rng.

  `expected_embed`, when set, is the embedding size the file must have; it must also match the model.
  """

  path: str
  expected_embed: int | None = None

  def __call__(self, rng: jax.Array, embedding: Array, length: int) -> jax.Array:
    del rng
    length, embed = _check_length(length), _embed_dim(embedding)
    prompt = load_prompt_file(self.path)
    expected = embed if self.expected_embed is None else self.expected_embed
    _check_prompt(prompt, f"prompt file {self.path}", length, expected)
    if expected != embed:
      raise PromptError(f"FromFileInit.expected_embed is {expected} but this model's embedding size "
                        f"is {embed}; fix expected_embed or the model")
    return jnp.asarray(prompt, jnp.float32)  # [P, E]


@dataclasses.dataclass(frozen=True)
class WeightedCombinationInit:
  """sum_i w_i * prompt_i / sum_i w_i: e.g. retrieval's top-k average with alpha_r = sim_r / sum sim.

  `paths_or_prompts` holds [P, E] arrays and/or .npy paths (loaded like FromFileInit); ignores the rng.
  """

  paths_or_prompts: tuple
  weights: tuple[float, ...]

  def __post_init__(self):
    sources = tuple(self.paths_or_prompts)
    weights = tuple(float(w) for w in self.weights)
    if not sources:
      raise PromptError("WeightedCombinationInit needs at least one prompt")
    if len(weights) != len(sources):
      raise PromptError(f"WeightedCombinationInit got {len(sources)} prompts but {len(weights)} weights")
    if not all(np.isfinite(w) and w >= 0 for w in weights):
      raise PromptError(f"prompt combination weights must be finite and non-negative, got {weights}")
    if sum(weights) <= 0:
      raise PromptError(f"prompt combination weights must have a positive sum, got {weights}")
    object.__setattr__(self, "paths_or_prompts", sources)
    object.__setattr__(self, "weights", weights)

  def __call__(self, rng: jax.Array, embedding: Array, length: int) -> jax.Array:
    del rng
    length, embed = _check_length(length), _embed_dim(embedding)
    prompts = [_load_source(src, i, length, embed) for i, src in enumerate(self.paths_or_prompts)]
    w = np.asarray(self.weights, np.float64)  # [K]
    mean = np.tensordot(w / w.sum(), np.stack(prompts).astype(np.float64), axes=1)  # [P, E]
    return jnp.asarray(mean, jnp.float32)


def _load_source(src, index: int, length: int, embed: int) -> np.ndarray:
  """One prompt of a combination, as a checked float32 [length, embed] array."""
  if isinstance(src, (str, epath.Path)) or hasattr(src, "__fspath__"):
    prompt, what = load_prompt_file(src), f"prompt file {src}"
  else:
    prompt, what = np.asarray(src, np.float32), f"prompt {index} of the combination"
    if prompt.ndim != 2:
      raise PromptError(f"{what} has shape {prompt.shape}; expected [length, embed]")
  _check_prompt(prompt, what, length, embed)
  return prompt


__all__ = [
    "ClassLabelInit", "FromFileInit", "PromptError", "PromptInitializer", "SampledVocabInit",
    "UniformInit", "WeightedCombinationInit", "load_prompt_file", "save_prompt_file",
]
