"""SPoT Table 2 lists and the spot_all mixture."""

import pytest
import seqio

from spot_jax.errors import SpotError
from tasks import catalog, glue, spot_lists


def test_table_2_has_16_sources_and_10_targets_without_overlap():
  assert len(spot_lists.SOURCE_TASKS) == len(set(spot_lists.SOURCE_TASKS)) == 16
  assert len(spot_lists.TARGET_TASKS) == len(set(spot_lists.TARGET_TASKS)) == 10
  assert not set(spot_lists.SOURCE_TASKS) & set(spot_lists.TARGET_TASKS)
  assert set(spot_lists.PAPER_TO_TASK) == {*spot_lists.SOURCE_PAPER_NAMES,
                                           *spot_lists.TARGET_PAPER_NAMES}


def test_glue_and_super_glue_names_resolve_to_registered_tasks():
  registered = set(glue.GLUE_TASKS) | set(glue.SUPER_GLUE_TASKS)
  benchmark = [n for n, task in spot_lists.PAPER_TO_TASK.items()
               if task.startswith(("glue_", "super_glue_"))]
  assert len(benchmark) == 15  # 6 sources (MNLI QQP QNLI ReCoRD SST-2 MultiRC) + 9 targets (not CR)
  assert set(spot_lists.resolve(benchmark)) <= registered
  assert spot_lists.resolve(["RTE", "super_glue_rte_v102"]) == ["glue_rte_v2",
                                                                "super_glue_rte_v102"]


def test_unknown_names_raise_a_one_line_spot_error():
  with pytest.raises(SpotError, match="not registered: no_such_task") as err:
    spot_lists.resolve(["CB", "no_such_task"])
  assert "\n" not in str(err.value)


def test_spot_all_is_c4_plus_labeled_tasks():
  names = spot_lists.register_spot_all(max_examples=1000)
  assert len(names) == len(set(names))
  families = {catalog.ENTRIES[n].family for n in names}
  assert "crossfit" not in families
  labeled = [n for n in names if catalog.ENTRIES[n].family != spot_lists.C4_FAMILY]
  assert {"glue_rte_v2", "super_glue_boolq_v102"} <= set(labeled)
  assert not {"glue_wnli_v2", "super_glue_axb_v102", "super_glue_axg_v102"} & set(names)
  c4 = catalog.families().get(spot_lists.C4_FAMILY, [])
  assert names[:len(c4)] == sorted(c4)
  mixture = seqio.get_mixture_or_task("spot_all")
  assert sorted(t.name for t in mixture.tasks) == sorted(names)
