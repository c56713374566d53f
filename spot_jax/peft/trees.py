"""The trainable trees of the four tuning methods, and what the frozen model takes from each.

A run trains one tree (spot_jax.train.step differentiates it and nothing else):

  prompt   {"prompt": [P, E]}: input-level soft prompt (Lester et al.; SPoT; the seed's "prompt")
  prefix   {"prefix": {"encoder" | "decoder" | "cross": {"key", "value": [L, P, H, D]}}}: per-layer
           keys and values in encoder self-, decoder self- and cross-attention (Li & Liang), or
           {"prefix_mlp": ...}: the same produced by a 2-layer MLP from a [P, E] table (their
           reparameterisation), which `materialize` drops after training
  adapter  {"adapters": {"encoder" | "decoder": {"attention" | "mlp": {"down" [L, E, M],
           "down_bias" [L, M], "up" [L, M, E], "up_bias" [L, E]}}}}: Houlsby bottleneck adapters
           after each layer's (self-)attention and after its MLP; "up" and "up_bias" start at zero,
           so step 0 is the frozen model
  full     {"model": <a copy of the frozen parameters>}: full-model tuning, the baseline

`model_args(trainable, frozen)` turns any of them into the (parameters, peft) pair the model's
functions take (spot_jax.model.t5). Nothing here knows about gin, orbax or seqio.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from spot_jax.errors import SpotError
from spot_jax.model.config import T5Config
from spot_jax.peft.prompts import SampledVocabInit

METHODS = ("prompt", "prefix", "adapter", "full")
Tree = dict[str, Any]
# (group of the prefix tree, stack of the frozen tree, attention module of each layer)
PREFIX_GROUPS = (("encoder", "encoder", "attention"), ("decoder", "decoder", "self_attention"),
                 ("cross", "decoder", "encoder_decoder_attention"))
ADAPTER_SITES = ("attention", "mlp")


class PeftError(SpotError):
  """A tuning method that cannot be built: unknown name, bad sizes."""


@dataclasses.dataclass(frozen=True)
class Method:
  """How a run's trainable tree is shaped and initialised (gin-configurable by its fields)."""
  name: str = "prompt"
  prompt_length: int = 100        # seed: 100 input-level tokens
  prefix_length: int = 10
  prefix_hidden: int = 0          # > 0: MLP reparameterisation with this hidden size
  bottleneck: int = 64            # seed: adapter hidden dim 64
  vocab_limit: Optional[int] = None  # prompt/prefix init samples rows below this id (None: all)

  def __post_init__(self):
    if self.name not in METHODS:
      raise PeftError(f"unknown tuning method {self.name!r}; choose one of {', '.join(METHODS)}")
    for field, minimum in (("prompt_length", 1), ("prefix_length", 0), ("prefix_hidden", 0),
                           ("bottleneck", 1)):
      value = getattr(self, field)
      if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PeftError(f"{field} must be an integer >= {minimum}, got {value!r}")


def _sampled_rows(rng: jax.Array, frozen: Mapping, length: int, vocab_limit: Optional[int]) -> jax.Array:
  init = SampledVocabInit() if vocab_limit is None else SampledVocabInit(vocab_limit=vocab_limit)
  return init(rng, frozen["token_embedder"]["embedding"], length)


def _unit_rms(x: jax.Array) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + 1e-6)


def init_prefix(rng: jax.Array, config: T5Config, frozen: Mapping, length: int,
                vocab_limit: Optional[int] = None) -> Tree:
  """Keys and values of `length` sampled vocabulary embeddings (RMS-normalised, as every layer's
  input is) through each attention's own key/value projections: prefixes that look like real
  tokens to the frozen layers, rather than noise."""
  x = _unit_rms(_sampled_rows(rng, frozen, max(length, 1), vocab_limit)[:length])  # [P, E]
  shape = (length, config.num_heads, config.head_dim)
  tree: Tree = {}
  for group, stack, module in PREFIX_GROUPS:
    layers = [frozen[stack][name][module] for name in sorted(
        (n for n in frozen[stack] if n.startswith("layers_")), key=lambda n: int(n.split("_")[1]))]
    tree[group] = {part: jnp.stack([(x @ layer[part]["kernel"].astype(jnp.float32)).reshape(shape)
                                    for layer in layers])
                   for part in ("key", "value")}
  return tree


def init_prefix_mlp(rng: jax.Array, config: T5Config, frozen: Mapping, length: int, hidden: int,
                    vocab_limit: Optional[int] = None) -> Tree:
  """Li & Liang's reparameterisation: prefix = MLP(table); table [P, E] from sampled vocabulary
  rows, tanh hidden layer, one output head [hidden, 2 (key/value), L, H, D] per group."""
  keys = jax.random.split(rng, 2 + len(PREFIX_GROUPS))
  emb = config.emb_dim
  layers = {"encoder": config.num_encoder_layers, "decoder": config.num_decoder_layers,
            "cross": config.num_decoder_layers}
  tree: Tree = {"embedding": _sampled_rows(keys[0], frozen, length, vocab_limit),
                "hidden": {"kernel": jax.random.normal(keys[1], (emb, hidden)) / np.sqrt(emb),
                           "bias": jnp.zeros((hidden,))}}
  for key, (group, _, _) in zip(keys[2:], PREFIX_GROUPS):
    out = (2, layers[group], config.num_heads, config.head_dim)
    tree[group] = {"kernel": jax.random.normal(key, (hidden,) + out) / np.sqrt(hidden),
                   "bias": jnp.zeros(out)}
  return tree


def prefix_from_mlp(mlp: Mapping) -> Tree:
  """The prefix tree an MLP-reparameterised prefix stands for."""
  z = jnp.tanh(mlp["embedding"] @ mlp["hidden"]["kernel"] + mlp["hidden"]["bias"])  # [P, hidden]
  tree = {}
  for group, _, _ in PREFIX_GROUPS:
    out = jnp.einsum("ph,hclnd->clpnd", z, mlp[group]["kernel"]) + mlp[group]["bias"][:, :, None]
    tree[group] = {"key": out[0], "value": out[1]}  # [L, P, H, D]
  return tree


def init_adapters(rng: jax.Array, config: T5Config, bottleneck: int) -> Tree:
  """Houlsby adapters for every layer of both stacks: "down" fan-in scaled, "up" zero."""
  emb, tree = config.emb_dim, {}
  init = jax.nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=-2,
                                              out_axis=-1)
  stacks = (("encoder", config.num_encoder_layers), ("decoder", config.num_decoder_layers))
  keys = iter(jax.random.split(rng, len(stacks) * len(ADAPTER_SITES)))
  for stack, layers in stacks:
    tree[stack] = {site: {"down": init(next(keys), (layers, emb, bottleneck), jnp.float32),
                          "down_bias": jnp.zeros((layers, bottleneck)),
                          "up": jnp.zeros((layers, bottleneck, emb)),
                          "up_bias": jnp.zeros((layers, emb))}
                   for site in ADAPTER_SITES}
  return tree


def init_trainable(method: Method, config: T5Config, frozen: Mapping, rng: jax.Array) -> Tree:
  """The float32 trainable tree of `method` for the frozen model (a fresh copy for "full")."""
  if method.name == "prompt":
    return {"prompt": _sampled_rows(rng, frozen, method.prompt_length, method.vocab_limit)}
  if method.name == "prefix":
    if method.prefix_hidden:
      return {"prefix_mlp": init_prefix_mlp(rng, config, frozen, method.prefix_length,
                                            method.prefix_hidden, method.vocab_limit)}
    return {"prefix": init_prefix(rng, config, frozen, method.prefix_length, method.vocab_limit)}
  if method.name == "adapter":
    return {"adapters": init_adapters(rng, config, method.bottleneck)}
  # A copy: the train step donates its state, which must never free the frozen buffers.
  return {"model": jax.tree.map(lambda a: jnp.array(a, dtype=jnp.float32, copy=True), frozen)}


def materialize(trainable: Mapping) -> Tree:
  """The tree without training-only reparameterisations (what exports and evaluation use)."""
  out = dict(trainable)
  if "prefix_mlp" in out:
    out["prefix"] = prefix_from_mlp(out.pop("prefix_mlp"))
  return out


def model_args(trainable: Mapping, frozen: Any) -> tuple[Any, Optional[Tree]]:
  """(parameters, peft) for the model: the tuned copy under full tuning, else the frozen tree."""
  tree = materialize(trainable)
  params = tree.pop("model", frozen)
  return params, (tree or None)


def method_of(trainable: Mapping) -> str:
  """The method a trainable tree belongs to."""
  for key, name in (("prompt", "prompt"), ("prefix", "prefix"), ("prefix_mlp", "prefix"),
                    ("adapters", "adapter"), ("model", "full")):
    if key in trainable:
      return name
  raise PeftError(f"a trainable tree with keys {sorted(trainable)} is no tuning method's")


def count_params(tree: Any) -> int:
  """Number of scalars in a tree of arrays."""
  return int(sum(np.prod(np.shape(a), dtype=np.int64) for a in jax.tree.leaves(tree)))
