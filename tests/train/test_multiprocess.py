"""Multi-process runs on localhost (jax.distributed over loopback, fake CPU devices) and checkpoints
restored on another mesh: same numbers as one process, one copy of every shared file."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from spot_jax.data.pipeline import process_rows
from spot_jax.train import distributed
from spot_jax.train.exports import read_export
from spot_jax.errors import SpotError

TESTS = pathlib.Path(__file__).resolve().parents[1]
REPO = TESTS.parent
TOY_GIN = str(TESTS / "train" / "toy_run.gin")


def _env(devices: int) -> dict:
  path = os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")])
  env = {k: v for k, v in os.environ.items() if not k.startswith("SPOT_JAX_")}
  return {**env, "PYTHONPATH": path, "JAX_PLATFORMS": "cpu",
          "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _train_cmd(model_dir, *bindings: str) -> list[str]:
  return [sys.executable, "-m", "spot_jax.cli", "train", "--module", "toy_task",
          f"--gin_file={TOY_GIN}", f"--gin.MODEL_DIR='{model_dir}'", *bindings]


def _run(cmd: list[str], devices: int) -> None:
  done = subprocess.run(cmd, env=_env(devices), capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]


def _run_processes(cmd: list[str], *, processes: int, devices: int) -> None:
  """`processes` copies of `cmd`, each with `devices` fake CPU devices, joined by
  jax.distributed."""
  address = f"127.0.0.1:{_free_port()}"
  procs = [subprocess.Popen(cmd + ["--coordinator_address", address, "--num_processes",
                                   str(processes), "--process_id", str(i)],
                            env=_env(devices), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for i in range(processes)]
  try:
    outputs = [p.communicate(timeout=600) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for i, (p, (_, err)) in enumerate(zip(procs, outputs)):
    assert p.returncode == 0, f"process {i}:\n{err[-3000:]}"


def _rows(model_dir) -> list[dict]:
  text = (pathlib.Path(model_dir) / "metrics.jsonl").read_text()
  return [json.loads(line) for line in text.splitlines()]


# --- settings -------------------------------------------------------------------------------------


def test_settings_come_from_arguments_then_environment_and_must_be_complete(monkeypatch):
  for name in (distributed.ENV_COORDINATOR, distributed.ENV_NUM_PROCESSES,
               distributed.ENV_PROCESS_ID, distributed.ENV_AUTO):
    monkeypatch.delenv(name, raising=False)
  assert not distributed.resolve().requested
  assert distributed.initialize() is False  # a plain run starts nothing
  monkeypatch.setenv(distributed.ENV_COORDINATOR, "h:1")
  monkeypatch.setenv(distributed.ENV_NUM_PROCESSES, "4")
  monkeypatch.setenv(distributed.ENV_PROCESS_ID, "3")
  assert distributed.resolve() == distributed.Settings("h:1", 4, 3, False)
  assert distributed.resolve("c:2", 2, 0) == distributed.Settings("c:2", 2, 0, False)
  with pytest.raises(SpotError, match="outside 0..1"):
    distributed.resolve(num_processes=2)  # process id 3 from the environment
  monkeypatch.delenv(distributed.ENV_PROCESS_ID)
  with pytest.raises(SpotError, match="needs all of --coordinator_address"):
    distributed.resolve()
  monkeypatch.setenv(distributed.ENV_AUTO, "auto")
  assert distributed.resolve().auto  # cluster detection fills in the rest
  assert distributed.is_writer()  # the only process of this test run


class _FakeSharding:
  """The call process_rows makes, for a process holding the given row blocks of 8."""

  def __init__(self, blocks):
    self.blocks = blocks

  def addressable_devices_indices_map(self, shape):
    return {f"device{i}": (slice(a, b),) for i, (a, b) in enumerate(self.blocks)}


def test_process_rows_are_the_rows_this_process_holds_in_ascending_order():
  # Blocks out of order, one repeated (a block replicated over `model`), one not contiguous.
  np.testing.assert_array_equal(
      process_rows(_FakeSharding([(6, 8), (0, 2), (0, 2)]), 8), [0, 1, 6, 7])
  assert process_rows(_FakeSharding([(None, None)]), 8) is None  # every row: a single process


# --- restore on another mesh ---------------------------------------------------------------------

_CHECKPOINT_SCRIPT = """
import sys
import jax, jax.numpy as jnp, numpy as np
from spot_jax.train import partitioning
from spot_jax.train.checkpointing import Checkpointer
from spot_jax.train.optim import adafactor
from spot_jax.train.state import TrainState

mode, directory, out = sys.argv[1:4]
data, model = int(sys.argv[4]), int(sys.argv[5])
optimizer = adafactor(learning_rate=0.3)
rng = np.random.RandomState(0)
prompt = rng.normal(size=(128, 160)).astype(np.float32)  # large enough for factored second moments
mesh = partitioning.make_mesh(data, model)
initial = jax.device_put(TrainState.create({"prompt": prompt}, optimizer, 0),
                         partitioning.replicated(mesh))
checkpointer = Checkpointer(directory)
if mode == "save":
  state = initial
  update = jax.jit(lambda s, g: s.apply_gradients(g, optimizer))
  for _ in range(3):
    state = update(state, {"prompt": jnp.asarray(rng.normal(size=prompt.shape), jnp.float32)})
  checkpointer.save(state)
else:
  state, resumed = checkpointer.restore_or_init(initial)
  assert resumed
for leaf in jax.tree.leaves(state):
  assert dict(leaf.sharding.mesh.shape) == {"data": data, "model": model}, leaf.sharding
checkpointer.close()
leaves = jax.tree_util.tree_leaves_with_path(state)
np.savez(out, **{jax.tree_util.keystr(path): np.asarray(value) for path, value in leaves})
"""


def test_checkpoint_saved_on_one_mesh_restores_on_another(tmp_path):
  """Saved by 8 devices (data 8 x model 1), restored by a process with 4 (data 2 x model 2):
  the same step, prompt, optimizer state and rng, bit for bit, laid out on the new mesh."""
  for mode, devices, data, model in (("save", 8, 8, 1), ("restore", 4, 2, 2)):
    _run([sys.executable, "-c", _CHECKPOINT_SCRIPT, mode, str(tmp_path / "ckpt"),
          str(tmp_path / f"{mode}.npz"), str(data), str(model)], devices)
  saved, restored = np.load(tmp_path / "save.npz"), np.load(tmp_path / "restore.npz")
  assert sorted(saved.files) == sorted(restored.files)
  assert any("v_row" in k for k in saved.files)  # factored Adafactor state travels too
  assert int(saved[".step"]) == 3
  for key in saved.files:
    np.testing.assert_array_equal(restored[key], saved[key], err_msg=key)
  assert np.abs(saved[".opt_state[0].v_row['prompt']"]).sum() > 0


# --- two processes, one run ----------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_give_the_one_process_run_and_one_copy_of_each_file(tmp_path):
  """2 processes x 4 fake devices sharing one MODEL_DIR == 1 process x 8 devices: the same 20-step
  loss curve and validation scores, each shared file written once, checkpoints every process
  wrote that one process reads back. The scored toy task makes validation numbers non-trivial."""
  bindings = ["--gin.train.num_train_steps=20", "--gin.train.mesh_data=4",
              "--gin.train.mesh_model=2", "--gin.MIXTURE_OR_TASK_NAME='spot_toy_contains_a_scored'",
              "--gin.train.num_eval_examples=32"]
  one, two = tmp_path / "one", tmp_path / "two"
  _run(_train_cmd(one, *bindings), devices=8)
  _run_processes(_train_cmd(two, *bindings), processes=2, devices=4)

  a, b = _rows(one), _rows(two)
  assert [r["step"] for r in b] == [r["step"] for r in a]  # each logged row once
  train_steps = [r["step"] for r in b if "train/loss" in r]
  assert train_steps == list(range(1, 21))
  for ra, rb in zip(a, b):
    for key in ("train/loss", "validation/score"):
      if key in ra:
        np.testing.assert_allclose(rb[key], ra[key], rtol=0, atol=1e-5,
                                   err_msg=f"{key} {ra['step']}")
  assert [r["step"] for r in b if "validation/score" in r] == [0, 10, 20]
  assert all(r["validation/score"] < 0 for r in b if "validation/score" in r)  # a log-likelihood

  # Exactly one copy of each shared file, from process 0.
  assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
  kinds = ("final_prompt", "source_prompt", "task_embedding")
  assert sorted(p.name for p in (two / "exports").iterdir()) == sorted(
      f"{k}.{e}" for k in kinds for e in ("npy", "json"))
  events = list((two / "tensorboard").iterdir())
  assert len(events) == 1 and events[0].name.startswith("events.out.tfevents"), events
  assert (two / "config.gin").read_text() == (one / "config.gin").read_text().replace(
      str(one), str(two))
  assert "train.mesh_model = 2" in (two / "operative_config.gin").read_text()
  for kind in ("final_prompt", "task_embedding", "source_prompt"):
    pa, ma = read_export(one / "exports" / f"{kind}.npy")
    pb, mb = read_export(two / "exports" / f"{kind}.npy")
    np.testing.assert_allclose(pb, pa, rtol=0, atol=1e-5, err_msg=kind)
    assert mb["step"] == ma["step"] and mb["frozen_checksum"] == ma["frozen_checksum"]

  # The checkpoints both processes wrote together: the same steps, readable by one process.
  assert sorted(p.name for p in (two / "checkpoints").iterdir() if p.name.isdigit()) == ["10", "20"]
  _run([sys.executable, "-m", "spot_jax.cli", "export-prompt", str(two), str(tmp_path / "p.npy")],
       devices=1)
  np.testing.assert_array_equal(read_export(tmp_path / "p.npy")[0],
                                read_export(two / "exports" / "final_prompt.npy")[0])


@pytest.mark.slow
def test_run_resumed_on_another_mesh_continues_the_same_loss_curve(tmp_path):
  """10 steps on 8 devices (data 8 x model 1), then resumed to 20 on 4 devices (data 2 x model 2):
  the loss curve of an uninterrupted 8-device run, so prompt, optimizer state, rng and input
  stream all came back."""
  common = ["--gin.train.num_eval_examples=16"]
  _run(_train_cmd(tmp_path / "full", "--gin.train.num_train_steps=20", *common), devices=8)
  moved = tmp_path / "moved"
  _run(_train_cmd(moved, "--gin.train.num_train_steps=10", "--gin.train.mesh_data=8", *common),
       devices=8)
  _run(_train_cmd(moved, "--gin.train.num_train_steps=20", "--gin.train.mesh_data=2",
                  "--gin.train.mesh_model=2", *common), devices=4)
  full = {r["step"]: r["train/loss"] for r in _rows(tmp_path / "full") if "train/loss" in r}
  resumed = {r["step"]: r["train/loss"] for r in _rows(moved) if "train/loss" in r}
  assert sorted(resumed) == sorted(full) == list(range(1, 21))
  np.testing.assert_allclose([resumed[s] for s in range(1, 21)], [full[s] for s in range(1, 21)],
                             rtol=0, atol=1e-5)
