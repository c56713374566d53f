"""The prompt library released with spot_jax: the shipped embedded model's source prompts and task
embeddings, so retrieval and SPoT on the embedded universe work on a fresh install without tuning
a single source.

  spot_jax/embedded/library/   a PromptLibrary (store.py format, with its index) holding, for each
                               of spot_jax.embedded.tasks.SOURCE_TASKS, run "seed0" (source
                               prompt + task embedding) and runs "seed1", "seed2" (task embeddings
                               from those inits), tuned with the demo protocol by
                               tools/release_library.py

Its runs are the init seeds of `spot-jax embed --seed S`: retrieve with `--run seedS` to compare a
query with the sources embedded from the same init.
"""

from __future__ import annotations

import pathlib

from spot_jax.library.store import LIBRARY_FILE, LibraryError, PromptLibrary

PATH = pathlib.Path(__file__).resolve().parent / "library"
RUNS = ("seed0", "seed1", "seed2")  # the embedding seeds 0, 1, 2; seed0 also holds source prompts


def released_library() -> PromptLibrary:
  """The shipped library (read it; add to a copy, never to the installed package)."""
  if not (PATH / LIBRARY_FILE).exists():
    raise LibraryError(f"the released library is missing from {PATH}; reinstall spot-jax or build "
                       "it with `python tools/release_library.py`")
  return PromptLibrary(PATH)
