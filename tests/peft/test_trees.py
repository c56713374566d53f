"""The four methods' trainable trees: exact identity at init, prefixes through the KV cache, tunable
counts against counts derived from the layer shapes, and a frozen model that training never moves."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from spot_jax.model import decoding, get_config, init_params, param_shapes
from spot_jax.model.params import unflatten
from spot_jax.model.t5 import T5
from spot_jax.peft import trees
from spot_jax.train.exports import params_checksum
from spot_jax.train.state import TrainState
from spot_jax.train.step import jit_train_step

CONFIG = get_config("t5_1_1_test")


@pytest.fixture(scope="module")
def frozen():
  return init_params(CONFIG, 0)


def _inputs(seed=0, batch=3, in_len=9, out_len=5):
  rng = np.random.RandomState(seed)
  inputs = rng.randint(2, CONFIG.vocab_size, (batch, in_len)).astype(np.int32)
  inputs[0, -3:] = 0  # padding in one row
  targets = rng.randint(2, CONFIG.vocab_size, (batch, out_len)).astype(np.int32)
  targets[:, -1] = 1
  return inputs, targets


def _logits(params, peft, inputs, targets):
  return np.asarray(T5(CONFIG).apply({"params": params}, inputs, decoding.shift_right(targets),
                                     peft=peft))


def _perturbed(tree, seed, scale=0.3):
  """Every leaf moved by noise: adapters whose up-projection is no longer zero, etc."""
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return treedef.unflatten([a + scale * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])


def test_zero_initialised_adapters_and_an_empty_prefix_are_the_frozen_model_exactly(frozen):
  inputs, targets = _inputs()
  want = _logits(frozen, None, inputs, targets)
  adapters = trees.init_trainable(trees.Method("adapter", bottleneck=8), CONFIG, frozen,
                                  jax.random.PRNGKey(1))
  assert float(jnp.abs(adapters["adapters"]["encoder"]["mlp"]["down"]).max()) > 0.1  # not all zero
  empty = trees.init_trainable(trees.Method("prefix", prefix_length=0), CONFIG, frozen,
                               jax.random.PRNGKey(2))
  assert empty["prefix"]["cross"]["key"].shape == (CONFIG.num_decoder_layers, 0, CONFIG.num_heads,
                                                   CONFIG.head_dim)
  for trainable in (adapters, empty):
    params, peft = trees.model_args(trainable, frozen)
    np.testing.assert_array_equal(_logits(params, peft, inputs, targets), want)  # bit for bit
  # Once trained (here: perturbed), each changes the output.
  for trainable in (_perturbed(adapters, 3),
                    trees.init_trainable(trees.Method("prefix", prefix_length=3), CONFIG, frozen,
                                         jax.random.PRNGKey(4))):
    params, peft = trees.model_args(trainable, frozen)
    assert np.abs(_logits(params, peft, inputs, targets) - want).max() > 1e-3


@pytest.mark.parametrize("method", [trees.Method("prefix", prefix_length=4),
                                    trees.Method("adapter", bottleneck=8),
                                    trees.Method("prompt", prompt_length=3)])
def test_decoding_with_the_kv_cache_equals_teacher_forced_scoring(frozen, method):
  """Beam search with one beam runs the incremental decoder (cache + per-step prefixes); its
  sequence scores must equal scoring the same sequences teacher-forced, to float32 accuracy."""
  inputs, _ = _inputs(seed=5)
  trainable = _perturbed(trees.init_trainable(method, CONFIG, frozen, jax.random.PRNGKey(6)), 7)
  params, peft = trees.model_args(trainable, frozen)
  result = decoding.beam_search(params, inputs, config=CONFIG, beam_size=1, max_decode_len=6,
                                peft=peft)
  sequences = result.sequences[:, 0]
  scored = decoding.score_targets(params, inputs, sequences, config=CONFIG, peft=peft)
  # Sums of 6 float32 log-probabilities of magnitude ~log(vocab): 1e-5 relative is float32 room.
  np.testing.assert_allclose(np.asarray(result.scores[:, 0]), np.asarray(scored), rtol=1e-5,
                             atol=1e-5)
  greedy = decoding.greedy_decode(params, inputs, config=CONFIG, max_decode_len=6, peft=peft)
  np.testing.assert_array_equal(np.asarray(greedy), np.asarray(sequences))
  plain = decoding.greedy_decode(frozen, inputs, config=CONFIG, max_decode_len=6)
  assert not np.array_equal(np.asarray(plain), np.asarray(greedy))  # the tuning is in the decode


def test_mlp_reparameterised_prefix_materialises_to_the_prefix_it_stands_for(frozen):
  trainable = trees.init_trainable(trees.Method("prefix", prefix_length=3, prefix_hidden=16),
                                   CONFIG, frozen, jax.random.PRNGKey(0))
  assert set(trainable) == {"prefix_mlp"}
  plain = trees.materialize(trainable)
  assert set(plain) == {"prefix"}
  mlp = trainable["prefix_mlp"]
  z = np.tanh(np.asarray(mlp["embedding"]) @ np.asarray(mlp["hidden"]["kernel"]))  # zero biases
  kernel = np.asarray(mlp["cross"]["kernel"])  # [hidden, 2, L, H, D]
  want_value_layer1 = z @ kernel[:, 1, 1].reshape(16, -1)  # [P, H*D]
  np.testing.assert_allclose(np.asarray(plain["prefix"]["cross"]["value"][1]).reshape(3, -1),
                             want_value_layer1, rtol=1e-5, atol=1e-5)
  inputs, targets = _inputs()
  a = _logits(*trees.model_args(trainable, frozen), inputs, targets)
  b = _logits(*trees.model_args(plain, frozen), inputs, targets)
  np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", trees.METHODS)
def test_training_moves_the_trainable_tree_and_never_the_frozen_model(frozen, name):
  method = trees.Method(name, prompt_length=4, prefix_length=4, bottleneck=8)
  trainable = trees.init_trainable(method, CONFIG, frozen, jax.random.PRNGKey(0))
  before, checksum = jax.tree.map(np.array, trainable), params_checksum(frozen)
  optimizer = optax.adam(1e-2)
  step = jit_train_step(CONFIG, optimizer)
  state = TrainState.create(trainable, optimizer, seed=0)
  inputs, targets = _inputs(seed=1, batch=4)
  batch = {"encoder_input_tokens": inputs, "decoder_target_tokens": targets,
           "decoder_input_tokens": np.asarray(decoding.shift_right(targets)),
           "decoder_loss_weights": np.ones_like(targets, np.float32)}
  losses = []
  for _ in range(5):
    state, metrics = step(state, frozen, batch)
    losses.append(float(metrics["loss"]))
  assert params_checksum(frozen) == checksum
  moved = max(float(np.abs(np.asarray(a) - b).max())
              for a, b in zip(jax.tree.leaves(state.trainable), jax.tree.leaves(before)))
  assert moved > 1e-3
  assert losses[-1] < losses[0]
  assert trees.method_of(state.trainable) == name


def _abstract_frozen(config):
  """The model's parameters as shapes only: T5 1.1 base is never allocated."""
  return unflatten({name: jax.ShapeDtypeStruct(shape, jnp.float32)
                    for name, shape in param_shapes(config).items()})


def test_tunable_counts_for_t5_1_1_base_equal_counts_from_the_layer_shapes():
  config = get_config("t5_1_1_base")
  frozen = _abstract_frozen(config)
  shapes = param_shapes(config)

  def count(method):
    tree = jax.eval_shape(lambda f: trees.init_trainable(method, config, f, jax.random.PRNGKey(0)),
                          frozen)
    return trees.count_params(tree)

  assert count(trees.Method("prompt", prompt_length=100)) == 76_800  # 100 x 768
  # Prefix: P keys and P values of the width of each attention's key projection, in encoder
  # self-attention (12 layers), decoder self-attention and cross-attention (12 + 12).
  kv_width = {name: s[1] for name, s in shapes.items()
              if name.endswith("/key/kernel")}  # [E, H*D] per attention module
  assert len(kv_width) == 36
  assert count(trees.Method("prefix", prefix_length=10)) == sum(2 * 10 * w for w in kv_width.values())
  assert count(trees.Method("prefix", prefix_length=10)) == 10 * 2 * 768 * 36  # 552,960
  # Adapters: after attention and after the MLP of each of 24 layers, E x M + M + M x E + E each.
  emb = shapes["token_embedder/embedding"][1]
  layers = len({n.split("/")[1] for n in shapes if "/layers_" in n and n.startswith(("encoder",
                                                                                      "decoder"))})
  assert layers == 12  # layer names repeat across the stacks: 12 per stack
  assert count(trees.Method("adapter", bottleneck=64)) == 2 * 12 * 2 * (2 * emb * 64 + 64 + emb)
  assert count(trees.Method("full")) == sum(int(np.prod(s)) for s in shapes.values())


def test_bad_methods_are_refused_with_one_line():
  with pytest.raises(trees.PeftError, match="unknown tuning method 'lora'"):
    trees.Method("lora")
  with pytest.raises(trees.PeftError, match="bottleneck must be an integer >= 1"):
    trees.Method("adapter", bottleneck=0)
  with pytest.raises(trees.PeftError, match="no tuning method"):
    trees.method_of({"weights": 1})
