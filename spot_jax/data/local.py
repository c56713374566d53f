"""Datasets read from published files in a local (or gs://) directory, for those without a TFDS
builder. Nothing is downloaded: the user puts the files under one root directory.

The root is, in order: `set_data_dir(...)` (gin: `set_data_dir.path = '/data/spot'`), the
environment variable $SPOT_DATA_DIR, else ~/spot_data. Each dataset lives in {root}/{dataset}/.
It is resolved when data is read, not when tasks are registered, so a gin binding or an environment
variable set after `import tasks` still takes effect.
"""

from __future__ import annotations

import os
from typing import Optional

from etils import epath

from spot_jax.errors import SpotError

ENV_VAR = "SPOT_DATA_DIR"
_configured: Optional[str] = None


def set_data_dir(path: Optional[str]) -> None:
  """Sets the root of local datasets for this process (None: back to $SPOT_DATA_DIR)."""
  global _configured
  _configured = path


def data_dir() -> epath.Path:
  return epath.Path(_configured or os.environ.get(ENV_VAR) or os.path.expanduser("~/spot_data"))


def dataset_dir(dataset: str, layout: str) -> epath.Path:
  """{root}/{dataset}, or a one-line SpotError naming the directory and the expected `layout`."""
  path = data_dir() / dataset
  if not path.exists():
    raise SpotError(f"local dataset {dataset!r} not found: {path} does not exist; put the published "
                    f"files there ({layout}) or point ${ENV_VAR} / set_data_dir.path at their root")
  return path
