"""`spot-jax dryrun`: the memory it reports is the compiled train step's, and the argument bytes are
exactly the sharded frozen parameters + train state + batch that the config implies."""

import json
import math
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import AbstractMesh

from spot_jax import cli
from spot_jax.errors import SpotError
from spot_jax.model import get_config, param_shapes
from spot_jax.model.params import flatten, logical_axes
from spot_jax.train import partitioning
from spot_jax.train.dryrun import abstract_batch
from spot_jax.train.optim import adafactor

TESTS = pathlib.Path(__file__).resolve().parents[1]
TOY_GIN = str(TESTS / "train" / "toy_run.gin")  # t5_1_1_test, batch 8, prompt 8, lengths 16 / 4
DATA, MODEL = 2, 4

# In one subprocess with 8 CPU devices: the CLI writes its JSON record; then the trainer's own
# route (real arrays: init_params, device_put with param_shardings, TrainState.create, shard_batch)
# compiles jit_train_step and prints that executable's memory_analysis().
_SCRIPT = """
import json, sys
import jax, numpy as np
from spot_jax import cli
from spot_jax.errors import SpotError
assert cli.main(["dryrun", "--devices", "8", "--gin_file", sys.argv[1], "--gin.train.mesh_model=4",
                 "--json", sys.argv[2]]) == 0
from spot_jax.model import get_config, init_params
from spot_jax.train import partitioning
from spot_jax.train.optim import adafactor
from spot_jax.train.state import TrainState
from spot_jax.train.step import jit_train_step
config = get_config("t5_1_1_test").replace(dropout_rate=0.1)
mesh = partitioning.make_mesh(-1, 4)
optimizer = adafactor(learning_rate=0.3)
frozen = jax.device_put(init_params(config, 0), partitioning.param_shardings(config, mesh))
prompt = np.zeros((8, config.emb_dim), np.float32)
state = jax.device_put(TrainState.create({"prompt": prompt}, optimizer, 0),
                       partitioning.replicated(mesh))
batch = partitioning.shard_batch({k: np.ones((8, n), np.int32) for k, n in (
    ("encoder_input_tokens", 16), ("decoder_input_tokens", 4), ("decoder_target_tokens", 4),
    ("decoder_loss_weights", 4))}, mesh)
m = jit_train_step(config, optimizer).lower(state, frozen, batch).compile().memory_analysis()
print("MEMORY", json.dumps({"argument": m.argument_size_in_bytes, "output": m.output_size_in_bytes,
                            "alias": m.alias_size_in_bytes, "temp": m.temp_size_in_bytes}))
"""


def _expected_argument_bytes() -> int:
  """Per-device bytes of the step's arguments, from the config and the partitioning rules alone."""
  config = get_config("t5_1_1_test")
  rules = dict(partitioning.DEFAULT_RULES)
  sizes = {"data": DATA, "model": MODEL, None: 1}
  axes = flatten(logical_axes(config))
  frozen = sum(4 * math.prod(math.ceil(d / sizes[rules[a]]) for d, a in zip(shape, axes[name]))
               for name, shape in param_shapes(config).items())
  prompt = np.zeros((8, config.emb_dim), np.float32)
  opt = jax.eval_shape(adafactor().init, {"prompt": prompt})
  # jit drops arguments the step never reads: Adafactor's v_row / v_col placeholders, shape (1,),
  # of a prompt too small to factor (P = 8 < 128).
  used = [x for x in jax.tree.leaves(opt) if x.shape != (1,)]
  state = prompt.nbytes + sum(x.size * x.dtype.itemsize for x in used) + 4 + 8  # + step, rng
  batch = 4 * (8 // DATA) * (16 + 3 * 4)  # four int32 features, batch split over data
  return frozen + state + batch


def test_dryrun_reports_the_compiled_steps_memory_and_the_sharded_argument_bytes(tmp_path):
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
  out = tmp_path / "dryrun.json"
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, TOY_GIN, str(out)], env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  record = json.loads(out.read_text())
  independent = json.loads(proc.stdout.split("MEMORY ")[-1])
  assert record["devices"] == 8 and record["mesh"] == {"data": DATA, "model": MODEL}
  mem = record["memory_per_device"]
  assert {k: mem[k] for k in independent} == independent
  assert mem["total"] == mem["argument"] + mem["output"] - mem["alias"] + mem["temp"] + \
      mem["generated_code"]
  assert mem["argument"] == _expected_argument_bytes()
  # The table lists every argument leaf, the two unread (1,) float32 placeholders included.
  assert sum(record["groups"].values()) == mem["argument"] + 2 * 4
  assert record["flops_per_step"] > 0
  # The table: the embedding is split over model along the vocabulary, the batch over data.
  rows = {r["name"]: r for r in record["sharding"]}
  assert rows["token_embedder/embedding"]["device_shape"] == [512 // MODEL, 32]
  assert rows["encoder_input_tokens"]["device_shape"] == [8 // DATA, 16]
  assert "mesh data 2 x model 4 = 8 cpu devices" in proc.stdout


def test_batch_not_divisible_by_the_data_axis_is_a_dryrun_error():
  mesh = AbstractMesh((4, 2), ("data", "model"))
  with pytest.raises(SpotError, match="does not split over the 4 data-parallel devices"):
    abstract_batch(6, {"inputs": 16, "targets": 4}, mesh)


def test_mesh_that_does_not_match_the_devices_is_one_line_exit_2(capsys):
  n = jax.device_count()
  code = cli.main(["dryrun", "--gin_file", TOY_GIN, f"--gin.train.mesh_data={n + 1}"])
  err = capsys.readouterr().err.strip()
  assert code == 2 and len(err.splitlines()) == 1, err
  assert err.startswith("spot-jax dryrun: error: mesh data=") and "device count" in err


@pytest.mark.slow
def test_k_run_step_shares_the_frozen_weights_and_stacks_state_and_batch():
  from spot_jax.train.dryrun import dryrun
  settings = dict(model_config="t5_1_1_test", prompt_length=8, batch_size=4,
                  feature_lengths={"inputs": 16, "targets": 4}, mesh_data=1, mesh_model=1)
  one = dryrun(**settings)
  three = dryrun(**settings, runs=3)
  frozen = sum(b for g, b in one["groups"].items()
               if g not in ("prompt", "optimizer state", "step, rng", "batch"))
  per_run = one["memory_per_device"]["argument"] - frozen
  assert three["memory_per_device"]["argument"] == frozen + 3 * per_run
  assert three["flops_per_step"] == pytest.approx(3 * one["flops_per_step"], rel=0.05)
