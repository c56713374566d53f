"""`import tasks` registers the embedded tasks and the sources mixture under their versioned names."""

from __future__ import annotations

import seqio

import tasks  # noqa: F401  the catalog, embedded tasks included
from spot_jax.embedded import crossfit, seqio_tasks
from spot_jax.embedded import tasks as synthetic_tasks
from tasks import catalog


def test_every_task_and_the_mixture_are_registered():
  for name, spec in synthetic_tasks.TASKS.items():
    assert catalog.ENTRIES[name].family == f"synthetic_{spec.family}"
    assert set(seqio.get_mixture_or_task(name).splits) == set(synthetic_tasks.SPLITS)
  mixture = seqio.get_mixture_or_task(synthetic_tasks.SOURCES_MIXTURE)
  assert sorted(t.name for t in mixture.tasks) == sorted(synthetic_tasks.SOURCE_TASKS)
  k_shot = set(crossfit.TASKS + crossfit.UPSTREAM)  # spot_jax.embedded.crossfit's samples
  assert not [n for n in seqio.TaskRegistry.names() if n.startswith("synthetic_")
              and n not in synthetic_tasks.TASKS and n not in k_shot]  # no unversioned leftovers


def test_feature_lengths_fit_under_the_universe_maximum():
  lengths = seqio_tasks.feature_lengths(synthetic_tasks.task_name("sent_story"))
  assert lengths == {"inputs": 24, "targets": 8}  # measured before the refactor
  assert all(lengths[k] <= synthetic_tasks.FEATURE_LENGTHS[k] for k in lengths)
