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
  assert set(seqio.get_mixture_or_task(name).splits) == {"train", "validation", "test", "train_dev"}
  rows = examples(name, "validation")
  assert [r["inputs_pretokenized"].decode() for r in rows] == [
      "crossfit superglue-cb: premise: It rained. [SEP] hypothesis: It was wet. (dev)",
      "crossfit superglue-cb: premise: A dog. [SEP] hypothesis: A cat."]
  assert [r["targets_pretokenized"] for r in rows] == [b"entailment", b"contradiction"]
  assert seqio.get_mixture_or_task(name).num_input_examples("train") == 2
  both = examples(name, crossfit.UPSTREAM_SPLIT)  # CrossFit multi-task: train then dev file
  assert [r["inputs_pretokenized"].decode().split(" wet. ")[-1] for r in both] == [
      "(train)", "crossfit superglue-cb: premise: A dog. [SEP] hypothesis: A cat.", "(dev)",
      "crossfit superglue-cb: premise: A dog. [SEP] hypothesis: A cat."]


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
  every = {**crossfit.ADL_TARGETS, **crossfit.UPSTREAM_TASKS, **crossfit.DEV_TASKS}
  for name in crossfit.TASKS + crossfit.UPSTREAM + crossfit.DEV:
    task, k, seed = next((t, crossfit.K, s) for t in every for s in crossfit.SEEDS
                         if crossfit.task_name(t, crossfit.K, s) == name)
    for split in ("train", "dev", "test"):
      assert f"crossfit/{task}/{task}_{k}_{seed}_{split}.tsv" in crossfit.SAMPLE_FILES
  assert len(crossfit.SAMPLE_FILES) == (10 + 45 + 10) * 5 * 3


def test_upstream_and_dev_lists_match_the_classification_partition():
  # train_classification_test_classification.json: 45 "train", 10 "dev", 10 "test" tasks
  upstream, dev, targets = (set(crossfit.UPSTREAM_TASKS), set(crossfit.DEV_TASKS),
                            set(crossfit.ADL_TARGETS))
  assert (len(crossfit.UPSTREAM_TASKS), len(crossfit.DEV_TASKS)) == (45, 10)
  assert not upstream & targets and not dev & targets and not upstream & dev
  assert {"glue-rte", "glue-cola", "superglue-wic", "kilt_fever"} <= upstream
  assert {"ag_news", "medical_questions_pairs"} <= dev
  # CrossFit's metric per task: accuracy for the GLUE-style pairs, MCC for CoLA, else macro-F1
  assert {t for t, m in crossfit.UPSTREAM_TASKS.items() if m == "MCC"} == {"glue-cola"}
  assert {t for t, m in crossfit.UPSTREAM_TASKS.items() if m == "Acc"} == {
      "superglue-rte", "glue-rte", "superglue-wsc", "glue-mrpc", "glue-qqp", "glue-mnli",
      "glue-wnli", "glue-sst2", "glue-qnli", "superglue-wic", "google_wellformed_query",
      "kilt_fever"}
  assert {t for t, m in crossfit.DEV_TASKS.items() if m != "F1"} == {"medical_questions_pairs"}


def test_upstream_and_dev_names_are_registered_for_every_seed():
  names = crossfit.upstream_task_names()
  assert len(names) == 45 * 5 and names == crossfit.UPSTREAM
  assert crossfit.upstream_task_names(seed=13)[:2] == ["crossfit_superglue_rte_16_13",
                                                       "crossfit_tweet_eval_sentiment_16_13"]
  assert len(crossfit.upstream_task_names(seed=[13, 100])) == 90
  assert len(crossfit.dev_task_names(42)) == 10 and crossfit.dev_task_names() == crossfit.DEV
  for name in names + crossfit.DEV:
    assert catalog.ENTRIES[name].family == "crossfit"
  (fn,) = seqio.get_mixture_or_task("crossfit_glue_cola_16_87").metric_fns
  assert fn is crossfit.crossfit_matthews_corr
  with pytest.raises(SpotError, match=r"seed\(s\) \[7\] are not registered"):
    crossfit.upstream_task_names(seed=7)


def test_upstream_mixture_is_registered_without_reading_files(gym_root):
  # gym_root is empty: registration (and listing the tasks) must not read any file
  catalog.register_mixture("test_crossfit_mixture", crossfit.upstream_task_names(seed=21))
  mixture = seqio.get_mixture_or_task(crossfit.UPSTREAM_MIXTURE)
  assert sorted(t.name for t in mixture.tasks) == sorted(crossfit.upstream_task_names())
  assert not list(gym_root.iterdir())
  seqio.MixtureRegistry.remove("test_crossfit_mixture")


def test_mixture_over_two_upstream_tasks_reads_both(gym_root, t5_vocab_path):
  del t5_vocab_path
  for task, lines in (("glue-rte", 1), ("trec", 3)):
    for split in ("train", "dev", "test"):
      write(gym_root, f"crossfit/{task}/{task}_16_13_{split}.tsv",
            "".join(f"{task} {split} {i}\tlabel{i}\n" for i in range(lines)))
  names = ["crossfit_glue_rte_16_13", "crossfit_trec_16_13"]
  catalog.register_mixture("test_two_upstream", names)
  mixture = seqio.get_mixture_or_task("test_two_upstream")
  assert {t.name: mixture.get_rate(t) for t in mixture.tasks} == {names[0]: 1.0, names[1]: 3.0}
  rows = list(mixture.get_dataset(LENGTHS, split="train", shuffle=True, seed=0,
                                      num_epochs=None, copy_pretokenized=True)
              .take(200).as_numpy_iterator())
  seen = [r["inputs_pretokenized"].decode().split(": ")[0] for r in rows]
  assert set(seen) == {"crossfit glue-rte", "crossfit trec"}
  assert 20 < seen.count("crossfit glue-rte") < 80  # rate 1 of 4: 50 expected, std 6
  seqio.MixtureRegistry.remove("test_two_upstream")


def test_matthews_corr_matches_sklearn_with_crossfit_binarization():
  golds = ["acceptable", "unacceptable", "acceptable", "acceptable", "unacceptable", "acceptable"]
  predictions = [" acceptable", "unacceptable", "garbage", "acceptable", "acceptable", "acceptable"]
  got = crossfit.crossfit_matthews_corr([[g] for g in golds], predictions)["matthews_corrcoef"]

  def binary(texts):
    return [int(t.strip() == "acceptable") for t in texts]

  assert got == pytest.approx(100 * sklearn.metrics.matthews_corrcoef(binary(golds),
                                                                      binary(predictions)),
                              rel=1e-9)  # float64 counts
  assert got != 0.0


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
