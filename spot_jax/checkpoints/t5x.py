"""Read and write t5x checkpoint directories without t5x.

Layout (what t5x writes, e.g. checkpoint_1100000/):
  checkpoint                        msgpack: {"version": 3, "optimizer": {"target": {...}, "state": {...}}};
                                    small arrays inline (flax msgpack ext types), large ones replaced by
                                    a tensorstore spec {"driver": "zarr", "kvstore": {"driver": "gfile",
                                    "path": "target.encoder.layers_0.attention.query.kernel"}, ...}
  target.<dotted.param.path>/       zarr v2 array (.zarray + gzip chunks "0.0", "1.0", ...)
Only the model parameters ("target") are read; optimizer state is ignored. Paths may be local or gs://.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Optional

import numpy as np
import tensorstore as ts
from etils import epath
from flax import serialization

from spot_jax.io import atomic_directory
from spot_jax.errors import CheckpointError
from spot_jax.model.config import T5Config
from spot_jax.model.params import check_params, flatten, unflatten

_CHUNK_ELEMENTS = 1 << 22  # ~16 MB of float32 per zarr chunk
# t5x stores no model config; we write ours beside the arrays (t5x ignores it) so conversions
# keep what shapes cannot tell (relative_attention_max_distance, activation variant).
CONFIG_FILE = "spot_jax_model.json"


def _kvstore(path: epath.Path) -> dict[str, str]:
  s = str(path)
  if s.startswith("gs://"):
    bucket, _, key = s[len("gs://"):].partition("/")
    return {"driver": "gcs", "bucket": bucket, "path": key}
  return {"driver": "file", "path": s}


def _is_spec(x: Any) -> bool:
  return isinstance(x, dict) and "driver" in x and "kvstore" in x


def _flatten_target(tree: Mapping, prefix: str = "") -> dict[str, Any]:
  """Flattens to '/'-joined names, stopping at tensorstore specs (which are dicts too)."""
  out = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict) and not _is_spec(value):
      out.update(_flatten_target(value, name + "/"))
    else:
      out[name] = value
  return out


def _checkpoint_file(path: epath.Path) -> epath.Path:
  if path.name == "checkpoint" and path.is_file():
    return path
  if not path.exists():
    raise CheckpointError(f"{path} does not exist; pass a t5x checkpoint directory "
                          "(e.g. .../checkpoint_1100000)")
  candidate = path / "checkpoint"
  if not candidate.exists():
    steps = sorted(p.name for p in path.glob("checkpoint_*"))
    hint = f"; it holds {', '.join(steps[-3:])}: pass one of them" if steps else ""
    raise CheckpointError(f"{path} is not a t5x checkpoint directory: no 'checkpoint' file{hint}")
  return candidate


def read_t5x_arrays(path: str | epath.PathLike) -> tuple[dict[str, np.ndarray], int]:
  """Returns ({'/'-joined param name: array}, step) of the checkpoint's model parameters."""
  ckpt_file = _checkpoint_file(epath.Path(path))
  ckpt_dir = ckpt_file.parent
  try:
    state = serialization.msgpack_restore(ckpt_file.read_bytes())
    target = state["optimizer"]["target"]
    step = int(np.asarray(state["optimizer"].get("state", {}).get("step", 0)))
  except Exception as e:  # msgpack/flax raise assorted errors for corrupt or foreign files
    raise CheckpointError(f"{ckpt_file} is not a readable t5x checkpoint ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''})") from None
  flat = _flatten_target(target)
  pending = {}
  for name, value in flat.items():
    if _is_spec(value):
      rel = value["kvstore"]["path"]
      location = epath.Path(rel) if re.match(r"^(/|gs://)", rel) else ckpt_dir / rel
      spec = {"driver": value["driver"], "kvstore": _kvstore(location)}
      try:
        pending[name] = ts.open(spec, read=True).result().read()
      except Exception as e:  # tensorstore raises ValueError with a status message
        raise CheckpointError(f"cannot open array {name} at {location}: {_first_line(e)}") from None
  arrays = {name: np.asarray(v) for name, v in flat.items() if name not in pending}
  for name, future in pending.items():
    try:
      arrays[name] = np.asarray(future.result())
    except Exception as e:
      raise CheckpointError(f"array {name} of {ckpt_dir} is corrupt or truncated: {_first_line(e)}; "
                            "re-copy the checkpoint") from None
  return arrays, step


def _first_line(e: Exception) -> str:
  text = str(e).strip()
  return text.splitlines()[0][:300] if text else type(e).__name__


def infer_config(arrays: Mapping[str, np.ndarray], **overrides: Any) -> T5Config:
  """Model config implied by parameter shapes; `relative_attention_max_distance` is not visible
  in any shape (default 128, as in every published T5) and can be overridden."""
  def count(prefix: str) -> int:
    return len({m.group(1) for k in arrays if (m := re.match(rf"{prefix}/layers_(\d+)/", k))})
  try:
    vocab, emb = arrays["token_embedder/embedding"].shape
    heads, buckets = arrays["encoder/relpos_bias/rel_embedding"].shape
    joined = arrays["encoder/layers_0/attention/query/kernel"].shape[1]
    gated = "encoder/layers_0/mlp/wi_0/kernel" in arrays
    mlp = arrays[f"encoder/layers_0/mlp/{'wi_0' if gated else 'wi'}/kernel"].shape[1]
  except KeyError as e:
    raise CheckpointError(f"cannot infer a T5 config: parameter {e} is missing; "
                          "pass the model config name instead") from None
  fields = dict(vocab_size=vocab, emb_dim=emb, num_heads=heads, head_dim=joined // heads, mlp_dim=mlp,
                num_encoder_layers=count("encoder"), num_decoder_layers=count("decoder"),
                mlp_activations=("gelu", "linear") if gated else ("relu",),
                logits_via_embedding="decoder/logits_dense/kernel" not in arrays,
                relative_attention_num_buckets=buckets, name="inferred")
  fields.update(overrides)
  return T5Config(**fields)


def read_t5x_checkpoint(path: str | epath.PathLike,
                        config: Optional[T5Config] = None) -> tuple[T5Config, dict]:
  """Reads a t5x checkpoint into our parameter tree, checked against `config`.

  Without `config`, the one we wrote beside the arrays is used, else it is inferred from shapes.
  """
  arrays, _ = read_t5x_arrays(path)
  if config is None:
    sidecar = _checkpoint_file(epath.Path(path)).parent / CONFIG_FILE
    config = (T5Config.from_dict(json.loads(sidecar.read_text())) if sidecar.exists()
              else infer_config(arrays))
  check_params(arrays, config, source=f"t5x checkpoint {path}")
  dtype = np.dtype(config.param_dtype) if config.param_dtype != "bfloat16" else None
  if dtype is not None:
    arrays = {k: v.astype(dtype) for k, v in arrays.items()}
  return config, unflatten(arrays)


def _zarr_dtype(dtype: np.dtype) -> str:
  return "bfloat16" if dtype.name == "bfloat16" else dtype.str


def write_t5x_checkpoint(path: str | epath.PathLike, params: Mapping, *,
                         config: Optional[T5Config] = None, step: int = 0,
                         overwrite: bool = False) -> None:
  """Writes params as a t5x checkpoint directory (kernels/embeddings as zarr, the rest inline).

  No optimizer state is written: restore it in t5x with a RestoreCheckpointConfig that does not
  require one (e.g. fallback_to_scratch=True), as for any parameters-only checkpoint.
  """
  flat = flatten(params)
  exists = CheckpointError(f"{path} already exists; choose another destination or pass "
                           "--overwrite")
  with atomic_directory(path, overwrite=overwrite, exists_error=exists) as tmp:
    target, writes = {}, []
    for name, value in flat.items():
      value = np.asarray(value)
      if not name.endswith(("kernel", "embedding")):
        target[name] = value
        continue
      dirname = "target." + name.replace("/", ".")
      rows = max(1, min(value.shape[0], _CHUNK_ELEMENTS // max(1, int(np.prod(value.shape[1:])))))
      metadata = {"shape": list(value.shape), "chunks": [rows, *value.shape[1:]],
                  "dtype": _zarr_dtype(value.dtype), "compressor": {"id": "gzip", "level": 1}}
      store = ts.open({"driver": "zarr", "kvstore": _kvstore(tmp / dirname), "metadata": metadata},
                      create=True).result()
      writes.append(store.write(value))
      target[name] = {"driver": "zarr", "kvstore": {"driver": "gfile", "path": dirname},
                      "metadata": metadata}
    for w in writes:
      w.result()
    state = {"version": 3,
             "optimizer": {"state": {"step": np.int32(step)}, "target": unflatten(target)}}
    (tmp / "checkpoint").write_bytes(serialization.msgpack_serialize(state))
    if config is not None:
      (tmp / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2))
