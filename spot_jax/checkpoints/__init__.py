"""Checkpoints in and out: t5x directories, HF directories, and conversion between them."""

from __future__ import annotations

from typing import Literal, Optional

from etils import epath

from spot_jax import validation
from spot_jax.checkpoints.hf import read_hf_checkpoint, write_hf_checkpoint
from spot_jax.checkpoints.t5x import read_t5x_checkpoint, write_t5x_checkpoint
from spot_jax.errors import CheckpointError
from spot_jax.model.config import T5Config

Format = Literal["t5x", "hf"]
FORMATS = ("t5x", "hf")


def detect_format(path: str | epath.PathLike) -> Format:
  path = epath.Path(path)
  if (path / "config.json").exists():
    return "hf"
  if (path / "checkpoint").exists() or path.name == "checkpoint":
    return "t5x"
  raise CheckpointError(f"{path} is neither a t5x checkpoint (no 'checkpoint' file) nor an HF "
                        "directory (no config.json)")


def load_checkpoint(path: str | epath.PathLike, config: Optional[T5Config] = None,
                    fmt: Optional[Format] = None) -> tuple[T5Config, dict]:
  """(config, params) of a t5x or HF checkpoint; t5x configs are inferred from shapes if None."""
  fmt = fmt or detect_format(path)
  if fmt == "hf":
    hf_config, params = read_hf_checkpoint(path)
    if config is not None and config.replace(name=hf_config.name) != hf_config:
      raise CheckpointError(f"{path} holds config {hf_config} which differs from the requested "
                            f"{config.name!r}; drop the config argument to use the checkpoint's own")
    return hf_config, params
  return read_t5x_checkpoint(path, config)


def convert(src: str | epath.PathLike, dst: str | epath.PathLike, *, src_format: Format,
            dst_format: Format, config: Optional[T5Config] = None, overwrite: bool = False) -> T5Config:
  """Converts a whole checkpoint between t5x and HF layouts; returns the model config used."""
  validation.check_writable_dir(dst, setting="DST")
  config, params = load_checkpoint(src, config, src_format)
  if dst_format == "hf":
    write_hf_checkpoint(dst, params, config, overwrite=overwrite)
  else:
    write_t5x_checkpoint(dst, params, config=config, overwrite=overwrite)
  return config
