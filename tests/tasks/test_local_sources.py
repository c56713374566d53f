"""Local-file tasks (CxC, CR) read {local root}/{dataset}/ when their data is read, fail with the
one-line SpotError from spot_jax.data.local when it is absent, and yield well-formed examples from
files in the published layout; the dataset-specific formats of nli_paraphrase_sentiment."""

import pathlib

import pytest
import seqio
import tensorflow as tf

import tasks  # noqa: F401  registers the catalog
from spot_jax.data import local
from spot_jax.errors import SpotError
from tasks import nli_paraphrase_sentiment as nps

TOY_GIN = pathlib.Path(__file__).resolve().parents[1] / "train" / "toy_run.gin"

LENGTHS = {"inputs": 64, "targets": 8}


@pytest.fixture(autouse=True)
def _reset_data_dir(t5_vocab_path):
  del t5_vocab_path  # the catalog tokenizes with the vocabulary fixture
  local.set_data_dir(None)
  yield
  local.set_data_dir(None)


def _write_samples(root: pathlib.Path) -> None:
  for relative, content in nps.SAMPLE_FILES.items():
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / relative).write_text(content)


@pytest.mark.parametrize("name,dataset", [("cxc_sts", "cxc"), ("cr", "cr")])
def test_missing_directory_is_a_one_line_error(name, dataset, tmp_path, monkeypatch):
  monkeypatch.setenv(local.ENV_VAR, str(tmp_path))  # import happened before: resolved lazily
  task = seqio.get_mixture_or_task(name)
  with pytest.raises(SpotError) as error:
    task.get_dataset(LENGTHS, split="test", shuffle=False)
  message = str(error.value)
  assert "\n" not in message and str(tmp_path / dataset) in message
  assert nps.CR.layout in message or nps.CXC.layout in message


def test_missing_split_file_names_the_file(tmp_path):
  (tmp_path / "cr").mkdir()
  local.set_data_dir(str(tmp_path))
  with pytest.raises(SpotError, match="train.tsv does not exist"):
    seqio.get_mixture_or_task("cr").get_dataset(LENGTHS, split="train", shuffle=False)


def test_cxc_yields_regression_examples(tmp_path):
  _write_samples(tmp_path)
  local.set_data_dir(str(tmp_path))
  task = seqio.get_mixture_or_task("cxc_sts")
  examples = list(task.get_dataset(LENGTHS, split="validation", shuffle=False).as_numpy_iterator())
  assert [ex["targets_pretokenized"].decode() for ex in examples] == ["4.2", "0.0", "3.4"]
  assert examples[0]["inputs_pretokenized"].decode() == (
      "cxc caption1: A man rides a horse. caption2: A person on a horse.")
  vocab = task.output_features["targets"].vocabulary
  targets = [task.postprocess_fn(ex["targets_pretokenized"].decode(), is_target=True)
             for ex in examples]
  predictions = [task.postprocess_fn(vocab.decode(ex["targets"].tolist())) for ex in examples]
  assert targets == predictions == [4.2, 0.0, 3.4]
  scores = task.metric_fns[0](targets, predictions)
  assert scores["pearson_corrcoef"] == pytest.approx(100.0, rel=1e-9)  # float64 scipy
  assert task.source.num_input_examples("train") == 3


def test_cr_yields_classification_examples(tmp_path, monkeypatch):
  _write_samples(tmp_path)
  monkeypatch.setenv(local.ENV_VAR, str(tmp_path))
  task = seqio.get_mixture_or_task("cr")
  assert set(task.splits) == {"train", "test"}
  examples = list(task.get_dataset(LENGTHS, split="test", shuffle=False).as_numpy_iterator())
  assert [ex["inputs_pretokenized"].decode() for ex in examples][1] == (
      "cr sentence: the screen broke after a week .")
  assert [ex["targets_pretokenized"].decode() for ex in examples] == ["positive", "negative",
                                                                       "positive"]
  assert all(ex["inputs"][-1] == 1 and ex["targets"][-1] == 1 for ex in examples)
  targets = [task.postprocess_fn(ex["targets_pretokenized"].decode()) for ex in examples]
  assert task.metric_fns[0](targets, targets) == {"accuracy": 100.0}


def _format(name: str, example: dict) -> dict:
  """Runs a task's preprocessors before tokenization on one in-memory example."""
  ds = tf.data.Dataset.from_tensors(example)
  for fn in seqio.get_mixture_or_task(name).preprocessors[:-3]:  # tokenize, cache, EOS
    ds = fn(ds)
  return [{k: v.decode() for k, v in ex.items() if isinstance(v, bytes)}
          for ex in ds.as_numpy_iterator()]


def test_goemotions_target_is_the_set_of_true_emotions():
  example = {e: e in ("love", "joy") for e in nps.GOEMOTIONS}
  [out] = _format("goemotions_v01", {**example, "comment_text": "so happy for you"})
  assert out == {"inputs": "goemotions comment_text: so happy for you", "targets": "joy, love"}
  [none] = _format("goemotions_v01", {**{e: False for e in nps.GOEMOTIONS}, "comment_text": "ok"})
  assert none["targets"] == "neutral"
  assert nps.emotion_set("love, joy") == nps.emotion_set(out["targets"]) == ("joy", "love")


def test_sentiment140_drops_neutral_and_snli_drops_unlabeled():
  rows = [_format("sentiment140_v1", {"text": "t", "polarity": p, "date": "", "query": "",
                                      "user": ""}) for p in (0, 2, 4)]
  assert [[ex["targets"] for ex in r] for r in rows] == [["negative"], [], ["positive"]]
  snli = [_format("snli_v11", {"premise": "p", "hypothesis": "h", "label": label})
          for label in (-1, 2)]
  assert snli[0] == [] and snli[1] == [{"inputs": "snli hypothesis: h premise: p",
                                        "targets": "contradiction"}]


def test_family_mixtures():
  assert nps.TASKS == ["anli_r1_v01", "anli_r2_v01", "anli_r3_v01", "snli_v11", "docnli_v1",
                       "cxc_sts", "cr", "goemotions_v01", "sentiment140_v1",
                       "yelp_polarity_reviews_v02"]
  assert {t.name for t in seqio.get_mixture_or_task("sentiment").tasks} == {
      "cr", "goemotions_v01", "sentiment140_v1", "yelp_polarity_reviews_v02", "glue_sst2_v2"}
  assert "super_glue_cb_v102" in {t.name for t in seqio.get_mixture_or_task("nli").tasks}
  assert "cxc_sts" in {t.name for t in seqio.get_mixture_or_task("paraphrase").tasks}
  assert nps.version_suffix("0.1.0") == "v01" and nps.version_suffix("1.0.2") == "v102"


def test_rainbow_local_files_and_a_missing_labels_file(tmp_path):
  from tasks import rainbow_local
  for relative, content in rainbow_local.SAMPLE_FILES.items():
    (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / relative).write_text(content)
  local.set_data_dir(str(tmp_path))
  try:
    task = seqio.get_mixture_or_task("rainbow_social_i_qa")
    ex = next(task.get_dataset(None, split="validation", shuffle=False).as_numpy_iterator())
    assert ex["inputs_pretokenized"].decode().startswith("social_i_qa context: context text 0")
    assert ex["targets_pretokenized"].decode() == "answerA"
    assert task.source.num_input_examples("train") == 3
    (tmp_path / "art" / "dev-labels.lst").unlink()
    with pytest.raises(SpotError) as err:
      seqio.get_mixture_or_task("rainbow_art").source.num_input_examples("validation")
    assert "dev-labels.lst does not exist" in str(err.value) and "\n" not in str(err.value)
  finally:
    local.set_data_dir(None)


def test_gin_bindings_set_the_local_data_root_and_mixture_limit(tmp_path):
  from spot_jax import gin_utils
  from tasks import catalog
  try:
    gin_utils.parse([str(TOY_GIN)], [f"set_data_dir.path = '{tmp_path}'", "MODEL_DIR = '/tmp/x'",
                                     "set_mixture_limit.k = 3"], required=())
    assert local.data_dir() == pathlib.Path(tmp_path)
    # A 5-line CxC train file: K = 3 caps its rate at 3; the default K leaves it at 5.
    (tmp_path / "cxc" / "sts").mkdir(parents=True)
    (tmp_path / "cxc" / "sts" / "train.tsv").write_text("a\tb\t1.0\n" * 5)
    catalog.register_mixture("test_limit_mixture", ["cxc_sts"])
    mixture = seqio.get_mixture_or_task("test_limit_mixture")
    assert mixture.get_rate(mixture.tasks[0]) == 3.0
    catalog.set_mixture_limit(2**19)
    assert mixture.get_rate(mixture.tasks[0]) == 5.0
  finally:
    local.set_data_dir(None)
    catalog.set_mixture_limit(2**19)
