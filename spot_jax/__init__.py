"""spot-jax: soft prompt tuning and transfer (SPoT) on a frozen T5, in JAX/Flax."""

import os

__version__ = "0.1.0"

# XLA:CPU (jaxlib 0.10) hands dots *and* the elementwise work around them to YNNPACK fusions,
# which take every broadcast constant (e.g. GELU's) as a materialised [B, T, F] input: on this
# project's 2-core CPU the train step ran 1.17-1.32x faster with YNNPACK kept to single dots
# (docs/benchmarks.md, tools/bench_peer.py). XLA reads XLA_FLAGS when its CPU client starts, so
# this holds when spot_jax is imported before the first computation; a flag the user sets wins.
_YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"


def _default_xla_flags() -> None:
  from importlib import metadata
  try:
    major, minor = (int(x) for x in metadata.version("jaxlib").split(".")[:2])
  except (metadata.PackageNotFoundError, ValueError):
    return
  flags = os.environ.get("XLA_FLAGS", "")
  if (major, minor) >= (0, 10) and _YNN_FLAG not in flags:  # older XLA aborts on unknown flags
    os.environ["XLA_FLAGS"] = f"{flags} {_YNN_FLAG}=individual_dot".strip()


_default_xla_flags()
