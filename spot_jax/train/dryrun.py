"""Ahead-of-time compilation of the real train step for a target mesh: what each device must hold.

`dryrun(...)` takes the run settings of `spot_jax.train.trainer.train` that shape the step (model,
prompt length, optimizer, batch, feature lengths, mesh, the memory knobs) and compiles the step the
trainer runs (`jit_train_step`, or the K-run `jit_multi_train_step`) on abstract arguments: the
frozen parameters, the train state and the batch are jax.ShapeDtypeStructs carrying the shardings
the trainer gives the real arrays, so nothing is allocated, no checkpoint is read and no data is
loaded. The compiled executable is XLA's per-device (SPMD-partitioned) program, so its
memory_analysis() is what one device holds and its cost_analysis() one device's FLOPs.

With fake CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count=N; `spot-jax dryrun
--devices N` arranges it) this sizes a TPU pod run on a laptop: argument and output bytes are
exact (they are the shard shapes); temporaries come from XLA:CPU's buffer assignment and fusion
decisions, which differ from a TPU's, so read them as an estimate of the activation memory.
Nothing here knows about gin; the CLI reads `train`'s bindings and passes them on.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from spot_jax import validation
from spot_jax.errors import SpotError
from spot_jax.model.config import T5Config, get_config
from spot_jax.model.params import cast_params, flatten, init_params, param_shapes
from spot_jax.train import partitioning
from spot_jax.train.multi import jit_multi_train_step
from spot_jax.train.optim import adafactor
from spot_jax.train.state import abstract_state
from spot_jax.train.step import jit_train_step

GIB = 2.0 ** 30
BATCH_FEATURES = ("encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens",
                  "decoder_loss_weights")


class DryRunError(SpotError):
  """A dry run that cannot be set up: batch not divisible by the data axis, bad runs count."""


def abstract_frozen(config: T5Config, mesh: jax.sharding.Mesh, frozen_dtype: str = "float32") -> Any:
  """The frozen parameters as ShapeDtypeStructs with the trainer's shardings (nothing allocated)."""
  shapes = jax.eval_shape(functools.partial(init_params, config, 0))
  shapes = jax.eval_shape(functools.partial(cast_params, dtype=frozen_dtype), shapes)
  shardings = partitioning.param_shardings(config, mesh)
  for name, shape in param_shapes(config).items():
    spec = flatten(shardings)[name].spec
    for dim, axis in zip(shape, spec):
      if axis is not None and dim % mesh.shape[axis]:
        raise DryRunError(f"{name} {shape} does not split over mesh axis {axis}="
                          f"{mesh.shape[axis]} ({dim} % {mesh.shape[axis]} != 0); pick a "
                          f"mesh_{axis} that divides the model's heads, mlp and vocab sizes")
  return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                      shapes, shardings)


def abstract_train_state(config: T5Config, prompt_length: int, optimizer: optax.GradientTransformation,
                         mesh: jax.sharding.Mesh, runs: int = 1) -> Any:
  """TrainState of a prompt run (prompt + optimizer state + step + rng), replicated as the trainer
  places it; with runs K > 1 every leaf gets a leading run axis (spot_jax.train.multi.stack)."""
  prompt = jax.ShapeDtypeStruct((prompt_length, config.emb_dim), jnp.float32)
  state = abstract_state({"prompt": prompt}, optimizer)
  lead = (runs,) if runs > 1 else ()
  sharding = partitioning.replicated(mesh)
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(lead + s.shape, s.dtype, sharding=sharding),
                      state)


def abstract_batch(batch_size: int, feature_lengths: Mapping[str, int], mesh: jax.sharding.Mesh,
                   runs: int = 1) -> dict[str, jax.ShapeDtypeStruct]:
  """The unpacked int32 feature batch split over `data` (partitioning.batch_sharding); K runs:
  [K, B, T] with B split over `data`."""
  validation.check_divides(batch_size, mesh.shape["data"])
  lengths = {"encoder_input_tokens": feature_lengths["inputs"]}
  lengths.update({k: feature_lengths["targets"] for k in BATCH_FEATURES[1:]})
  if runs > 1:
    sharding = NamedSharding(mesh, PartitionSpec(None, "data"))
    return {k: jax.ShapeDtypeStruct((runs, batch_size, n), jnp.int32, sharding=sharding)
            for k, n in lengths.items()}
  sharding = partitioning.batch_sharding(mesh)
  return {k: jax.ShapeDtypeStruct((batch_size, n), jnp.int32, sharding=sharding)
          for k, n in lengths.items()}


def topology_mesh(topology: str, data: int = -1, model: int = 1) -> jax.sharding.Mesh:
  """A (data, model) mesh over the devices of a TPU topology such as 'v5e:16x16' or 'v4:4x4x4',
  with no TPU attached (jax.experimental.topologies; needs the libtpu package, which compiles
  for the TPU on the host). Compiling for it gives XLA:TPU's own memory numbers."""
  from jax.experimental import topologies
  try:
    devices = topologies.get_topology_desc(platform="tpu", topology_name=topology).devices
  except Exception as e:  # no libtpu, or a name it does not know
    raise DryRunError(f"cannot build TPU topology {topology!r} ({' '.join(str(e).split())[:200]}); "
                      "install libtpu in this environment, or drop --topology") from None
  return partitioning.make_mesh(data, model, devices)


# --------------------------------------------------------------------------------- sharding table


def _group(name: str) -> str:
  """Parameter group of a '/'-joined frozen parameter name, e.g. 'encoder mlp'."""
  parts = name.split("/")
  if parts[0] in ("token_embedder",):
    return "token_embedder"
  if parts[-2:-1] == ["logits_dense"]:
    return "logits"
  if len(parts) > 2 and parts[1].startswith("layers_"):
    module = parts[2]
    if module.endswith("layer_norm"):
      return f"{parts[0]} norms"
    return f"{parts[0]} " + {"encoder_decoder_attention": "cross_attention"}.get(module, module)
  if parts[1] == "relpos_bias":
    return f"{parts[0]} relpos_bias"
  return f"{parts[0]} norms"


def _bytes(shape: tuple[int, ...], dtype) -> int:
  return int(np.prod(shape, dtype=np.int64)) * jnp.dtype(dtype).itemsize


def _leaf_rows(tree: Any, prefix: str, group_of) -> list[dict[str, Any]]:
  """One row per parameter name pattern (layers_i -> layers_*): count, global and per-device shape,
  PartitionSpec, bytes per device over all its leaves."""
  rows: dict[str, dict[str, Any]] = {}
  flat = flatten(tree) if isinstance(tree, Mapping) else {
      prefix + jax.tree_util.keystr(path): leaf
      for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
  for name, leaf in flat.items():
    name = f"{prefix}{name}" if isinstance(tree, Mapping) else name
    pattern = re.sub(r"layers_\d+", "layers_*", name)
    shard = tuple(leaf.sharding.shard_shape(leaf.shape))
    row = rows.setdefault(pattern, {
        "group": group_of(name), "name": pattern, "count": 0, "shape": list(leaf.shape),
        "dtype": str(jnp.dtype(leaf.dtype)), "spec": str(tuple(leaf.sharding.spec)),
        "device_shape": list(shard), "bytes_per_device": 0, "bytes": 0})
    row["count"] += 1
    row["bytes_per_device"] += _bytes(shard, leaf.dtype)
    row["bytes"] += _bytes(leaf.shape, leaf.dtype)
  return list(rows.values())


GROUP_ORDER = ("token_embedder", "encoder relpos_bias", "encoder attention", "encoder mlp",
               "encoder norms", "decoder relpos_bias", "decoder self_attention",
               "decoder cross_attention", "decoder mlp", "decoder norms", "logits")


def sharding_table(frozen: Any, state: Any, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
  """Rows for every frozen parameter pattern, the prompt, the optimizer state, the rest of the
  state (step, rng) and the batch features."""
  rows = sorted(_leaf_rows(frozen, "", _group),
                key=lambda r: (GROUP_ORDER.index(r["group"]), r["name"]))
  rows += _leaf_rows({"prompt": state.trainable["prompt"]}, "", lambda _: "prompt")
  rows += _leaf_rows(state.opt_state, "opt_state", lambda _: "optimizer state")
  rows += _leaf_rows({"step": state.step, "rng": state.rng}, "", lambda _: "step, rng")
  rows += _leaf_rows(dict(batch), "", lambda _: "batch")
  return rows


def group_totals(rows: list[dict[str, Any]]) -> dict[str, int]:
  """Bytes per device of each group, in table order."""
  totals: dict[str, int] = {}
  for row in rows:
    totals[row["group"]] = totals.get(row["group"], 0) + row["bytes_per_device"]
  return totals


# ------------------------------------------------------------------------------------- dry run


def memory_record(compiled: Any) -> dict[str, int]:
  """Per-device bytes of a compiled executable. total = what the device holds at the step's peak
  by XLA's accounting: arguments + outputs - outputs aliased to (donated) arguments + temporaries
  + generated code. jit drops arguments the step never reads (e.g. Adafactor's (1,) placeholders
  of an unfactored prompt), so `argument` can be a few bytes below the sharding table's sum."""
  m = compiled.memory_analysis()
  record = {"argument": m.argument_size_in_bytes, "output": m.output_size_in_bytes,
            "alias": m.alias_size_in_bytes, "temp": m.temp_size_in_bytes,
            "generated_code": m.generated_code_size_in_bytes}
  record["total"] = (record["argument"] + record["output"] - record["alias"] + record["temp"]
                     + record["generated_code"])
  return record


def flops_per_device(compiled: Any) -> float:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older jaxlibs: one dict per program
    analysis = analysis[0]
  return float(analysis.get("flops", 0.0))


def dryrun(*, model_config: T5Config | str = "t5_1_1_lm_adapted_base", prompt_length: int = 100,
           optimizer: Optional[optax.GradientTransformation] = None, batch_size: int = 32,
           feature_lengths: Mapping[str, int], z_loss: float = 0.0, dropout_rate: float = 0.1,
           mesh_data: int = -1, mesh_model: int = 1, remat_policy: str = "none",
           frozen_dtype: str = "float32", runs: int = 1,
           mesh: Optional[jax.sharding.Mesh] = None) -> dict[str, Any]:
  """Compiles the trainer's step for a (mesh_data x mesh_model) mesh over jax.devices() (or
  `mesh`, e.g. from `topology_mesh`) on abstract arguments; returns per-device memory, FLOPs,
  compile time and the sharding table. Settings mean what they mean for `train`; `runs` K > 1
  compiles the K-run step (K stacked prompts, each with batch_size examples)."""
  validation.check_positive({"runs": runs})
  config = get_config(model_config) if isinstance(model_config, str) else model_config
  config = config.replace(dropout_rate=dropout_rate, remat_policy=remat_policy)
  optimizer = optimizer or adafactor()
  mesh = mesh or partitioning.make_mesh(mesh_data, mesh_model)
  frozen = abstract_frozen(config, mesh, frozen_dtype)
  state = abstract_train_state(config, prompt_length, optimizer, mesh, runs)
  batch = abstract_batch(batch_size, feature_lengths, mesh, runs)
  step = (jit_multi_train_step if runs > 1 else jit_train_step)(config, optimizer, z_loss)
  tick = time.perf_counter()
  lowered = step.lower(state, frozen, batch)
  lower_s = time.perf_counter() - tick
  compiled = lowered.compile()
  compile_s = time.perf_counter() - tick - lower_s
  rows = sharding_table(frozen, state, batch)
  flops = flops_per_device(compiled)
  return {
      "model": config.name, "runs": runs, "batch_size": batch_size, "prompt_length": prompt_length,
      "feature_lengths": dict(feature_lengths), "remat_policy": remat_policy,
      "frozen_dtype": frozen_dtype, "devices": int(mesh.devices.size),
      "platform": mesh.devices.flat[0].platform,
      "mesh": {"data": int(mesh.shape["data"]), "model": int(mesh.shape["model"])},
      "memory_per_device": memory_record(compiled), "flops_per_device": flops,
      "flops_per_step": flops * mesh.devices.size, "lower_s": lower_s, "compile_s": compile_s,
      "groups": group_totals(rows), "sharding": rows,
  }


def human_bytes(n: float) -> str:
  for unit, size in (("GiB", GIB), ("MiB", 2.0 ** 20), ("KiB", 2.0 ** 10)):
    if abs(n) >= size:
      return f"{n / size:.2f} {unit}"
  return f"{int(n)} B"


def format_report(record: Mapping[str, Any]) -> str:
  """The record as a readable table (the CLI prints it)."""
  mem = record["memory_per_device"]
  mesh = record["mesh"]
  k = f", {record['runs']} runs per step" if record["runs"] > 1 else ""
  lines = [
      f"model {record['model']}: batch {record['batch_size']}{k}, prompt {record['prompt_length']}, "
      f"lengths {record['feature_lengths']}, remat {record['remat_policy']}, "
      f"frozen {record['frozen_dtype']}",
      f"mesh data {mesh['data']} x model {mesh['model']} = {record['devices']} "
      f"{record['platform']} devices",
      "per-device memory: " + ", ".join(
          f"{k} {human_bytes(mem[k])}" for k in ("argument", "output", "alias", "temp",
                                                "generated_code")) + f"; TOTAL {human_bytes(mem['total'])}",
      f"GFLOPs/step: {record['flops_per_step'] / 1e9:,.4g} ({record['flops_per_device'] / 1e9:,.4g} "
      f"per device); lower {record['lower_s']:.1f} s, compile {record['compile_s']:.1f} s",
      "",
      f"{'group':<23s} {'parameter (n = count)':<62s} {'dtype':<8s} {'spec':<18s} "
      f"{'shape per device':<18s} {'bytes/device':>12s}",
  ]
  for row in record["sharding"]:
    name = row["name"] + (f" (n={row['count']})" if row["count"] > 1 else "")
    lines.append(f"{row['group']:<23s} {name:<62s} {row['dtype']:<8s} {row['spec']:<18s} "
                 f"{str(tuple(row['device_shape'])):<18s} {human_bytes(row['bytes_per_device']):>12s}")
  lines.append("")
  lines.append("per device by group: " + ", ".join(
      f"{g} {human_bytes(b)}" for g, b in record["groups"].items()))
  return "\n".join(lines)
