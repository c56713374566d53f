"""`spot-jax retrieve`, `study crossfit`'s options, and one-line errors of `demo` / `study` / `embed`
on bad input."""

from __future__ import annotations

import numpy as np

from spot_jax import cli
from spot_jax.library.store import ModelIdentity, PromptLibrary


def test_retrieve_prints_the_ranking(tmp_path, capsys):
  identity = ModelIdentity("m", "sha256:0", "v", 4, 8)
  library = PromptLibrary(tmp_path / "lib")
  rng = np.random.default_rng(0)
  embeddings = {task: rng.normal(size=(4, 8)) for task in ("a_task", "b_task", "c_task")}
  for task, emb in embeddings.items():
    library.add(task, "seed0", identity=identity, task_embedding=emb, source_prompt=emb)
  np.save(tmp_path / "q.npy", embeddings["b_task"] + 0.01 * rng.normal(size=(4, 8)))
  assert cli.main(["retrieve", str(tmp_path / "lib"), str(tmp_path / "q.npy"), "-k", "2"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == 2 and lines[0].split()[1] == "b_task"
  assert cli.main(["retrieve", str(tmp_path / "lib"), str(tmp_path / "q.npy"), "--no_center"]) == 0
  assert capsys.readouterr().out.splitlines()[0].split()[1] == "b_task"


def test_unknown_tasks_fail_with_one_line(tmp_path, capsys):
  for argv in (["demo", "--out", str(tmp_path / "d"), "--target", "glue_rte_v2"],
               ["study", "transfer", "--out", str(tmp_path / "s"), "--targets", "nope"],
               ["embed", "nope", str(tmp_path / "e.npy")]):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown embedded task" in err[0], err
    assert "known (universe v2): synthetic_sent_opinion_v2, " in err[0], err
  assert not (tmp_path / "d").exists() and not (tmp_path / "s").exists()


def test_study_transfer_passes_its_options(tmp_path, monkeypatch):
  from spot_jax.embedded import demo
  got = {}
  monkeypatch.setattr(demo, "study", lambda out, **kw: got.update(out=out, **kw))
  assert cli.main(["study", "transfer", "--out", str(tmp_path), "--targets", "synthetic_nli_cb_v2",
                   "--embedding_seeds", "0", "2", "--reverse", "--steps", "40"]) == 0
  assert got["out"] == str(tmp_path) and got["targets"] == ["synthetic_nli_cb_v2"]
  assert got["embedding_seeds"] == [0, 2] and got["reverse"] is True
  assert got["protocol"].steps == 40 and got["protocol"].eval_every == 20


def test_study_transfer_takes_names_without_their_version(tmp_path, monkeypatch):
  """Names typed without the universe version mean this universe's tasks; results carry the
  registered (versioned) names."""
  from spot_jax.embedded import demo
  got = {}
  monkeypatch.setattr(demo, "embedded_tuner", lambda protocol: protocol)
  monkeypatch.setattr(demo, "run_study", lambda tuner, spec, out, **kw: got.update(spec=spec))
  assert cli.main(["study", "transfer", "--out", str(tmp_path), "--sources", "synthetic_sent_opinion",
                   "synthetic_nli_mixed_v2", "--targets", "synthetic_sent_mood"]) == 0
  assert got["spec"].sources == ("synthetic_sent_opinion_v2", "synthetic_nli_mixed_v2")
  assert got["spec"].targets == ("synthetic_sent_mood_v2",)


def test_study_crossfit_refuses_bad_arguments_with_one_line(tmp_path, capsys):
  cases = [(["--targets", "nope"], "unknown target(s) nope; embedded targets: sent_mood, "),
           (["--learning_rates", "prompt=fast"], "--learning_rates takes numbers or METHOD=LR"),
           (["--gym", "--targets", "sent_mood"], "crossfit_gym targets: anli, dbpedia_14, "),
           (["--runs_per_step", "0"], "--runs_per_step takes a positive integer or auto, got '0'")]
  for extra, message in cases:
    assert cli.main(["study", "crossfit", "--out", str(tmp_path / "x"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
  assert not (tmp_path / "x").exists()


def test_study_crossfit_passes_its_grid_to_the_study(tmp_path, monkeypatch):
  from spot_jax.study import crossfit
  got = {}
  monkeypatch.setattr(crossfit, "run_study",
                      lambda config, frozen, universe, study, out, **kw: got.update(
                          universe=universe, study=study, out=out, **kw) or tmp_path / "report.md")
  assert cli.main(["study", "crossfit", "--out", str(tmp_path / "x"), "--upstream", "none", "mtl",
                   "--methods", "prompt", "full", "--targets", "nli_cb", "--seeds", "13", "21",
                   "--learning_rates", "prompt=1,0.1", "full=1e-3", "--batch_sizes", "8",
                   "--steps", "300", "--upstream_steps", "50", "--checkpoints", "best",
                   "--runs_per_step", "auto"]) == 0
  study = got["study"]
  assert got["runs_per_step"] is None  # auto: the measured rule
  assert got["universe"].name == "embedded" and study.targets == ("nli_cb",)
  assert study.seeds == (13, 21) and study.upstreams == ("none", "mtl")
  assert study.downstream.learning_rates == {"prompt": (1.0, 0.1), "full": (1e-3,)}
  assert study.downstream.batch_sizes == (8,) and study.downstream.steps == 300
  assert study.upstream.steps == 50 and study.checkpoints == ("best",)
  assert study.methods["prompt"].prompt_length == 20  # the embedded presets


def test_the_seed_t5_gin_presets_hold_the_seeds_section_4_4_values():
  import gin
  from spot_jax import gin_utils
  gin_utils.parse([cli.GYM_PRESETS, "models/t5_1_1_base.gin"], [], [])
  presets = gin.get_configurable("crossfit_presets")()
  gin.clear_config()
  assert {m: presets.methods[m].name for m in presets.methods} == {
      "prompt": "prompt", "prefix": "prefix", "adapter": "adapter", "full": "full"}
  assert presets.methods["prompt"].prompt_length == 100
  assert presets.methods["adapter"].bottleneck == 64
  # §4.4, MTL rows, T5: prompt, adapter and (model) T5 learning-rate lists
  assert presets.learning_rates["prompt"] == (1e-2, 5e-3, 1e-3)
  assert presets.learning_rates["adapter"] == (1e-4, 5e-5, 1e-6)
  assert presets.learning_rates["full"] == (1e-5, 3e-5, 1e-4)
  up = presets.upstream
  assert up.steps == 34_600 and up.batch_size == 32 and set(up.learning_rates.values()) == {1e-4}
  for config in up.meta.values():  # MAML: outer 1e-4, inner 1e-4, inner batch 4, one inner step
    assert (config.algorithm, config.outer_lr, config.inner_lr, config.inner_batch_size,
            config.inner_steps) == ("maml", 1e-4, 1e-4, 4, 1)


def test_study_crossfit_gym_runs_from_gin_with_a_real_t5x_checkpoint(tmp_path, capsys,
                                                                    tiny_t5x_checkpoint):
  """The Gym path end to end on sample TSVs: gin presets + model gin + the t5x fixture. The tiny
  model decodes no CB label, so the full-tuning baseline scores 0 and ARG is refused, naming the
  task, after every cell is on disk."""
  from spot_jax.data import local
  from spot_jax.study import crossfit
  from tasks import crossfit as gym
  for relative, text in gym.SAMPLE_FILES.items():
    if relative.startswith("crossfit/superglue-cb/"):
      (tmp_path / "data" / relative).parent.mkdir(parents=True, exist_ok=True)
      (tmp_path / "data" / relative).write_text(text)
  local.set_data_dir(str(tmp_path / "data"))
  try:
    code = cli.main(["study", "crossfit", "--gym", "--out", str(tmp_path / "o"),
                     "--gin_file", "models/t5_1_1_tiny.gin",
                     f"--gin.INITIAL_CHECKPOINT_PATH='{tiny_t5x_checkpoint}'", "--upstream", "none",
                     "--methods", "prompt", "full", "--targets", "superglue-cb", "--seeds", "13",
                     "--steps", "2", "--eval_every", "1", "--batch_sizes", "2"])
  finally:
    local.set_data_dir(None)
  assert code == 2
  assert "task superglue-cb has baseline score 0" in capsys.readouterr().err
  cells = crossfit.load_cells(tmp_path / "o")
  assert {(c["method"], c["learning_rate"]) for c in cells} == {
      ("prompt", 1e-2), ("prompt", 5e-3), ("prompt", 1e-3),  # the seed's presets
      ("full", 1e-5), ("full", 3e-5), ("full", 1e-4)}
  prompt = next(c for c in cells if c["method"] == "prompt")
  assert prompt["tunable_params"] == 100 * 4  # 100 tokens x emb 4 (t5_1_1_tiny)
