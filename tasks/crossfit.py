"""CrossFit Few-shot Gym tasks read from the published TSV files, with CrossFit's metrics.

Layout under the local root (spot_jax.data.local): crossfit/{task}/{task}_{k}_{seed}_{split}.tsv
for split in train/dev/test; one example a line, "input<TAB>output", several gold answers joined by
" [SEP] ". Task names: crossfit_{task}_{k}_{seed} with '-' -> '_', e.g. crossfit_superglue_cb_16_13;
splits train / validation (the dev file) / test, and train_dev (the train file then the dev file:
what CrossFit's multi-task upstream learning trains on, UPSTREAM_SPLIT). Inputs read
"crossfit {task}: {input}", the target is the first gold answer, and metrics see every gold answer.

Registered at import (no file is read), all with k = 16 and CrossFit's 5 sampling seeds, from
CrossFit's task partition train_classification_test_classification.json:
- its "test" list: the 10 classification targets of the CrossFit PEFT study (ADL report, Table 1);
- its "train" list (UPSTREAM_TASKS, 45 tasks) and "dev" list (DEV_TASKS, 10 tasks).
CrossFit's upstream learning (run_multitask.py / run_maml.py) reads every k-shot file of an upstream
task that the Gym wrote, i.e. all 5 seeds: multi-task trains on train + dev files together, MAML
samples each (task, seed)'s support set from its train file and query set from its dev file.
Mixture `crossfit_upstream_classification`: the 45 x 5 upstream tasks, examples-proportional.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import seqio
import tensorflow as tf
from etils import epath

from spot_jax.data import local, metrics
from spot_jax.errors import SpotError
from tasks import catalog

LAYOUT = ("crossfit/{task}/{task}_{k}_{seed}_{train,dev,test}.tsv, lines input<TAB>output, "
          "gold answers joined by ' [SEP] '")
ANSWER_SEPARATOR = " [SEP] "
UPSTREAM_SPLIT = "train_dev"  # CrossFit multi-task upstream: data_split="all", train then dev
# seqio split -> the Gym files it reads, in order
_FILE_SPLITS = {"train": ("train",), "validation": ("dev",), "test": ("test",),
                UPSTREAM_SPLIT: ("train", "dev")}
_FILES = ("train", "dev", "test")

# ---------------------------------------------------------------- metrics (CrossFit's evaluate)


def crossfit_accuracy(targets: Sequence[Sequence[str]], predictions: Sequence[str]
                      ) -> dict[str, float]:
  """CrossFit "ACC": % of predictions equal (case-insensitively) to any of their gold answers."""
  _check(targets, predictions)
  hits = [any(p.lower() == g.lower() for g in golds) for golds, p in zip(targets, predictions)]
  return {"accuracy": 100.0 * float(np.mean(hits))}


def crossfit_macro_f1(targets: Sequence[Sequence[str]], predictions: Sequence[str]
                      ) -> dict[str, float]:
  """CrossFit "Classification-F1": sklearn's f1_score(first golds, predictions, average="macro").

  Classes are the strings seen among first golds and predictions, so a decode that is no label
  becomes a class of F1 0 and lowers the mean, exactly as in CrossFit."""
  _check(targets, predictions)
  golds = np.asarray([g[0] for g in targets], dtype=object)
  preds = np.asarray(list(predictions), dtype=object)
  scores = []
  for label in sorted(set(golds) | set(preds)):
    true_pos = int(np.sum((golds == label) & (preds == label)))
    wrong = int(np.sum(golds == label)) + int(np.sum(preds == label)) - 2 * true_pos
    scores.append(2 * true_pos / (2 * true_pos + wrong) if true_pos else 0.0)
  return {"macro_f1": 100.0 * float(np.mean(scores))}


def crossfit_matthews_corr(targets: Sequence[Sequence[str]], predictions: Sequence[str]
                           ) -> dict[str, float]:
  """CrossFit "Matthew-Correlation" (glue-cola only), x100: Matthews correlation of "is the first
  gold 'acceptable'" against "is the stripped decode 'acceptable'", so any other decode counts as
  'unacceptable', as CrossFit binarizes."""
  _check(targets, predictions)
  golds = [int(g[0] == "acceptable") for g in targets]
  preds = [int(p.strip() == "acceptable") for p in predictions]
  return metrics.matthews_corrcoef(golds, preds)


def _check(targets: Sequence[Any], predictions: Sequence[Any]) -> None:
  if len(targets) != len(predictions) or not len(targets):
    raise ValueError(f"{len(targets)} targets and {len(predictions)} predictions")


# CrossFit's metric names (dataloader/metrics.py METRICS) -> ours: Classification-F1 -> "F1",
# ACC -> "Acc", Matthew-Correlation -> "MCC".
METRICS: dict[str, Callable] = {"F1": crossfit_macro_f1, "Acc": crossfit_accuracy,
                                "MCC": crossfit_matthews_corr}

# ADL report Table 1: "F1" for all but superglue-cb, which is scored by accuracy.
ADL_TARGETS: dict[str, str] = {
    "anli": "F1", "dbpedia_14": "F1", "emo": "F1", "ethos-race": "F1", "ethos-religion": "F1",
    "financial_phrasebank": "F1", "superglue-cb": "Acc", "tab_fact": "F1", "wiki_qa": "F1",
    "yelp_polarity": "F1"}
K = 16
SEEDS = (13, 21, 42, 87, 100)  # CrossFit's few-shot sampling seeds

# train_classification_test_classification.json "train" (45 tasks, in its order) with each task's
# metric in CrossFit's dataloader/metrics.py.
UPSTREAM_TASKS: dict[str, str] = {
    "superglue-rte": "Acc", "tweet_eval-sentiment": "F1", "discovery": "F1", "glue-rte": "Acc",
    "superglue-wsc": "Acc", "scicite": "F1", "glue-mrpc": "Acc", "tweet_eval-stance_hillary": "F1",
    "tweet_eval-offensive": "F1", "emotion": "F1", "hatexplain": "F1", "glue-cola": "MCC",
    "sick": "F1", "paws": "F1", "ethos-sexual_orientation": "F1", "glue-qqp": "Acc",
    "tweet_eval-emotion": "F1", "sms_spam": "F1", "health_fact": "F1", "glue-mnli": "Acc",
    "imdb": "F1", "ethos-disability": "F1", "glue-wnli": "Acc", "scitail": "F1",
    "trec-finegrained": "F1", "yahoo_answers_topics": "F1", "liar": "F1", "glue-sst2": "Acc",
    "tweet_eval-stance_abortion": "F1", "circa": "F1", "tweet_eval-stance_climate": "F1",
    "glue-qnli": "Acc", "tweet_eval-emoji": "F1", "ethos-directed_vs_generalized": "F1",
    "ade_corpus_v2-classification": "F1", "wiki_auto": "F1", "hate_speech_offensive": "F1",
    "superglue-wic": "Acc", "google_wellformed_query": "Acc", "tweet_eval-irony": "F1",
    "ethos-gender": "F1", "onestop_english": "F1", "trec": "F1", "rotten_tomatoes": "F1",
    "kilt_fever": "Acc"}
# Its "dev" list (10 tasks). CrossFit's run_multitask.py evaluates them with a stub that returns
# 0.0 and run_maml.py leaves them out, so they only matter to a study that validates on them.
DEV_TASKS: dict[str, str] = {
    "tweet_eval-stance_feminist": "F1", "ethos-national_origin": "F1", "tweet_eval-hate": "F1",
    "ag_news": "F1", "amazon_polarity": "F1", "hate_speech18": "F1", "poem_sentiment": "F1",
    "climate_fever": "F1", "medical_questions_pairs": "Acc", "tweet_eval-stance_atheism": "F1"}
UPSTREAM_SEEDS = SEEDS  # CrossFit's upstream loaders read every k-shot file in the task's folder
UPSTREAM_MIXTURE = "crossfit_upstream_classification"

# ---------------------------------------------------------------- data


def answers(text: str) -> list[str]:
  """"a [SEP] b" -> ["a", "b"] (CrossFit's multi-answer outputs)."""
  return [a.strip() for a in text.split(ANSWER_SEPARATOR.strip()) if a.strip()]


def file_path(task: str, k: int, seed: int, split: str) -> epath.Path:
  """The TSV of one Gym file (train / dev / test, or the seqio split train / validation / test
  that reads it); a one-line SpotError naming the dataset dir or the missing file."""
  if split not in _FILES:
    (split,) = _FILE_SPLITS[split]
  path = (local.dataset_dir("crossfit", LAYOUT) / task / f"{task}_{k}_{seed}_{split}.tsv")
  if not path.exists():
    raise SpotError(f"CrossFit task {task!r} (k={k}, seed={seed}): {path} does not exist; "
                    f"expected {LAYOUT}")
  return path


def read_examples(path: epath.Path) -> tuple[list[str], list[str]]:
  """(inputs, outputs) of a Gym TSV, outputs as non-empty golds joined by " [SEP] ". Extra
  tab-separated columns are more gold answers, as CrossFit's loader reads them."""
  inputs, outputs = [], []
  for number, line in enumerate(path.read_text().splitlines(), start=1):
    if not line.strip():
      continue
    fields = line.strip().split("\t")
    golds = [a for field in fields[1:] for a in answers(field)]
    if not golds:
      raise SpotError(f"{path}:{number}: expected input<TAB>output, got {line[:80]!r}")
    inputs.append(fields[0])
    outputs.append(ANSWER_SEPARATOR.join(golds))
  return inputs, outputs


class CrossFitSource(seqio.FunctionDataSource):
  """One (task, k, seed) of the Gym: files are found and read when data is asked for."""

  def __init__(self, task: str, k: int, seed: int):
    super().__init__(self._read, splits=list(_FILE_SPLITS))
    self.task, self.k, self.seed = task, k, seed
    self.local_dataset = f"crossfit/{task}"  # for `spot-jax tasks`: is the data here?

  def _examples(self, split: str) -> tuple[list[str], list[str]]:
    inputs, outputs = [], []
    for file in _FILE_SPLITS[split]:
      more_inputs, more_outputs = read_examples(file_path(self.task, self.k, self.seed, file))
      inputs += more_inputs
      outputs += more_outputs
    return inputs, outputs

  def _read(self, split: str, shuffle_files: bool = False, seed: Optional[int] = None
            ) -> tf.data.Dataset:
    del shuffle_files, seed  # one small file per split
    inputs, outputs = self._examples(split)
    return tf.data.Dataset.from_tensor_slices(
        {"input": tf.constant(inputs, tf.string), "output": tf.constant(outputs, tf.string)})

  def num_input_examples(self, split: str) -> int:
    """Line count, so that examples-proportional mixtures can include the task."""
    return len(self._examples(split)[0])


def to_text(ds: tf.data.Dataset, task: str) -> tf.data.Dataset:
  """{"input", "output"} -> "crossfit {task}: {input}" -> the first gold; "answers" keeps all."""
  def fn(x):
    golds = tf.strings.split(x["output"], ANSWER_SEPARATOR)  # read_examples normalized them
    return {"inputs": tf.strings.join([f"crossfit {task}:", x["input"]], " "),
            "targets": golds[0], "answers": golds}
  return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def postprocess(text: str, example: Optional[dict] = None, is_target: bool = False):
  """Targets: the list of gold answers; decodes: the stripped string (what CrossFit scores)."""
  if is_target and example is not None and "answers" in example:
    return [a.decode() if isinstance(a, bytes) else str(a) for a in example["answers"]]
  return answers(text) if is_target else text.strip()


def task_name(task: str, k: int, seed: int) -> str:
  return re.sub(r"[^0-9a-zA-Z_]", "_", f"crossfit_{task}_{k}_{seed}")


def register_crossfit_task(task: str, k: int, seed: int, metric: str) -> str:
  """Registers crossfit_{task}_{k}_{seed} scored by METRICS[metric]; returns its name."""
  if metric not in METRICS:
    raise SpotError(f"unknown CrossFit metric {metric!r}; choose one of {sorted(METRICS)}")
  name = task_name(task, k, seed)
  catalog.register_task(name, family="crossfit", source=CrossFitSource(task, k, seed),
                        preprocessors=[functools.partial(to_text, task=task)],
                        postprocess_fn=postprocess, metric_fns=[METRICS[metric]])
  return name


TASKS = [register_crossfit_task(t, K, s, m) for t, m in ADL_TARGETS.items() for s in SEEDS]
UPSTREAM = [register_crossfit_task(t, K, s, m) for t, m in UPSTREAM_TASKS.items()
            for s in UPSTREAM_SEEDS]
DEV = [register_crossfit_task(t, K, s, m) for t, m in DEV_TASKS.items() for s in UPSTREAM_SEEDS]


def _names(tasks: Sequence[str], seed: Union[None, int, Sequence[int]]) -> list[str]:
  seeds = UPSTREAM_SEEDS if seed is None else (seed,) if isinstance(seed, int) else tuple(seed)
  unknown = sorted(set(seeds) - set(SEEDS))
  if unknown:
    raise SpotError(f"CrossFit seed(s) {unknown} are not registered; choose from {list(SEEDS)}")
  return [task_name(t, K, s) for t in tasks for s in seeds]


def upstream_task_names(seed: Union[None, int, Sequence[int]] = None) -> list[str]:
  """Registered names of the 45 upstream tasks for `seed` (one seed or several); None: every
  seed, which is what CrossFit's upstream learning reads."""
  return _names(list(UPSTREAM_TASKS), seed)


def dev_task_names(seed: Union[None, int, Sequence[int]] = None) -> list[str]:
  """Registered names of the 10 dev tasks for `seed`, as upstream_task_names."""
  return _names(list(DEV_TASKS), seed)


# Rates are computed when the mixture is first sampled (CrossFitSource counts a task's lines then),
# so registering it reads no file.
catalog.register_mixture(UPSTREAM_MIXTURE, upstream_task_names())
DEV_MIXTURE = "crossfit_dev_classification"  # upstream selection: the dev tasks' dev splits
catalog.register_mixture(DEV_MIXTURE, dev_task_names())

# ---------------------------------------------------------------- sample files for tests

# Label words of the targets as the Gym writes them (plausible, for the sample files); the
# upstream and dev tasks' files say "false" / "true".
_SAMPLE_LABELS: dict[str, Sequence[str]] = {
    "anli": ("entailment", "neutral", "contradiction"),
    "dbpedia_14": ("Company", "Artist", "Village"),
    "emo": ("others", "happy", "sad", "angry"),
    "ethos-race": ("false", "true"),
    "ethos-religion": ("false", "true"),
    "financial_phrasebank": ("negative", "neutral", "positive"),
    "superglue-cb": ("entailment", "contradiction", "neutral"),
    "tab_fact": ("refuted", "entailed"),
    "wiki_qa": ("false", "true"),
    "yelp_polarity": ("negative", "positive"),
    "glue-cola": ("acceptable", "unacceptable"),  # its metric (MCC) looks for "acceptable"
}


def _sample_tsv(task: str) -> str:
  labels = _SAMPLE_LABELS.get(task, ("false", "true"))
  return "".join(f"sample {i} of {task} [SEP] more text\t{labels[i % len(labels)]}\n"
                 for i in range(3))


# Relative path under the local root -> content, for every registered task's files.
SAMPLE_FILES: dict[str, str] = {
    f"crossfit/{task}/{task}_{K}_{seed}_{split}.tsv": _sample_tsv(task)
    for task in [*ADL_TARGETS, *UPSTREAM_TASKS, *DEV_TASKS] for seed in SEEDS for split in _FILES}
