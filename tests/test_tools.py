"""The benchmark scripts keep working: tiny settings, one JSON object per stdout line."""

import json
import pathlib
import subprocess
import sys

import pytest

TOOLS = pathlib.Path(__file__).resolve().parents[1] / "tools"
TINY = ["--configs", "t5_1_1_test", "--batch", "2", "--input_len", "8", "--prompt_len", "4",
        "--target_len", "2", "--min_seconds", "0.05"]


@pytest.mark.parametrize("script,benches", [("bench_model.py", {"forward", "forward_backward"}),
                                            ("bench_train_step.py", {"train_step"})])
def test_benchmark_prints_json_lines(script, benches):
  out = subprocess.run([sys.executable, str(TOOLS / script), *TINY], capture_output=True, text=True,
                       check=True, timeout=300).stdout
  lines = [json.loads(line) for line in out.splitlines()]
  assert lines[0]["bench"] == "matmul_peak" and lines[0]["gflop_per_s"] > 0
  assert {line["bench"] for line in lines[1:]} == benches
  for line in lines[1:]:
    assert line["examples_per_s"] > 0 and line["gflops_per_step"] > 0
    assert 0 < line["peak_fraction"] == pytest.approx(line["gflop_per_s"] / lines[0]["gflop_per_s"],
                                                      rel=1e-9)


def test_bench_multi_prints_one_json_line_per_batch_and_k():
  out = subprocess.run([sys.executable, str(TOOLS / "bench_multi.py"), "--ks", "2", "--batches", "2",
                        "--rounds", "1", "--seconds", "0.05"], capture_output=True, text=True,
                       check=True, timeout=300).stdout
  lines = [json.loads(line) for line in out.splitlines()]
  assert [(line["batch"], line["runs"]) for line in lines] == [(2, 1), (2, 2)]  # K = 1 always
  assert lines[0]["speedup"] == 1.0 and lines[1]["speedup"] > 0
  for line in lines:
    assert line["bench"] == "multi_train_step" and line["model"] == "embedded"
    assert line["examples_per_s"] == pytest.approx(line["runs"] * 2 / line["step_s_p20"], rel=1e-9)


def test_bench_library_prints_json_lines():
  out = subprocess.run([sys.executable, str(TOOLS / "bench_library.py"), "--entries", "1000",
                        "--embed", "16", "--prompt-length", "4", "--precompute-entries", "8",
                        "--library-entries", "30", "--repeats", "2"], capture_output=True,
                       text=True, check=True, timeout=120).stdout
  lines = [json.loads(line) for line in out.splitlines()]
  assert [(line["bench"], line.get("metric"), line.get("run")) for line in lines] == [
      ("rank", None, None), ("precompute", "avg_cosine", None),
      ("precompute", "token_cosine", None)] + [
      ("retrieve_from_disk", metric, run) for metric in ("avg_cosine", "token_cosine")
      for run in ("seed0", None)]
  assert lines[0]["entries"] == 1000 and lines[0]["embed"] == 16 and lines[0]["k"] == 10
  assert all(line["tasks"] == 10 and line["entries"] == 30 for line in lines[3:])
  for line in lines:
    assert line["seconds"] > 0
    assert line["entries_per_s"] == pytest.approx(line["entries"] / line["seconds"], rel=1e-9)


def test_probe_embedded_prints_accuracies_and_chance():
  out = subprocess.run([sys.executable, str(TOOLS / "probe_embedded.py"), "--n", "8"],
                       capture_output=True, text=True, check=True, timeout=300).stdout
  lines = [json.loads(line) for line in out.splitlines()]
  assert [line["probe"] for line in lines] == ["sentiment", "recall"]
  for line in lines:
    assert 0 <= line["accuracy"] <= 1 and 0 < line["chance"] < 1


@pytest.mark.parametrize("flags, error", [
    (["--drill-families", "qa", "poetry"], "unknown drill families ['poetry']"),
    (["--drill-weight", "poetry=2"], "unknown drill families ['poetry']"),
    (["--drill-weight", "nli=0.5"], "--drill-weight wants FAMILY=W"),
    (["--drill-tasks", "synthetic_nli_cb_v2"], "drill tasks ['synthetic_nli_cb_v2'] are not source tasks")])
def test_pretrain_embedded_rejects_bad_drill_flags(tmp_path, flags, error):
  run = subprocess.run([sys.executable, str(TOOLS / "pretrain_embedded.py"), "--out", str(tmp_path),
                        "--drills", "0.5", *flags],
                       capture_output=True, text=True, timeout=300, cwd=TOOLS.parent)
  assert run.returncode != 0 and error in run.stderr
  assert not list(tmp_path.iterdir())  # nothing written


def test_pretrain_embedded_continues_the_shipped_model_with_drills(tmp_path):
  out = subprocess.run(
      [sys.executable, str(TOOLS / "pretrain_embedded.py"), "--init", "spot_jax/embedded",
       "--out", str(tmp_path), "--steps", "2", "--docs", "40", "--drills", "0.5",
       "--drills-per-task", "4", "--drill-families", "qa", "nli", "--drill-weight", "nli=2",
       "--drill-tasks", "synthetic_qa_where_v2", "synthetic_nli_location_v2", "synthetic_nli_mixed_v2",
       "synthetic_sent_opinion_v2", "--log-every", "1",
       "--workers", "1"],
      capture_output=True, text=True, check=True, timeout=300,
      cwd=TOOLS.parent).stdout
  # 4 of qa_where, 8 each of the two NLI tasks; sent_opinion is not of the chosen families
  assert "pretrain: 20 drills" in out
  records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
  assert [r["step"] for r in records] == [1, 2]
  assert set(records[-1]["drill_accuracy"]) == {"sentiment", "nli", "paraphrase", "qa",
                                                "multiple_choice", "acceptability", "word_sense"}
  assert list(records[-1]["drilled_task_accuracy"]) == [
      "synthetic_qa_where_v2", "synthetic_nli_location_v2", "synthetic_nli_mixed_v2"]
  summary = json.loads((tmp_path / "pretrain.json").read_text())
  assert summary["args"]["drills"] == 0.5 and summary["total_steps"] > 2
  assert (tmp_path / "model" / "model.safetensors").stat().st_size > 0


@pytest.mark.slow
def test_bench_packing_prints_json_lines():
  out = subprocess.run([sys.executable, str(TOOLS / "bench_packing.py"), "--part", "a", "--config",
                        "t5_1_1_test", "--rows", "2", "--examples", "40", "--glue_targets", "4",
                        "--min_seconds", "0.05", "--rounds", "1"], capture_output=True, text=True,
                       check=True, timeout=300).stdout
  (line,) = [json.loads(line) for line in out.splitlines()]
  assert line["case"] == "glue_like" and line["packed_lengths"] == {"inputs": 612, "targets": 24}
  assert line["padded"]["examples_per_row"] == 1.0 and line["packed"]["examples_per_row"] > 2
  for mode in ("padded", "packed"):
    assert line[mode]["examples_per_s"] > 0 and line[mode]["gflops_per_step"] > 0
  assert line["flop_speedup"] == pytest.approx(
      line["packed"]["examples_per_row"] * line["padded"]["gflops_per_step"]
      / line["packed"]["gflops_per_step"], rel=1e-9)


@pytest.mark.slow
def test_soak_preempt_one_trial_matches_the_uninterrupted_run(tmp_path):
  run = subprocess.run([sys.executable, str(TOOLS / "soak_preempt.py"), "--trials", "1", "--quick",
                        "--seed", "1", "--work", str(tmp_path / "work"), "--json",
                        str(tmp_path / "soak.json")],
                       capture_output=True, text=True, timeout=900, cwd=TOOLS.parent)
  assert run.returncode == 0, run.stderr[-3000:]
  summary = json.loads((tmp_path / "soak.json").read_text())
  assert summary["trials"] == summary["passed"] == summary["prompts_identical"] == 1
  assert summary["metrics_ok"] == "1/1"  # trial 1 is a train run
  assert summary["unreadable_checkpoints"] == summary["unreadable_libraries"] == 0
  assert summary["orbax_tmp_left"] == 0 and 1 <= summary["kills"] <= 3
  (trial,) = summary["results"]
  assert trial["workload"] == "train" and trial["rc"] == 0 and not trial["problems"]
  assert summary["reference_s"]["train"]["seconds"] > 0 and summary["wall_s"] > 0
