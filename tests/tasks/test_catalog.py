"""Every registered task yields well-formed text-to-text examples under tfds mock data, tokenizes
with the real T5 vocabulary, and its metrics accept its postprocessed targets."""

import inspect
import json
import math
import pathlib
import re

import pytest
import seqio
import tensorflow_datasets as tfds

import tasks  # noqa: F401  registers the catalog
from spot_jax.data import local
from tasks import catalog

LENGTHS = {"inputs": 128, "targets": 16}


@pytest.fixture(autouse=True)
def _vocabulary_fixture(t5_vocab_path):
  del t5_vocab_path  # the catalog tokenizes with the vocabulary fixture


@pytest.fixture(autouse=True, scope="module")
def _local_sample_files(tmp_path_factory):
  """Local-file sources read the small SAMPLE_FILES their modules declare, under a tmp root."""
  root = tmp_path_factory.mktemp("local")
  for module in (tasks.nli_paraphrase_sentiment, tasks.crossfit, tasks.generation,
                 tasks.rainbow_local):
    for relative, content in getattr(module, "SAMPLE_FILES", {}).items():
      (root / relative).parent.mkdir(parents=True, exist_ok=True)
      (root / relative).write_text(content)
  local.set_data_dir(str(root))
  yield root
  local.set_data_dir(None)


def write_tfds_metadata(data_dir, tfds_name: str, split_sizes: dict) -> None:
  """TFDS ships no split metadata for these builders: write dataset_info.json with split sizes
  into `data_dir` so that mock_data(policy=USE_FILES, data_dir=...) knows the splits."""
  builder = tfds.builder(tfds_name, data_dir=str(data_dir))
  builder.info.set_splits(tfds.core.SplitDict([
      tfds.core.SplitInfo(name=split, shard_lengths=[n], num_bytes=0, filename_template=None)
      for split, n in split_sizes.items()]))
  pathlib.Path(builder.data_dir).mkdir(parents=True, exist_ok=True)
  builder.info.write_to_directory(builder.data_dir)


@pytest.fixture(scope="module")
def mock_data_dir(tmp_path_factory):
  """Metadata (4 examples per split) for every TFDS source of the catalog."""
  data_dir = tmp_path_factory.mktemp("tfds")
  for name in catalog.ENTRIES:
    source = seqio.get_mixture_or_task(name).source
    if isinstance(source, seqio.TfdsDataSource):
      tfds_splits = set(source.tfds_dataset._split_map.values())  # canonical -> TFDS split
      write_tfds_metadata(data_dir, source.tfds_dataset.name, {s: 4 for s in tfds_splits})
  return data_dir


def _predict_metrics(task):
  return [m for m in task.metric_fns if "predictions" in inspect.signature(m).parameters]


# k-shot tasks (CrossFit Gym, the embedded universe's CrossFit form) differ across their five
# sampling seeds only in which examples they read: seed 13 stands for each, which keeps this test
# at one case per task definition instead of five.
ONE_SEED_PER_K_SHOT_TASK = [n for n in sorted(catalog.ENTRIES)
                            if not re.search(r"_16_(21|42|87|100)(_v\d+)?$", n)]


@pytest.mark.parametrize("name", ONE_SEED_PER_K_SHOT_TASK)
def test_task_yields_examples_and_metrics_accept_them(name, mock_data_dir):
  task = seqio.get_mixture_or_task(name)
  split = "validation" if "validation" in task.splits else sorted(task.splits)[0]
  with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_FILES, data_dir=str(mock_data_dir)):
    ds = task.get_dataset(LENGTHS, split=split, shuffle=False, num_epochs=1)
    examples = list(ds.take(4).as_numpy_iterator())
  assert examples, f"{name} yielded nothing"
  vocab = task.output_features["targets"].vocabulary
  targets, predictions = [], []
  for ex in examples:
    inputs = ex["inputs_pretokenized"].decode()
    # T5 formats start with the task's short name (T5 casts the SuperGLUE diagnostics AX-b and AX-g
    # as RTE); synthetic targets vary their prefixes on purpose
    first = inputs.split(" ")[0]
    assert (first in name or name.startswith("synthetic_") or
            (first == "rte" and name in ("super_glue_axb_v102", "super_glue_axg_v102")))
    assert ":" in inputs
    assert ex["inputs"].ndim == 1 and 0 < len(ex["inputs"]) <= LENGTHS["inputs"]
    assert ex["inputs"][-1] == 1 or len(ex["inputs"]) == LENGTHS["inputs"]  # EOS unless trimmed
    assert ex["targets"].max() < vocab.vocab_size
    target_text = ex["targets_pretokenized"].decode()
    assert target_text
    targets.append(task.postprocess_fn(target_text, example=ex, is_target=True))
    predictions.append(task.postprocess_fn(vocab.decode(ex["targets"].tolist()), example=ex,
                                           is_target=False))
  metric_fns = _predict_metrics(task)
  if catalog.ENTRIES[name].family == "c4":
    assert not task.metric_fns  # training-only objective
    return
  assert metric_fns, f"{name} has no predict metric"
  for fn in metric_fns:
    values = fn(targets, predictions)
    assert values and all(isinstance(v, float) and not math.isinf(v) for v in values.values()), values


def test_families_cover_glue_and_super_glue():
  fams = catalog.families()
  assert len(fams["glue"]) == 9 and len(fams["super_glue"]) == 10
  assert "glue_rte_v2" in fams["glue"] and "super_glue_boolq_v102" in fams["super_glue"]


def test_mixture_rates_are_num_examples_capped_at_k(tmp_path):
  # Real TFDS metadata (split sizes) written to a data dir, read through mock_data(USE_FILES).
  sizes = {"glue_rte_v2": 2490, "glue_qqp_v2": 363846, "super_glue_boolq_v102": 9427}
  for name, n in sizes.items():
    write_tfds_metadata(tmp_path, seqio.get_mixture_or_task(name).source.tfds_dataset.name,
                        {"train": n})
  # seqio memoizes TFDS builders (and their split sizes) across data dirs: drop them so this
  # test's metadata is read.
  seqio.utils.LazyTfdsLoader._MEMOIZED_BUILDERS.clear()
  k = 100_000
  catalog.register_mixture("test_capped_mixture", list(sizes), max_examples=k)
  with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_FILES, data_dir=str(tmp_path)):
    mixture = seqio.get_mixture_or_task("test_capped_mixture")
    rates = {task.name: mixture.get_rate(task) for task in mixture.tasks}
  assert rates == {name: float(min(n, k)) for name, n in sizes.items()}


def test_tasks_command_lists_the_catalog(capsys):
  from spot_jax import cli
  assert cli.main(["tasks", "--family", "glue", "--json"]) == 0
  rows = json.loads(capsys.readouterr().out)
  assert [r["name"] for r in rows] == sorted(r["name"] for r in rows)
  rte = next(r for r in rows if r["name"] == "glue_rte_v2")
  assert rte["source"] == "tfds:glue/rte:2.0.0" and rte["metrics"] == ["accuracy"]
  assert set(rte["splits"]) == {"train", "validation", "test"} and rte["local"] is False
  assert cli.main(["tasks", "--family", "nope"]) == 2
  listed = capsys.readouterr().err.split("families: ")[1].strip().split(", ")
  assert listed == sorted(listed) and {"glue", "super_glue"} <= set(listed)  # others add theirs
