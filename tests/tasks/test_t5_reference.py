"""Our GLUE and SuperGLUE tasks write exactly what Google's t5 package (t5==0.9.4) writes, and score
exactly as it scores.

The reference is tests/tasks/t5_reference.json, written by tools/t5_golden.py from the t5 package
itself (t5 cannot be a test dependency: it pins tfds-nightly and seqio-nightly, which install into
tensorflow-datasets' and seqio's folders). It holds, per task, raw examples in the TFDS config's
feature structure, the inputs and targets t5's registered task makes of them, predictions (invalid
decodes among them) and t5's metric values on them. Here the same raw examples go through our
registered task (tokenization included) and the same predictions through our postprocess_fn and
metric_fns.
"""

import functools
import math

import pytest
import seqio

import t5_reference_data as data
import tasks  # noqa: F401  registers the catalog
from tasks import catalog

GOLDEN = data.load_golden()["tasks"]
NAMES = sorted(GOLDEN)

# Our metric names where they differ from t5's: MultiRC's F1 over all answers is SuperGLUE's "F1a".
OUR_KEY = {"super_glue_multirc_v102": {"f1": "f1a"}}
# Where we differ on purpose: t5's STS-B correlations are nan for a constant decode (all "", all
# "3.0") or a "nan" decode; ours are 0 for a constant side and read "nan" as invalid (-1), so a
# checkpoint's score stays comparable.
T5_NAN = {("glue_stsb_v2", "all_empty"), ("glue_stsb_v2", "constant"), ("glue_stsb_v2", "nan_decode")}
RTOL = ATOL = 1e-9  # float64 metrics computed in the same order up to summation


@pytest.fixture(autouse=True)
def _vocabulary_fixture(t5_vocab_path):
  del t5_vocab_path  # tokenizing uses the vocabulary fixture ($SPOT_VOCABULARY, conftest)


@functools.lru_cache(maxsize=None)
def our_examples(name: str) -> tuple:
  """The golden raw examples through our registered task: text preprocessors, tokenize, EOS."""
  task = seqio.get_mixture_or_task(name)
  ds = data.dataset(GOLDEN[name]["tfds"], GOLDEN[name]["raw"])
  ds = task.preprocess_postcache(task.preprocess_precache(ds, seed=0), sequence_length=None, seed=0)
  return tuple(ds.as_numpy_iterator())


def test_golden_file_covers_every_glue_and_super_glue_task():
  families = catalog.families()
  assert sorted(families["glue"] + families["super_glue"]) == NAMES == sorted(data.TASKS)
  for name in NAMES:
    assert catalog.ENTRIES[name].source == f"tfds:{data.TASKS[name]}" == f"tfds:{GOLDEN[name]['tfds']}"
    assert len(GOLDEN[name]["inputs"]) >= 16  # the raw examples did not vanish on the way


@pytest.mark.parametrize("name", NAMES)
def test_inputs_and_targets_are_t5s(name):
  examples = our_examples(name)
  assert [ex["inputs_pretokenized"].decode() for ex in examples] == GOLDEN[name]["inputs"]
  assert [ex["targets_pretokenized"].decode() for ex in examples] == GOLDEN[name]["targets"]
  vocab = seqio.get_mixture_or_task(name).output_features["targets"].vocabulary
  for ex in examples:  # tokenized as the text is, EOS appended
    for feature in ("inputs", "targets"):
      assert ex[feature].tolist() == [*vocab.encode(ex[f"{feature}_pretokenized"].decode()),
                                      vocab.eos_id]


def _our_metrics(name: str, target_rows: list, decodes: list[str]) -> dict[str, float]:
  task = seqio.get_mixture_or_task(name)
  examples = our_examples(name)
  targets = [task.postprocess_fn(examples[i]["targets_pretokenized"].decode(), example=examples[i],
                                 is_target=True) for i in target_rows]
  predictions = [task.postprocess_fn(d, example=examples[i], is_target=False)
                 for d, i in zip(decodes, target_rows)]
  values: dict[str, float] = {}
  for fn in task.metric_fns:
    values.update(fn(targets, predictions))
  return values


@pytest.mark.parametrize("name", [n for n in NAMES if GOLDEN[n]["metrics"]])
def test_metric_values_are_t5s(name):
  golden = GOLDEN[name]
  rows = golden["scored_rows"]
  assert rows == [i for i, t in enumerate(golden["targets"]) if t != "<unk>"]
  names = {s["name"] for s in golden["metrics"]}
  assert {"random0", "random1", "random2", "all_correct", "all_empty"} <= names
  key = OUR_KEY.get(name, {})
  for prediction_set in golden["metrics"]:
    ours = _our_metrics(name, rows, prediction_set["predictions"])
    t5 = prediction_set["values"]
    assert set(ours) - {"average"} == {key.get(k, k) for k in t5}, prediction_set["name"]
    for k, value in t5.items():
      if (name, prediction_set["name"]) in T5_NAN:
        assert math.isnan(value) and math.isfinite(ours[key.get(k, k)])
      else:
        assert ours[key.get(k, k)] == pytest.approx(value, rel=RTOL, abs=ATOL), (
            prediction_set["name"], k)
    if prediction_set["name"] == "all_correct":
      assert all(v == pytest.approx(100.0, rel=RTOL, abs=1e-6) for v in ours.values())


@pytest.mark.parametrize("name", ["super_glue_axb_v102", "super_glue_axg_v102"])
def test_diagnostics_have_a_metric_where_t5_has_none(name):
  # AX-b and AX-g have only an unlabelled test split; t5 registers no metric, we keep SuperGLUE's
  # (Matthews correlation, accuracy) so that a labelled copy could be scored.
  assert GOLDEN[name]["metrics"] == [] and GOLDEN[name]["t5_metric_fns"] == []
  task = seqio.get_mixture_or_task(name)
  assert task.metric_fns and set(task.splits) == {"test"}
  rows = [i for i, t in enumerate(GOLDEN[name]["targets"]) if t != "<unk>"]
  values = _our_metrics(name, rows, [GOLDEN[name]["targets"][i] for i in rows])
  assert list(values.values()) == [pytest.approx(100.0, rel=RTOL, abs=ATOL)]
