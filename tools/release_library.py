"""Builds the prompt library released with spot_jax (spot_jax/embedded/library/, see
spot_jax.embedded.released): every embedded source task tuned on the shipped model.

  python tools/release_library.py [--build /tmp/rel/library] [--out spot_jax/embedded/library]

1. build (resumable): spot_jax.study.transfer.build_library with the demo protocol tunes each of
   spot_jax.embedded.tasks.SOURCE_TASKS not yet in the --build library: run "seed0" (source
   prompt after --source_steps steps + task embedding) and, for each further embedding seed s, run
   "seed<s>" (task embedding only). A killed build resumes where it stopped; what is there is kept.
2. release: the listed sources' runs are copied into a fresh library in the final format (entries
   with their sidecars, the retrieval index, release.json: what was built how), which then replaces
   --out whole. Sources in the build library that are no longer listed are left out.

The shipped model must be the one the build library was tuned on (its checksum is checked by every
add); after retraining the model, start from an empty --build directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spot_jax import __version__, embedded  # noqa: E402
from spot_jax.embedded import demo, protocol, released  # noqa: E402
from spot_jax.embedded import tasks as synthetic_tasks  # noqa: E402
from spot_jax.io import atomic_directory  # noqa: E402
from spot_jax.library.store import KINDS, PromptLibrary  # noqa: E402
from spot_jax.study.transfer import Study, build_library, identity, run_name  # noqa: E402

RELEASE_FILE = "release.json"


def parse_args() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--build", default="/tmp/rel/library",
                      help="working library: tuned runs are kept here and never redone")
  parser.add_argument("--out", default=str(released.PATH), help="the released library's directory")
  parser.add_argument("--source_steps", type=int, default=protocol.DEMO_SOURCE_STEPS)
  parser.add_argument("--embedding_seeds", type=int, nargs="+", default=[0, 1, 2])
  return parser.parse_args()


def release(build: PromptLibrary, out: str, sources: tuple[str, ...], runs: list[str],
            record: dict) -> PromptLibrary:
  """Copies (task, run) for every source and run from `build` into a new library at `out`."""
  with atomic_directory(out, overwrite=True) as tmp:
    library = PromptLibrary(tmp)
    for task in sources:
      for run in runs:
        library.add_entry(build.get(task, run), reindex=False)
    library.reindex()
    (tmp / RELEASE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
  return PromptLibrary(out)


def main() -> None:
  args = parse_args()
  start = time.perf_counter()
  tuner = demo.embedded_tuner(protocol.DEMO_PROTOCOL)
  sources = tuple(synthetic_tasks.SOURCE_TASKS)
  families = {name: spec.family for name, spec in synthetic_tasks.TASKS.items()}
  study = Study(sources=sources, targets=(), source_steps=args.source_steps, families=families,
                embedding_seeds=tuple(args.embedding_seeds))
  build = PromptLibrary(args.build)
  build_library(tuner, build, study, identity(tuner, embedded.VOCABULARY_ID))
  runs = [run_name(0)] + [run_name(s) for s in study.embedding_seeds if s != 0]
  record = {"sources": list(sources), "runs": runs, "source_steps": args.source_steps,
            "embedding_seeds": list(study.embedding_seeds),
            "protocol": dataclasses.asdict(protocol.DEMO_PROTOCOL), "kinds": list(KINDS),
            "spot_jax_version": __version__,
            "command": " ".join(["python tools/release_library.py", *sys.argv[1:]])}
  library = release(build, args.out, sources, runs, record)
  size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
  print(f"released {len(library.list())} entries of {len(sources)} sources to {args.out} "
        f"({size / 1e6:.2f} MB) in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
  main()
