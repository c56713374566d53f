"""Writes tests/tasks/t5_reference.json: what Google's t5 package (the reference for T5's
text-to-text formats) makes of raw GLUE / SuperGLUE examples, for tests/tasks/test_t5_reference.py.

For every task of tasks/glue.py it builds raw examples in the TFDS config's feature structure
(hand-written ones with the cases that matter: MultiRC's HTML, ReCoRD's @highlight bullets, WSC
spans, unlabelled rows; and seeded random ones), runs them through the preprocessors that t5's own
task registry gives the task (t5/data/tasks.py: glue_{name}_v002, super_glue_{name}_v102; wsc.fixed,
which t5 registers only in its "simple" form, through glue_utils.get_glue_text_preprocessor), and
scores seeded predictions, invalid ones included ("", "maybe", " True"), with the task's t5
postprocess_fn and metric_fns. The JSON keeps the raw examples, t5's inputs and targets, the
predictions and t5's metric values; the test runs our tasks on the same raw examples and
predictions and compares.

t5 is no dependency of spot-jax (t5==0.9.4 pins tfds-nightly and seqio-nightly, which would install
into the same import folders as tensorflow-datasets and seqio), so run this in a venv that has
spot-jax's stack plus t5 without its dependencies, e.g.:

  python3.11 -m venv /tmp/t5ref && echo "$PWD/.venv/lib/python3.11/site-packages" \
      > /tmp/t5ref/lib/python3.11/site-packages/stack.pth
  /tmp/t5ref/bin/pip install --no-deps t5==0.9.4 babel
  /tmp/t5ref/bin/python tools/t5_golden.py           # rewrite the golden file
  /tmp/t5ref/bin/python tools/t5_golden.py --check   # exit 1 if it would change

(t5 also needs editdistance, nltk, immutabledict, rouge-score, sacrebleu, scikit-learn, which the
test extra's stack already has; pip install them the same way if not.)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import pathlib
import sys
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "tasks"))
import t5_reference_data as data  # noqa: E402

RANDOM_EXAMPLES = 16
RANDOM_PREDICTION_SETS = 3

# Words for random text: RE2 and HTML metacharacters, quotes, non-ASCII, MultiRC / ReCoRD markup.
WORDS = ["the", "a", "cat", "sat", "on", "mat", "He", "it", "Mr.", "Smith's", "café", "naïve",
         "—", '"quoted"', "it's", "(aside)", "[1]", "$5", "a+b", "50%", "C++", "x^2", "a|b",
         "{x}", "<br>", "<b>bold</b>", "</b>", "?", "!", "東京", "🙂", "1.5", "-3", "@highlight",
         "@placeholder", "x\\y", "True", "entailment"]
# WSC's span texts are RE2 patterns in t5 (and here, to match it): no word that makes a bad one.
WSC_WORDS = [w for w in WORDS if not any(c in w for c in "+?*\\")]


# ---------------------------------------------------------------- raw examples


def _sentence(rng: np.random.Generator, low: int = 3, high: int = 12, vocabulary=WORDS) -> str:
  words = rng.choice(vocabulary, size=rng.integers(low, high))
  separators = rng.choice([" ", " ", " ", " ", " ", " ", "  ", "\n"], size=len(words))
  return "".join(w + s for w, s in zip(words, separators)).rstrip(" ")


def _random_example(name: str, features, rng: np.random.Generator, idx: int) -> dict[str, Any]:
  """One example of `features` (a TFDS FeaturesDict), by feature type; idx counts up."""
  import tensorflow_datasets as tfds
  vocabulary = WSC_WORDS if name.endswith("wsc_fixed_v102") else WORDS
  example: dict[str, Any] = {}
  for key, feature in features.items():
    if key == "idx":
      example[key] = ({k: idx + i for i, k in enumerate(feature.keys())}
                      if isinstance(feature, tfds.features.FeaturesDict) else idx)
    elif isinstance(feature, tfds.features.ClassLabel):
      example[key] = -1 if rng.random() < 0.1 else int(rng.integers(0, feature.num_classes))
    elif isinstance(feature, tfds.features.Text):
      example[key] = "" if rng.random() < 0.05 else _sentence(rng, vocabulary=vocabulary)
    elif isinstance(feature, tfds.features.Sequence):
      example[key] = [_sentence(rng, 1, 3) for _ in range(rng.integers(0, 4))]
    elif key == "label":  # STS-B's float score: ties of the 0.2 rounding, and -1 (test split)
      example[key] = float(rng.choice([-1.0, 0.1, 0.3, 0.5, 2.5, 2.7, 4.9, 5.0,
                                       round(rng.uniform(0, 5), 3)]))
    else:  # span / word indices
      example[key] = int(rng.integers(0, 12))
  if name.endswith("multirc_v102"):  # three answers per question, two questions per paragraph
    example["idx"] = {"paragraph": idx // 6, "question": idx // 3, "answer": idx}
  if name.endswith("record_v102"):  # two queries per passage; answers are entities
    example["idx"] = {"passage": idx // 2, "query": idx}
    example["answers"] = [e for e in example["entities"] if rng.random() < 0.6]
  if name.endswith("wsc_fixed_v102"):  # spans usually taken from the text, at their index
    words = example["text"].split(" ")
    for span in ("span1", "span2"):
      if rng.random() < 0.8:
        i = int(rng.integers(0, len(words)))
        example[f"{span}_index"], example[f"{span}_text"] = i, " ".join(words[i:i + 1 + (
            rng.random() < 0.3)])
  return example


def _handwritten() -> dict[str, list[dict[str, Any]]]:
  """The formats' interesting cases, per task (idx from 1000 up, apart from the random ones)."""
  wsc = [
      ("Mark told Pete many lies about himself, which Pete included in his book. He should have "
       "been more truthful.", 0, "Mark", 13, "He", 1),
      ("The trophy doesn't fit into the brown suitcase because it is too large.", 1, "trophy", 9,
       "it", 1),
      ("The man couldn't lift his son because he was so weak.", 0, "The man", 7, "he", 1),
      ("Bob paid for Charlie's college education. He is very generous.", 6, "He", 0, "Bob", 1),
      ("Mr. Moncrieff visited Chester's luxurious New York apartment, thinking that it belonged "
       "to his son Edward.", 0, "Mr. Moncrieff", 10, "it", 0),
      ("Mrs Moncrieff smiled.", 0, "Mr. Moncrieff", 2, "smiled.", 0),
      ("Sam tried to paint a picture of shepherds with sheep, but they ended up looking more "
       "like golfers.", 7, "shepherds", 10, "they", -1),
      ("The span is not where its index says.", 3, "index", 0, "span", 1),
      ("Tabs\tand  double spaces count words differently here.", 4, "spaces", 5, "count", 0),
  ]
  record_passage = ("The cat sat on the mat in Paris.\n@highlight\nCats like mats\n@highlight\n"
                    "Dogs don't!\n@highlight\nThe \"Mat\" said: 'fine'\n@highlight\nWhy?\n"
                    "@highlight\nParis")
  multirc_paragraph = ("<b>Sent 1: </b>The cat sat on the mat.<br><b>Sent 2: </b>It was "
                       "happy.<br><b>Sent 3: </b>Then <b>it</b> left.<br>")
  return {
      "super_glue_boolq_v102": [
          {"question": "is france the same timezone as the uk", "passage": "At the Liberation "
           "of France in the summer of 1944, Metropolitan France kept GMT+2.", "label": 0,
           "idx": 1000},
          {"question": "does ethanol take more energy make that produces", "passage": "All "
           "biomass goes through at least some of these steps.", "label": 1, "idx": 1001},
          {"question": "is it unlabelled", "passage": "Test split.", "label": -1, "idx": 1002},
      ],
      "super_glue_wsc_fixed_v102": [
          {"text": t, "span1_index": i1, "span1_text": s1, "span2_index": i2, "span2_text": s2,
           "label": label, "idx": 1000 + n}
          for n, (t, i1, s1, i2, s2, label) in enumerate(wsc)],
      "super_glue_record_v102": [
          {"passage": record_passage, "query": "The @placeholder sat on the mat.",
           "entities": ["cat", "mat", "Paris"], "answers": answers,
           "idx": {"passage": 1000, "query": 1000 + n}}
          for n, answers in enumerate([["cat"], ["cat", "Cat", "cat"], [], ["Paris", "mat"]])],
      "super_glue_multirc_v102": [
          {"paragraph": multirc_paragraph, "question": "Who <b>sat</b>?", "answer": answer,
           "label": label, "idx": {"paragraph": 1000, "question": 1000 + q, "answer": 1000 + a}}
          for a, (q, answer, label) in enumerate([(0, "The cat", 1), (0, "A dog<br>", 0),
                                                  (0, "the <b>cat</b>", 1), (1, "Happy", 1),
                                                  (1, "Sad", 0), (2, "Gone", -1)])],
      "glue_stsb_v2": [
          {"sentence1": "A man is playing a flute.", "sentence2": "A man plays a flute.",
           "label": score, "idx": 1000 + n}
          for n, score in enumerate([3.8, 0.1, 0.3, 0.5, 0.7, 2.5, 4.9, 5.0, -1.0, 1.2345])],
      "super_glue_copa_v102": [
          {"premise": "My body cast a shadow over the grass.", "choice1": "The sun was rising.",
           "choice2": "The grass was cut.", "question": "cause", "label": 0, "idx": 1000},
          {"premise": "The item was fragile.", "choice1": "It broke.", "choice2": "It grew.",
           "question": "effect", "label": 1, "idx": 1001},
      ],
      "super_glue_axb_v102": [
          {"sentence1": "The cat sat.", "sentence2": "A cat sat.", "label": -1, "idx": 1000}],
  }


def raw_examples(name: str, tfds_name: str) -> list[dict[str, Any]]:
  features = data.features(tfds_name)
  rng = np.random.default_rng(sorted(data.TASKS).index(name))
  return _handwritten().get(name, []) + [_random_example(name, features, rng, i)
                                         for i in range(RANDOM_EXAMPLES)]


# ---------------------------------------------------------------- t5's task definitions


def t5_reference(name: str, tfds_name: str) -> tuple[list[Callable], Callable, list[Callable]]:
  """(text preprocessors, postprocess_fn, metric_fns) of the task as t5 registers it."""
  import seqio
  import t5.data.tasks  # noqa: F401  registers t5's tasks
  from t5.data import glue_utils
  from t5.evaluation import metrics as t5_metrics
  benchmark, config = tfds_name.split(":")[0].split("/")
  if config == "wsc.fixed":  # t5 registers wsc only as wsc_simple: its glue form, by hand
    import tensorflow_datasets as tfds
    builder_config = tfds.builder(tfds_name).builder_config
    return ([glue_utils.get_glue_text_preprocessor(builder_config)],
            glue_utils.get_glue_postprocess_fn(builder_config), [t5_metrics.accuracy])
  t5_name = f"glue_{config}_v002" if benchmark == "glue" else name
  task = seqio.get_mixture_or_task(t5_name)
  text = []
  for preprocessor in task.preprocessors:
    if getattr(preprocessor, "__name__", "") == "tokenize":
      break
    text.append(preprocessor)
  return text, task.postprocess_fn, list(task.metric_fns)


# ---------------------------------------------------------------- predictions


def _invalid(rng: np.random.Generator, word: str) -> str:
  return str(rng.choice(["", "maybe", "<unk>", " " + word, word + " ", word.lower(), word.upper(),
                         word + "."]))


def predictions(kind: str, targets: list[str], labels: list[str], seed: int) -> list[str]:
  """Per row: the target, another label / score / word, or an invalid decode."""
  rng = np.random.default_rng(seed)
  out = []
  for target in targets:
    u = rng.random()
    if kind == "stsb":
      out.append(target if u < 0.4 else f"{rng.uniform(0, 5):.1f}" if u < 0.8 else
                 str(rng.choice(["", "abc", "3,4", " 2.0", "5.", "1e0"])))
    elif kind == "record":
      out.append(target if u < 0.3 else str(rng.choice([target.lower(), f"the {target}.",
                                                        f"{target} and mat", "Cat"])) if u < 0.5
                 else str(rng.choice(WORDS)) if u < 0.85 else "")
    else:
      out.append(target if u < 0.5 else str(rng.choice(labels)) if u < 0.8
                 else _invalid(rng, str(rng.choice(labels))))
  return out


def _kind(name: str) -> str:
  return "stsb" if "stsb" in name else "record" if "record" in name else "class"


def _jsonable(value: Any) -> Any:
  if isinstance(value, bytes):
    return value.decode()
  if isinstance(value, np.ndarray):
    return [_jsonable(v) for v in value.tolist()]
  if isinstance(value, (np.integer, np.floating)):
    return value.item()
  if isinstance(value, dict):
    return {k: _jsonable(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_jsonable(v) for v in value]
  return value


def golden_task(name: str, tfds_name: str) -> dict[str, Any]:
  raw = raw_examples(name, tfds_name)
  text, postprocess, metric_fns = t5_reference(name, tfds_name)
  ds = data.dataset(tfds_name, raw)
  for preprocessor in text:
    ds = preprocessor(ds)
  examples = list(ds.as_numpy_iterator())
  inputs = [ex["inputs"].decode() for ex in examples]
  targets = [ex["targets"].decode() for ex in examples]
  # Metrics on the labelled rows, as eval sees them (t5's squad fails on a row without answers).
  rows = [i for i, t in enumerate(targets) if t != "<unk>"]
  scored = [targets[i] for i in rows]
  features = data.features(tfds_name)
  labels = list(getattr(features["label"], "names", [])) if "label" in features.keys() else []
  sets = {f"random{s}": predictions(_kind(name), scored, labels, 100 * sorted(data.TASKS).index(name) + s)
          for s in range(RANDOM_PREDICTION_SETS)}
  sets["all_correct"] = list(scored)
  sets["all_empty"] = [""] * len(scored)
  if _kind(name) == "stsb":  # where we differ on purpose (with all_empty): t5 gives nan
    sets["constant"] = ["3.0"] * len(scored)
    sets["nan_decode"] = ["nan"] + scored[1:]
  metric_sets = []
  if metric_fns:
    target_values = [postprocess(scored[j], example=examples[i], is_target=True)
                     for j, i in enumerate(rows)]
    for set_name, decodes in sets.items():
      values: dict[str, float] = {}
      predicted = [postprocess(d, example=examples[i], is_target=False)
                   for d, i in zip(decodes, rows)]
      for fn in metric_fns:
        values.update({k: float(v) for k, v in fn(target_values, predicted).items()})
      metric_sets.append({"name": set_name, "predictions": decodes, "values": values})
  return {"tfds": tfds_name, "raw": _jsonable(raw), "inputs": inputs, "targets": targets,
          "scored_rows": rows, "metrics": metric_sets,
          "t5_metric_fns": [getattr(fn, "__name__", repr(fn)) for fn in metric_fns]}


def golden() -> dict[str, Any]:
  versions = {p: importlib.metadata.version(p) for p in
              ("t5", "seqio", "tensorflow", "tensorflow-datasets", "scikit-learn", "scipy",
               "numpy")}
  return {"generated_by": "tools/t5_golden.py", "versions": versions,
          "tasks": {name: golden_task(name, tfds_name) for name, tfds_name in data.TASKS.items()}}


def _dump(value: dict) -> str:
  return json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def _same(a: Any, b: Any) -> bool:
  """Equal, nan equal to nan, floats to 1e-12 relative (platform BLAS may differ)."""
  if isinstance(a, float) and isinstance(b, float):
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
  if isinstance(a, dict) and isinstance(b, dict):
    return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
  if isinstance(a, list) and isinstance(b, list):
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
  return a == b


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--check", action="store_true",
                      help="compare with the golden file instead of writing it; exit 1 if it differs")
  args = parser.parse_args(argv)
  fresh = golden()
  if args.check:
    stored = data.load_golden()
    differing = [n for n in fresh["tasks"] if not _same(fresh["tasks"][n], stored["tasks"].get(n))]
    print(json.dumps({"differing_tasks": differing, "versions": fresh["versions"]}))
    return 1 if differing else 0
  data.GOLDEN.write_text(_dump(fresh))
  print(json.dumps({"wrote": str(data.GOLDEN), "tasks": len(fresh["tasks"]),
                    "versions": fresh["versions"]}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
