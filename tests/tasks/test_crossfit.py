"""CrossFit Gym tasks: lazy reading of the TSV layout, multi-answer golds, the ADL metric table."""

import pathlib

import pytest
import seqio
import sklearn.metrics  # the test extra: the reference macro-F1

from spot_jax.data import local
from spot_jax.errors import SpotError
from tasks import catalog, crossfit

LENGTHS = {"inputs": 64, "targets": 8}


@pytest.fixture
def gym_root(tmp_path):
  """A local root holding crossfit/…; set_data_dir points at it for the test only."""
  local.set_data_dir(str(tmp_path))
  yield tmp_path
  local.set_data_dir(None)


def write(root: pathlib.Path, relative: str, text: str) -> None:
  path = root / relative
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)


def examples(name: str, split: str) -> list[dict]:
  task = seqio.get_mixture_or_task(name)
  return list(task.get_dataset(LENGTHS, split=split, shuffle=False, num_epochs=1)
              .as_numpy_iterator())


def test_registered_task_reads_the_gym_layout(gym_root, t5_vocab_path):
  del t5_vocab_path  # tokenizing needs the vocabulary fixture
  for split in ("train", "dev", "test"):
    write(gym_root, f"crossfit/superglue-cb/superglue-cb_16_13_{split}.tsv",
          f"premise: It rained. [SEP] hypothesis: It was wet. ({split})\tentailment\n\n"
          "premise: A dog. [SEP] hypothesis: A cat.\tcontradiction\n")
  name = "crossfit_superglue_cb_16_13"
  assert name in crossfit.TASKS and catalog.ENTRIES[name].family == "crossfit"
  assert set(seqio.get_mixture_or_task(name).splits) == {"train", "validation", "test"}
  rows = examples(name, "validation")
  assert [r["inputs_pretokenized"].decode() for r in rows] == [
      "crossfit superglue-cb: premise: It rained. [SEP] hypothesis: It was wet. (dev)",
      "crossfit superglue-cb: premise: A dog. [SEP] hypothesis: A cat."]
  assert [r["targets_pretokenized"] for r in rows] == [b"entailment", b"contradiction"]
  assert seqio.get_mixture_or_task(name).num_input_examples("train") == 2


def test_sep_joined_outputs_are_all_golds_for_metrics(gym_root, t5_vocab_path):
  del t5_vocab_path
  crossfit.register_crossfit_task("test-qa", 4, 7, "Acc")
  for split in ("train", "dev", "test"):
    write(gym_root, f"crossfit/test-qa/test-qa_4_7_{split}.tsv",
          "who wrote it?\tAnn [SEP] ann smith\nwhen?\t1999\textra gold\n")
  name = "crossfit_test_qa_4_7"
  task = seqio.get_mixture_or_task(name)
  rows = examples(name, "test")
  golds = [task.postprocess_fn(r["targets_pretokenized"].decode(), example=r, is_target=True)
           for r in rows]
  assert golds == [["Ann", "ann smith"], ["1999", "extra gold"]]
  assert [r["targets_pretokenized"] for r in rows] == [b"Ann", b"1999"]
  predictions = [task.postprocess_fn(p, example=r) for p, r in zip([" ANN SMITH ", "2000"], rows)]
  assert task.metric_fns[0](golds, predictions) == {"accuracy": 50.0}
  seqio.TaskRegistry.remove(name)
  del catalog.ENTRIES[name]


def test_metric_table_matches_the_paper():
  assert sorted(crossfit.ADL_TARGETS) == sorted([
      "anli", "dbpedia_14", "emo", "ethos-race", "ethos-religion", "financial_phrasebank",
      "superglue-cb", "tab_fact", "wiki_qa", "yelp_polarity"])
  assert {t for t, m in crossfit.ADL_TARGETS.items() if m != "F1"} == {"superglue-cb"}
  assert crossfit.ADL_TARGETS["superglue-cb"] == "Acc"
  assert len(crossfit.TASKS) == 10 * 5 and "crossfit_ethos_race_16_100" in crossfit.TASKS
  for name in crossfit.TASKS:
    (fn,) = seqio.get_mixture_or_task(name).metric_fns
    expected = crossfit.crossfit_accuracy if "superglue_cb" in name else crossfit.crossfit_macro_f1
    assert fn is expected


def test_macro_f1_matches_sklearn_including_invalid_decodes():
  golds = ["pos", "neg", "neg", "neu", "pos", "neg"]
  predictions = ["pos", "neg", "pos", "neu", "garbage", "neu"]
  got = crossfit.crossfit_macro_f1([[g] for g in golds], predictions)["macro_f1"]
  assert got == pytest.approx(100 * sklearn.metrics.f1_score(golds, predictions, average="macro"),
                             rel=1e-9)  # float64 counts


def test_sample_files_cover_every_registered_task():
  for name in crossfit.TASKS:
    task, k, seed = next((t, crossfit.K, s) for t in crossfit.ADL_TARGETS for s in crossfit.SEEDS
                         if crossfit.task_name(t, crossfit.K, s) == name)
    for split in ("train", "dev", "test"):
      assert f"crossfit/{task}/{task}_{k}_{seed}_{split}.tsv" in crossfit.SAMPLE_FILES
  assert len(crossfit.SAMPLE_FILES) == 10 * 5 * 3


def test_missing_file_is_a_one_line_error_naming_it(gym_root):
  (gym_root / "crossfit" / "anli").mkdir(parents=True)
  with pytest.raises(SpotError) as err:
    seqio.get_mixture_or_task("crossfit_anli_16_42").source.get_dataset("train")
  message = str(err.value)
  assert "\n" not in message and str(gym_root / "crossfit/anli/anli_16_42_train.tsv") in message


def test_missing_root_and_bad_lines_are_one_line_errors(gym_root):
  with pytest.raises(SpotError, match="crossfit.*does not exist") as err:
    seqio.get_mixture_or_task("crossfit_emo_16_13").source.get_dataset("test")
  assert "\n" not in str(err.value)
  write(gym_root, "crossfit/emo/emo_16_13_test.tsv", "no tab here\n")
  with pytest.raises(SpotError, match=r"emo_16_13_test.tsv:1: expected input<TAB>output"):
    seqio.get_mixture_or_task("crossfit_emo_16_13").source.get_dataset("test")


def test_unknown_metric_is_rejected():
  with pytest.raises(SpotError, match="unknown CrossFit metric 'BLEU'"):
    crossfit.register_crossfit_task("emo", 16, 13, "BLEU")
