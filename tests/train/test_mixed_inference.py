"""Mixed-task inference (`spot-jax infer --tasks`): a mixed batch decodes every example exactly as
its task decoded alone with its prompt; which prompt a task gets; the CLI end to end on the shipped
model and library; the errors a user can cause."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

import tasks  # noqa: F401  registers the synthetic tasks
from spot_jax import cli, embedded
from spot_jax.checkpoints import load_checkpoint
from spot_jax.embedded.released import PATH as RELEASED, released_library
from spot_jax.embedded.seqio_tasks import vocabulary
from spot_jax.library import retrieval
from spot_jax.library.store import LibraryError, ModelIdentity, PromptLibrary
from spot_jax.model import decoding
from spot_jax.peft import load_prompt_file
from spot_jax.train import mixed_inference as mixed

OPINION, NLI, QA = "synthetic_sent_opinion_v2", "synthetic_nli_mixed_v2", "synthetic_qa_where_v2"
TARGET = "synthetic_sent_mood_v2"  # an embedded target: no entry in the released library
TASKS = (OPINION, NLI, QA)
N, BATCH = 5, 4  # 5 examples of 3 tasks: 15 examples in 4 batches, the last one padded


@pytest.fixture(scope="module")
def model():
  config, frozen = load_checkpoint(embedded.model_dir())
  return config.replace(dropout_rate=0.0), frozen


@pytest.fixture(scope="module")
def mixed_batch():
  """(interleaved examples, inputs [15, T], prompt ids [15], prompts [3, P, E]) of TASKS."""
  choices = mixed.choose_prompts(released_library(), TASKS)
  examples = mixed.interleave([mixed.read_examples(t, "validation", N) for t in TASKS])
  inputs = mixed.pad_tokens([ex.inputs for ex in examples], max(len(ex.inputs) for ex in examples))
  prompt_ids = np.array([TASKS.index(ex.task) for ex in examples])
  return examples, inputs, prompt_ids, np.stack([choices[t].prompt for t in TASKS])


def test_batches_are_mixed_and_each_example_decodes_as_its_task_alone(model, mixed_batch):
  config, frozen = model
  examples, inputs, prompt_ids, prompts = mixed_batch
  assert len(examples) == 3 * N
  for start in range(0, len(examples), BATCH):
    assert len({ex.task for ex in examples[start:start + BATCH]}) >= 2, "a batch of one task"
  tokens = mixed.decode_mixed(frozen, config, inputs, prompt_ids, prompts, batch_size=BATCH,
                              max_decode_len=8)
  for k, task in enumerate(TASKS):
    rows = np.flatnonzero(prompt_ids == k)
    alone = np.asarray(decoding.greedy_decode(frozen, inputs[rows], config=config,
                                              max_decode_len=8, peft={"prompt": prompts[k]}))
    np.testing.assert_array_equal(tokens[rows], alone)
    # The prompt matters: another task's prompt decodes these examples differently.
    other = np.asarray(decoding.greedy_decode(frozen, inputs[rows], config=config,
                                              max_decode_len=8,
                                              peft={"prompt": prompts[(k + 1) % 3]}))
    assert not np.array_equal(alone, other)
  # The released source prompts score 99+ on their tasks: the decoded text is mostly the target.
  right = [vocabulary().decode(row.tolist()) == ex.text("targets")
           for ex, row in zip(examples, tokens)]
  assert np.mean(right) >= 0.8


def test_beam_search_and_rank_classification_take_per_example_prompts(model, mixed_batch):
  config, frozen = model
  examples, inputs, prompt_ids, prompts = mixed_batch
  rows = np.arange(6)  # two examples of each task, interleaved
  per_example = jnp.asarray(prompts[prompt_ids[rows]])  # [B, P, E]
  beams = decoding.beam_search(frozen, inputs[rows], config=config, beam_size=3,
                               max_decode_len=6, peft={"prompt": per_example})
  candidates = np.array([[7, 1, 0], [9, 10, 1], [12, 1, 0]], np.int32)
  ranked = np.asarray(decoding.rank_classification(frozen, inputs[rows], candidates, config=config,
                                                   peft={"prompt": per_example}))
  for k in range(3):
    sub = rows[prompt_ids[rows] == k]
    alone = decoding.beam_search(frozen, inputs[sub], config=config, beam_size=3,
                                 max_decode_len=6, peft={"prompt": prompts[k]})
    np.testing.assert_array_equal(np.asarray(beams.sequences)[sub], np.asarray(alone.sequences))
    np.testing.assert_allclose(np.asarray(beams.scores)[sub], np.asarray(alone.scores),
                               rtol=1e-5, atol=1e-5)
    ranked_alone = decoding.rank_classification(frozen, inputs[sub], candidates, config=config,
                                                peft={"prompt": prompts[k]})
    np.testing.assert_allclose(ranked[sub], np.asarray(ranked_alone), rtol=1e-5, atol=1e-5)


P, E = 3, 4
IDENTITY = ModelIdentity(model="m", frozen_checksum="sha256:c", vocabulary="v", prompt_length=P,
                         embed_dim=E)


def _prompt(seed: int) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=(P, E)).astype(np.float32)


def test_own_prompt_is_the_best_scored_run_unless_a_run_is_named(tmp_path):
  library = PromptLibrary(tmp_path / "lib")
  library.add("a", "low", identity=IDENTITY, source_prompt=_prompt(0), metadata={"score": 50.0})
  library.add("a", "high", identity=IDENTITY, source_prompt=_prompt(1), metadata={"score": 90.0})
  library.add("a", "unscored", identity=IDENTITY, source_prompt=_prompt(2))
  best = mixed.choose_prompts(library, ["a"])["a"]
  assert (best.source, best.run, best.via, best.similarity) == ("a", "high", "own", None)
  np.testing.assert_array_equal(best.prompt, _prompt(1))
  named = mixed.choose_prompts(library, ["a"], runs={"a": "low"})["a"]
  assert named.run == "low"
  np.testing.assert_array_equal(named.prompt, _prompt(0))
  with pytest.raises(LibraryError, match="no run 'nope'"):
    mixed.choose_prompts(library, ["a"], runs={"a": "nope"})


def test_retrieval_serves_a_task_without_a_source_prompt(tmp_path):
  library = PromptLibrary(tmp_path / "lib")
  near, far = _prompt(10), _prompt(11)
  library.add("near", "seed0", identity=IDENTITY, source_prompt=_prompt(0), task_embedding=near)
  library.add("far", "seed0", identity=IDENTITY, source_prompt=_prompt(1), task_embedding=far)
  library.add("odd", "seed0", identity=IDENTITY, source_prompt=_prompt(2), task_embedding=-near)
  # "target" holds a task embedding only: retrieval ranks the others by it, itself excluded.
  library.add("target", "seed0", identity=IDENTITY, task_embedding=near + 0.01)
  choice = mixed.choose_prompts(library, ["target"])["target"]
  assert (choice.source, choice.run, choice.via) == ("near", "seed0", "retrieval")
  np.testing.assert_array_equal(choice.prompt, _prompt(0))
  # A given embedding forces retrieval, even for a task with its own prompt (never itself).
  given = mixed.choose_prompts(library, ["near", "far"], embeddings={"near": far},
                               embedding_run="seed0")
  assert given["near"].via == "retrieval" and given["near"].source == "far"
  assert given["far"].via == "own"
  with pytest.raises(mixed.InferError, match="both --run"):
    mixed.choose_prompts(library, ["near"], runs={"near": "seed0"}, embeddings={"near": far})


def _run(capsys, *args) -> tuple[int, str, str]:
  code = cli.main(["infer", *args])
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def test_cli_mixed_inference_on_the_shipped_model_and_library(tmp_path, capsys):
  out = tmp_path / "out" / "predictions.jsonl"
  query = RELEASED / "entries" / QA / "seed0" / "task_embedding.npy"  # retrieves QA for TARGET
  code, stdout, stderr = _run(capsys, "--tasks", OPINION, NLI, TARGET, "--num_examples", "3",
                              "--batch_size", "3", "--embedding", f"{TARGET}={query}",
                              "--embedding_run", "seed0", "--out", str(out))
  assert code == 0, stderr
  assert "9/9 examples of 3 tasks (batch 3/3)" in stderr  # the progress line
  records = [json.loads(line) for line in out.read_text().splitlines()]
  assert [r["task"] for r in records[:3]] == [OPINION, NLI, TARGET]
  assert [r["index"] for r in records] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
  assert [r["batch"] for r in records] == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # each batch: 3 tasks
  assert {r["prompt"] for r in records if r["task"] == TARGET} == {f"{QA}/seed0"}
  assert {r["prompt"] for r in records if r["task"] == OPINION} == {f"{OPINION}/seed0"}
  assert all(r["inputs"] and r["target"] for r in records)
  metrics = json.loads(mixed.metrics_path(out).read_text())
  assert metrics["num_examples"] == 9 and list(metrics["tasks"]) == [OPINION, NLI, TARGET]
  for task, record in metrics["tasks"].items():
    mine = [r for r in records if r["task"] == task]
    expected = 100.0 * np.mean([r["prediction"] == r["target"] for r in mine])
    assert record["metrics"]["accuracy"] == pytest.approx(expected, rel=1e-6, abs=1e-6)
  target = metrics["tasks"][TARGET]["prompt"]
  assert (target["via"], target["source"]) == ("retrieval", QA)
  ranking = retrieval.rank_sources(released_library(), {"seed0": load_prompt_file(query)})
  assert ranking[0][0] == QA
  assert target["similarity"] == pytest.approx(ranking[0][1], rel=1e-6, abs=1e-6)
  assert metrics["tasks"][OPINION]["metrics"]["accuracy"] == pytest.approx(100.0, abs=1e-6)
  assert f"prompt {QA}/seed0 (retrieved" in stdout and "wrote 9 predictions" in stdout


def _fails(capsys, tmp_path, needle: str, *args) -> None:
  out = tmp_path / "out" / "p.jsonl"
  code, _, stderr = _run(capsys, *args, "--out", str(out))
  assert code == 2
  lines = stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("spot-jax infer: error: ") and needle in lines[0]
  assert not (tmp_path / "out").exists(), "nothing may be written"


def test_cli_errors_are_one_line_exit_2_and_write_nothing(tmp_path, capsys):
  _fails(capsys, tmp_path, "no seqio task or mixture named 'no_such_task'",
         "--tasks", OPINION, "no_such_task")
  _fails(capsys, tmp_path, f"--embedding {TARGET}=EMB.npy", "--tasks", OPINION, TARGET)
  _fails(capsys, tmp_path, "is empty; add source prompts", "--tasks", OPINION,
         "--library", str(tmp_path / "empty"))
  _fails(capsys, tmp_path, "--run takes TASK=RUN", "--tasks", OPINION, "--run", "seed0")
  _fails(capsys, tmp_path, "no run 'seed9'", "--tasks", OPINION, "--run", f"{OPINION}=seed9")
  _fails(capsys, tmp_path, "takes plain flags", "--tasks", OPINION, "--gin.X=1")
  _fails(capsys, tmp_path, "has no split 'nope'", "--tasks", OPINION, "--split", "nope",
         "--num_examples", "1")
  # A library of another model: prompts of another width, or another model's parameters.
  identity = released_library().identity
  narrow = PromptLibrary(tmp_path / "narrow")
  narrow.add(OPINION, "seed0", source_prompt=np.zeros((20, 64), np.float32),
             identity=ModelIdentity(**{**identity.to_dict(), "embed_dim": 64}))
  _fails(capsys, tmp_path, "are 64 wide but model t5_1_1_embedded embeds 128", "--tasks", OPINION,
         "--library", str(narrow.path), "--num_examples", "1")
  other = PromptLibrary(tmp_path / "other")
  other.add(OPINION, "seed0", source_prompt=np.zeros((20, 128), np.float32),
            identity=ModelIdentity(**{**identity.to_dict(), "frozen_checksum": "sha256:0"}))
  _fails(capsys, tmp_path, "--no_model_check", "--tasks", OPINION, "--library", str(other.path),
         "--num_examples", "1")
  missing = tmp_path / "out" / "p.jsonl"
  code, _, stderr = _run(capsys, "--tasks", OPINION)
  assert code == 2 and "needs --out" in stderr and not missing.parent.exists()
