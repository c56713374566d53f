"""`spot-jax` command line. Each subcommand is a thin wrapper over a library function.

User errors (SpotError) are printed as one line without a traceback and exit with status 2.
TensorFlow / XLA / absl / JAX log lines are kept off the terminal unless --verbose (spot_jax.logs);
nothing here imports TensorFlow or JAX before main() has set that up.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Optional, Sequence

from spot_jax import __version__, logs
from spot_jax.errors import Interrupted, SpotError, environment_error

VERBOSE_FLAG = "--verbose"


class _Parser(argparse.ArgumentParser):
  """Usage errors as one line, like every other error (exit 2); an option taking several values
  (nargs="+") refuses to be given twice, where argparse would keep only the last list."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.register("action", None, _StoreOnce)

  def error(self, message: str):
    self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _StoreOnce(argparse.Action):
  """argparse's default "store" action, but for a repeated nargs="+" option."""

  def __call__(self, parser, namespace, values, option_string=None):
    given = namespace.__dict__.setdefault("_given", set())
    if self.nargs == "+" and self.dest in given:
      parser.error(f"{option_string} given twice; list all its values after one {option_string}")
    given.add(self.dest)
    setattr(namespace, self.dest, values)


def _int_at_least(low: int, what: str):
  """An argparse type: an integer >= low, else "must be {what}, got '...'"."""
  def parse(text: str) -> int:
    if not text.lstrip("-").isdigit() or int(text) < low:
      raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return int(text)
  return parse


_positive = _int_at_least(1, "a positive integer")
_non_negative = _int_at_least(0, "an integer >= 0")


def _cmd_version(args: argparse.Namespace) -> None:
  import jax
  import flax
  print(f"spot-jax {__version__} (jax {jax.__version__}, flax {flax.__version__}, "
        f"python {sys.version.split()[0]})")


def _cmd_convert(args: argparse.Namespace) -> None:
  from spot_jax.checkpoints import convert
  from spot_jax.model.config import get_config
  config = get_config(args.config) if args.config else None
  used = convert(args.src, args.dst, src_format=args.src_format, dst_format=args.dst_format,
                 config=config, overwrite=args.overwrite)
  print(f"converted {args.src_format} {args.src} -> {args.dst_format} {args.dst} "
        f"(model {used.name}: {used.num_encoder_layers}+{used.num_decoder_layers} layers, "
        f"emb {used.emb_dim}, vocab {used.vocab_size})")


def _cmd_smoke(args: argparse.Namespace) -> None:
  from spot_jax.smoke import run_smoke
  run_smoke(checkpoint=args.checkpoint, config_name=args.config, vocab_path=args.vocab,
            prompt_length=args.prompt_length, beam_size=args.beam_size,
            max_decode_len=args.max_decode_len)


_GIN_COMMANDS = {
    # command: (gin configurable, required macros)
    "train": ("train", ("MODEL_CONFIG", "PROMPT_INITIALIZER", "MIXTURE_OR_TASK_NAME", "MODEL_DIR",
                        "INITIAL_CHECKPOINT_PATH")),
    "eval": ("evaluate", ("MODEL_CONFIG", "MIXTURE_OR_TASK_NAME", "INITIAL_CHECKPOINT_PATH",
                          "PROMPT_FILE")),
    "infer": ("infer", ("MODEL_CONFIG", "MIXTURE_OR_TASK_NAME", "INITIAL_CHECKPOINT_PATH",
                        "PROMPT_FILE")),
}


def _import_modules(modules: Sequence[str]) -> None:
  import importlib
  for module in modules:
    try:
      importlib.import_module(module)
    except ImportError as e:
      raise SpotError(f"cannot import task module {module!r} ({e}); check --module / PYTHONPATH")


def _start_distributed(args: argparse.Namespace, gin_utils) -> None:
  """Multi-process runs (spot_jax.train.distributed): flags, else gin macros COORDINATOR_ADDRESS /
  NUM_PROCESSES / PROCESS_ID, else SPOT_JAX_* environment variables; before any JAX computation."""
  from spot_jax.train import distributed
  distributed.initialize(
      coordinator_address=args.coordinator_address or gin_utils.macro_value("COORDINATOR_ADDRESS"),
      num_processes=_first(args.num_processes, gin_utils.macro_value("NUM_PROCESSES")),
      process_id=_first(args.process_id, gin_utils.macro_value("PROCESS_ID")),
      auto=args.distributed == "auto")


def _first(*values):
  return next((v for v in values if v is not None), None)


def _distributed_flags(p: argparse.ArgumentParser) -> None:
  g = p.add_argument_group("multi-process runs", "one process per host, all with the same flags "
                           "but --process_id; or SPOT_JAX_COORDINATOR / SPOT_JAX_NUM_PROCESSES / "
                           "SPOT_JAX_PROCESS_ID; process 0 writes the shared files")
  g.add_argument("--coordinator_address", metavar="HOST:PORT", help="process 0's address")
  g.add_argument("--num_processes", type=_positive, metavar="N")
  g.add_argument("--process_id", type=_non_negative, metavar="I", help="0..N-1")
  g.add_argument("--distributed", choices=("auto",), help="auto: jax's cluster detection "
                 "(TPU pods, SLURM, Open MPI) fills in all three")


def _cmd_gin(args: argparse.Namespace) -> None:
  """train / eval / infer: parse the gin files and overrides, then call the bound function."""
  if args.command == "infer" and args.tasks:
    return _cmd_infer_mixed(args)
  import gin
  from spot_jax import gin_utils
  _import_modules(args.module)
  name, required = _GIN_COMMANDS[args.command]
  gin_utils.parse(args.gin_file, args.gin_bindings, required)
  _start_distributed(args, gin_utils)
  fn = gin.get_configurable(name)
  if args.command != "train":
    return fn()
  fn(files={"config.gin": gin.config_str()})  # written once train has checked its settings
  gin_utils.save_config(gin.query_parameter("MODEL_DIR/gin.macro.value"), "operative_config.gin",
                        gin.operative_config_str())


# `dryrun` reads `train`'s bindings; these macros name data and files a dry run never touches, so
# they default to None (a value on the command line still wins: user bindings come after).
_DRYRUN_UNUSED_MACROS = ("MIXTURE_OR_TASK_NAME", "MODEL_DIR", "INITIAL_CHECKPOINT_PATH",
                         "PROMPT_FILE", "OUTPUT_FILE", "CLASS_LABELS")
# The `train` arguments that shape the compiled step (spot_jax.train.dryrun.dryrun's keywords).
_DRYRUN_SETTINGS = ("model_config", "prompt_length", "optimizer", "batch_size", "feature_lengths",
                    "z_loss", "dropout_rate", "mesh_data", "mesh_model", "remat_policy",
                    "frozen_dtype")


def _use_fake_cpu_devices(count: int) -> None:
  """--devices N: N XLA:CPU devices, whatever accelerator is present. Must precede the first jax
  computation (the CPU client reads the count when it starts)."""
  import jax
  try:
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", count)
  except RuntimeError as e:  # a backend already started in this process
    raise SpotError(f"cannot set {count} CPU devices: {e}") from None


def _train_settings() -> dict:
  """`train`'s gin-bound values of _DRYRUN_SETTINGS, else train's own defaults."""
  from spot_jax import gin_utils
  from spot_jax.train.trainer import train
  settings = gin_utils.bound_arguments("train", train, (*_DRYRUN_SETTINGS, "pack"))
  if "feature_lengths" not in settings:
    raise SpotError("dryrun needs the feature lengths: bind train.feature_lengths (runs/*.gin sets "
                    "it from TASK_FEATURE_LENGTHS), e.g. --gin.TASK_FEATURE_LENGTHS=\"{'inputs': "
                    "512, 'targets': 8}\"")
  if settings.pop("pack", False):
    print("spot-jax dryrun: train.pack is set; the dry run compiles the unpacked step",
          file=sys.stderr)
  return settings


def _cmd_dryrun(args: argparse.Namespace) -> None:
  """Compile `train`'s step for a mesh ahead of time and report per-device memory (no data, no
  checkpoint, nothing runs); configured by the same gin files as `train`."""
  _output_file(args.json, "--json")
  if args.devices is not None:
    _use_fake_cpu_devices(args.devices)
  import json
  from spot_jax import gin_utils
  from spot_jax.train import dryrun
  _import_modules(args.module)
  unused = [f"{m} = None" for m in _DRYRUN_UNUSED_MACROS]
  gin_utils.parse(args.gin_file, unused + list(args.gin_bindings), ("MODEL_CONFIG",))
  settings = _train_settings()
  mesh = None
  if args.topology:
    mesh = dryrun.topology_mesh(args.topology, settings.get("mesh_data", -1),
                                settings.get("mesh_model", 1))
  record = dryrun.dryrun(**settings, runs=args.runs, mesh=mesh)
  print(dryrun.format_report(record))
  if args.json:  # checked before the compile
    with open(args.json, "w") as f:
      json.dump(record, f, indent=2)
    print(f"wrote {args.json}")


def _cmd_infer_mixed(args: argparse.Namespace) -> None:
  """`infer --tasks`: mixed batches of several tasks, each with its library prompt."""
  from spot_jax.peft import load_prompt_file
  from spot_jax.train import mixed_inference as mixed
  if args.gin_file or args.gin_bindings:
    raise SpotError("infer --tasks takes plain flags, not gin: give the model with --checkpoint "
                    "(and --config), or drop --tasks for the gin-configured infer")
  if not args.out:
    raise SpotError("infer --tasks needs --out PREDICTIONS.jsonl")
  _output_file(args.out, "--out")
  _import_modules(args.module)
  library = _library(args.library)
  embeddings = {task: load_prompt_file(path) for task, path in
                mixed.parse_assignments(args.embedding, "--embedding", "EMB.npy").items()}
  result = mixed.infer_mixed(
      library, args.tasks, args.out, model=mixed.model_loader(library, args.checkpoint, args.config),
      split=args.split, runs=mixed.parse_assignments(args.run, "--run", "RUN"),
      embeddings=embeddings, embedding_run=args.embedding_run, metric=args.metric,
      batch_size=args.batch_size, num_examples=args.num_examples, input_length=args.input_length,
      target_length=args.target_length, verify_checksum=not args.no_model_check)
  for task, record in result["tasks"].items():
    prompt = record["prompt"]
    how = "own" if prompt["via"] == "own" else f"retrieved, similarity {prompt['similarity']:.3f}"
    metrics = ", ".join(f"{k} {v:.2f}" for k, v in record["metrics"].items())
    print(f"{task:<34s} {record['num_examples']:5d} ex  prompt {prompt['source']}/{prompt['run']} "
          f"({how})  {metrics}")
  print(f"wrote {result['num_examples']} predictions to {args.out} and metrics to "
        f"{mixed.metrics_path(args.out)} (score {result['score']:.2f})")


def _infer_mixed_flags(p: argparse.ArgumentParser) -> None:
  """The flags of `infer --tasks` (mixed-task inference from a prompt library)."""
  from spot_jax.train.mixed_inference import DEFAULT_TARGET_LENGTH
  g = p.add_argument_group(
      "mixed-task inference (--tasks; plain flags, no gin)",
      "Decode several seqio tasks in shared batches, each example with its own task's source "
      "prompt from a prompt library. Writes OUT (one JSON line per example: task, index, batch, "
      "inputs, target, prediction, prompt) and OUT minus .jsonl plus .metrics.json (each task's "
      "seqio metrics and the prompt it used). A task without a source prompt of its own is "
      "decoded with the prompt of its best-ranked library source by SPoT retrieval, which needs a "
      "task embedding of the task: its own in the library (runs holding only task_embedding), or "
      "one you supply with --embedding.")
  g.add_argument("--tasks", nargs="+", metavar="TASK", help="seqio tasks (a mixture stands for "
                 "its tasks) to decode together")
  g.add_argument("--library", metavar="LIBRARY_DIR", help="prompt library (default: the "
                 "library released with spot-jax, of the shipped embedded model)")
  g.add_argument("--out", metavar="PREDICTIONS.jsonl", help="predictions file (required)")
  g.add_argument("--split", default="validation")
  g.add_argument("--run", action="append", metavar="TASK=RUN", help="decode TASK with its "
                 "source prompt of library run RUN (default: its run with the best validation "
                 "score); repeatable")
  g.add_argument("--embedding", action="append", metavar="TASK=EMB.npy", help="decode TASK with "
                 "the source prompt of the library task that retrieval ranks first for this task "
                 "embedding (TASK itself excluded), e.g. from `spot-jax embed TASK EMB.npy`, or "
                 "`spot-jax export-prompt` of an early checkpoint of a short tuning run on TASK "
                 "with the library's model and prompt length; repeatable")
  g.add_argument("--embedding_run", metavar="RUN", help="compare --embedding with this run's "
                 "library embeddings only, e.g. seed0 for `spot-jax embed --seed 0` (default: all)")
  g.add_argument("--metric", default="token_cosine", choices=("token_cosine", "avg_cosine"),
                 help="retrieval similarity")
  g.add_argument("--checkpoint", help="t5x or HF checkpoint of the frozen model the library's "
                 "prompts were tuned on (default: the shipped embedded model, for its library)")
  g.add_argument("--config", help="model config name for a t5x --checkpoint (default: inferred)")
  g.add_argument("--no_model_check", action="store_true", help="decode even if the checkpoint's "
                 "parameters are not the ones the library's prompts were tuned on")
  g.add_argument("--batch_size", type=_positive, default=32)
  g.add_argument("--num_examples", type=_positive,
                 help="first N examples of each task (default: all)")
  g.add_argument("--input_length", type=_positive,
                 help="encoder length (default: the longest input)")
  g.add_argument("--target_length", type=_positive, default=DEFAULT_TARGET_LENGTH,
                 help="decoding length")


def _output_file(path: Optional[str], flag: str) -> None:
  """An output file is checked before the command's work: a bad path costs nothing."""
  from spot_jax import validation
  if path is not None:
    validation.check_writable_file(path, setting=flag)


def _cmd_export_prompt(args: argparse.Namespace) -> None:
  from spot_jax.train.checkpointing import export_checkpoint_prompt
  _output_file(args.output, "OUT.npy")
  path = export_checkpoint_prompt(args.model_dir, args.output, step=args.step)
  print(f"wrote {path} and its .json sidecar")


def _cmd_tasks(args: argparse.Namespace) -> None:
  import json
  import tasks  # noqa: F401  registers the catalog
  from tasks import catalog
  rows = catalog.describe(args.family)
  if not rows:
    raise SpotError(f"no tasks in family {args.family!r}; families: {', '.join(sorted(catalog.families()))}")
  if args.json:
    print(json.dumps(rows, indent=2))
    return
  for row in rows:
    print(f"{row['name']:<34s} {row['family']:<12s} {row['source']:<34s} "
          f"{','.join(row['metrics']):<28s} {'local' if row['local'] else '-'}")


def _cmd_demo(args: argparse.Namespace) -> None:
  from spot_jax.embedded import demo
  demo.run_demo(args.out, target=args.target)


def _protocol(args: argparse.Namespace):
  from spot_jax.embedded import protocol
  return protocol.study_protocol(args.steps, embedding_step=args.embedding_step,
                                 num_eval_examples=args.eval_examples)


def _cmd_study(args: argparse.Namespace) -> None:
  from spot_jax.embedded import demo, tasks
  demo.study(args.out, sources=args.sources or tasks.SOURCE_TASKS,
             targets=args.targets or tasks.TARGET_TASKS, seeds=args.seeds,
             protocol=_protocol(args), source_steps=args.source_steps, top_k=args.top_k,
             metric=args.metric, mixture=args.mixture, embedding_seeds=args.embedding_seeds,
             reverse=args.reverse)
  print(f"report: {args.out}/report.md")


GYM_PRESETS = "crossfit/seed_t5.gin"


def _learning_rates(items: Optional[Sequence[str]]) -> Optional[dict[str, list[float]]]:
  """["0.1", "0.01"] -> {"*": [0.1, 0.01]}; ["prompt=1,0.1", "full=1e-3"] -> per method."""
  if not items:
    return None
  rates: dict[str, list[float]] = {}
  try:
    for item in items:
      method, _, values = item.rpartition("=")
      rates.setdefault(method or "*", []).extend(float(v) for v in values.split(","))
  except ValueError:
    raise SpotError(f"--learning_rates takes numbers or METHOD=LR[,LR...], got {' '.join(items)}")
  return rates


def _runs_per_step(value: str) -> Optional[int]:
  """--runs_per_step: a positive K, or auto (None: spot_jax.train.multi.runs_per_step's rule)."""
  if value == "auto":
    return None
  if not value.isdigit() or int(value) < 1:
    raise SpotError(f"--runs_per_step takes a positive integer or auto, got {value!r}")
  return int(value)


def _cmd_crossfit(args: argparse.Namespace) -> None:
  """The CrossFit PEFT study: on the embedded universe with the shipped model, or (--gym) on the
  CrossFit Gym TSVs with the model a gin file names (INITIAL_CHECKPOINT_PATH, MODEL_CONFIG)."""
  from spot_jax.embedded import protocol
  from spot_jax.study import crossfit
  universe = crossfit.gym_universe() if args.gym else protocol.crossfit_universe()
  unknown = [t for t in (args.targets or ()) if t not in universe.targets]
  if unknown:
    raise SpotError(f"unknown target(s) {', '.join(unknown)}; {universe.name} targets: "
                    f"{', '.join(universe.targets)}")
  learning_rates = _learning_rates(args.learning_rates)
  runs_per_step = _runs_per_step(args.runs_per_step)
  if args.gym:  # the seed's presets (gin_configs/crossfit/seed_t5.gin) and the model from gin
    import gin
    from spot_jax import gin_utils
    from spot_jax.train.trainer import load_frozen
    gin_utils.parse([GYM_PRESETS, *args.gin_file], args.gin_bindings,
                    ["MODEL_CONFIG", "INITIAL_CHECKPOINT_PATH"])
    presets = gin.get_configurable("crossfit_presets")()
    config, frozen = load_frozen(gin.query_parameter("MODEL_CONFIG/gin.macro.value"),
                                 gin.query_parameter("INITIAL_CHECKPOINT_PATH/gin.macro.value"), 0)
  else:
    from spot_jax.checkpoints import load_checkpoint
    from spot_jax import embedded
    presets = protocol.CROSSFIT_PRESETS
    config, frozen = load_checkpoint(embedded.model_dir())
  study = crossfit.build_study(
      presets, upstreams=args.upstream, methods=args.methods, targets=args.targets,
      seeds=args.seeds, steps=args.steps, eval_every=args.eval_every,
      batch_sizes=args.batch_sizes, learning_rates=learning_rates,
      upstream_steps=args.upstream_steps, checkpoints=args.checkpoints)
  report = crossfit.run_study(config, frozen, universe, study, args.out,
                              protocol_note=" ".join(sys.argv[1:]), baseline_dir=args.baseline_dir,
                              runs_per_step=runs_per_step)
  print(f"report: {report}")


def _cmd_embed(args: argparse.Namespace) -> None:
  from spot_jax.embedded import demo, tasks
  from spot_jax.peft import save_prompt_file
  (task,) = tasks.resolve([args.task])
  _output_file(args.output, "OUT.npy")
  tuner = demo.embedded_tuner(_protocol(args))
  run = tuner.tune(task, seed=args.seed, steps=args.embedding_step)
  save_prompt_file(args.output, run.task_embedding)
  print(f"wrote {args.output}: task embedding of {task} after {args.embedding_step} steps")


def _library(path: Optional[str]):
  """LIBRARY_DIR's library, or the released one when none is given."""
  from spot_jax.library.store import PromptLibrary
  if path is not None:
    return PromptLibrary(path)
  from spot_jax.embedded.released import released_library
  return released_library()


def _cmd_retrieve(args: argparse.Namespace) -> None:
  from spot_jax.library import retrieval
  from spot_jax.peft import load_prompt_file, save_prompt_file
  _output_file(args.save_prompt, "--save_prompt")
  library = _library(args.library)
  ranking = retrieval.rank_sources(library, {args.run: load_prompt_file(args.query)}, args.metric,
                                   center=not args.no_center)
  if args.save_prompt and args.mix > len(ranking):
    raise SpotError(f"--mix {args.mix}: the library ranks only {len(ranking)} source(s)")
  for i, (task, score) in enumerate(ranking[:args.k], 1):
    print(f"{i:3d}. {task:<36s} {score:.4f}")
  if args.save_prompt:
    save_prompt_file(args.save_prompt, retrieval.weighted_prompt(library, ranking, args.mix))
    print(f"wrote {args.save_prompt}: the top-{args.mix} weighted average of the source prompts "
          f"(init a target with it: prompts/from_file.gin, PROMPT_FILE)")


def _cmd_library_add(args: argparse.Namespace) -> None:
  from etils import epath
  from spot_jax.library.store import PromptLibrary
  library = PromptLibrary(args.library)
  options = dict(run=args.run, family=args.family, overwrite=args.overwrite)
  if epath.Path(args.path).is_dir():
    if args.kind or args.task:
      raise SpotError("--kind and --task are for a prompt file; a MODEL_DIR's exports say both")
    entry = library.add_run(args.path, **options)
  else:
    entry = library.add_export(args.path, args.kind, task=args.task, **options)
  print(f"added {entry.task}/{entry.run} ({', '.join(entry.kinds)}) to {library.path}")


def _cmd_library_list(args: argparse.Namespace) -> None:
  import json
  library = _library(args.library)
  if not library.path.is_dir():
    raise SpotError(f"no library at {library.path}; `spot-jax library add` creates one")
  entries = library.list(args.task)
  if args.json:
    print(json.dumps([{"task": e.task, "run": e.run, "kinds": list(e.kinds), "score": e.score,
                       "family": e.family} for e in entries], indent=2))
    return
  for e in entries:
    score = "-" if e.score is None else f"{e.score:.2f}"
    print(f"{e.task:<36s} {e.run:<12s} {','.join(e.kinds):<29s} {score:>7s} {e.family or '-'}")
  identity = library.identity
  model = f"model {identity.model} {identity.frozen_checksum[:19]}" if identity else "empty"
  print(f"{len(entries)} entries of {len({e.task for e in entries})} tasks in {library.path} "
        f"({model}; index {'current' if library.index_is_current() else 'out of date'})",
        file=sys.stderr)


def _cmd_library_remove(args: argparse.Namespace) -> None:
  from spot_jax.library.store import PromptLibrary
  PromptLibrary(args.library).remove(args.task, args.run)
  print(f"removed {args.task}/{args.run} from {args.library}")


def _cmd_library_reindex(args: argparse.Namespace) -> None:
  from spot_jax.library.store import PromptLibrary
  library = PromptLibrary(args.library)
  library.reindex()
  print(f"rebuilt the index of {library.path}")


def _cmd_library_export_peft(args: argparse.Namespace) -> None:
  from spot_jax.library.peft_export import export_peft_for_config
  from spot_jax.model.config import get_config
  from spot_jax import validation
  validation.check_writable_dir(args.output, setting="OUT_DIR")
  library = _library(args.library)
  entry = library.get(args.task, args.run, kind=args.kind)
  config = get_config(args.config or entry.identity.model)
  out = export_peft_for_config(entry.load(args.kind), args.output, config,
                               base_model_name_or_path=args.base_model, overwrite=args.overwrite)
  print(f"wrote {out}: the {args.kind} of {entry.task}/{entry.run} as a PEFT adapter")


def _cmd_library_import_google(args: argparse.Namespace) -> None:
  from spot_jax.library.store import ModelIdentity, PromptLibrary
  from spot_jax.peft import load_prompt_file
  library = PromptLibrary(args.library)
  identity = library.identity
  if identity is None:
    given = {"model": args.model, "frozen_checksum": args.frozen_checksum,
             "vocabulary": args.vocabulary}
    missing = [f"--{name}" for name, value in given.items() if value is None]
    if missing:
      raise SpotError(f"{args.library} is a new library: say which model the prompt was tuned on "
                      f"with {', '.join(missing)}")
    length, embed = load_prompt_file(args.prompt).shape
    identity = ModelIdentity(**given, prompt_length=length, embed_dim=embed)
  entry = library.import_google_npy(args.prompt, args.task, args.run, identity=identity,
                                    kind=args.kind, overwrite=args.overwrite)
  print(f"imported {args.prompt} as {entry.task}/{entry.run} ({args.kind}) into {library.path}")


def _library_parser(sub) -> None:
  """`spot-jax library add|list|remove|reindex|export-peft|import-google`."""
  from spot_jax.library.store import KINDS
  library = sub.add_parser("library", help="a prompt library: add, list, remove, export prompts",
                           description="A prompt library directory holds source prompts and task "
                           "embeddings of one frozen model by (task, run), for `spot-jax "
                           "retrieve`.")
  commands = library.add_subparsers(dest="library_command", metavar="ACTION", required=True)
  released = "(default: the library released with spot-jax)"

  p = commands.add_parser("add", help="add a training run's exports or one exported prompt")
  p.add_argument("library", metavar="LIBRARY_DIR")
  p.add_argument("path", metavar="MODEL_DIR|PROMPT.npy", help="a train run's MODEL_DIR (its "
                 "exports: source prompt + task embedding), or a prompt .npy with its .json "
                 "sidecar, e.g. from `spot-jax export-prompt`")
  p.add_argument("--kind", action="append", choices=KINDS, help="what PROMPT.npy is (repeatable; "
                 "default: its sidecar's kind)")
  p.add_argument("--task", help="the task of PROMPT.npy (default: its sidecar's)")
  p.add_argument("--run", help="run name; seed<S> matches queries embedded with --seed S "
                 "(default: MODEL_DIR's name, or PROMPT's file name)")
  p.add_argument("--family", help="task family, e.g. nli")
  p.add_argument("--overwrite", action="store_true", help="replace an existing (task, run)")
  p.set_defaults(fn=_cmd_library_add)

  p = commands.add_parser("list", help="the entries: task, run, kinds, score, family")
  p.add_argument("library", metavar="LIBRARY_DIR", nargs="?", help=released)
  p.add_argument("--task", help="only this task")
  p.add_argument("--json", action="store_true", help="machine-readable output")
  p.set_defaults(fn=_cmd_library_list)

  p = commands.add_parser("remove", help="delete one (task, run)")
  p.add_argument("library", metavar="LIBRARY_DIR")
  p.add_argument("task")
  p.add_argument("run")
  p.set_defaults(fn=_cmd_library_remove)

  p = commands.add_parser("reindex", help="rebuild the retrieval index from the entries")
  p.add_argument("library", metavar="LIBRARY_DIR")
  p.set_defaults(fn=_cmd_library_reindex)

  p = commands.add_parser("export-peft", help="write a prompt as a Hugging Face PEFT adapter")
  p.add_argument("library", metavar="LIBRARY_DIR", nargs="?", help=released)
  p.add_argument("task")
  p.add_argument("output", metavar="OUT_DIR")
  p.add_argument("--base_model", required=True, help="the HF name or directory of the frozen "
                 "model, recorded in adapter_config.json")
  p.add_argument("--run", help="default: the task's best run holding --kind")
  p.add_argument("--kind", choices=KINDS, default="source_prompt")
  p.add_argument("--config", help="model config name for the encoder sizes (default: the "
                 "library's model)")
  p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
  p.set_defaults(fn=_cmd_library_export_peft)

  p = commands.add_parser("import-google", help="add a released google prompt-tuning .npy")
  p.add_argument("library", metavar="LIBRARY_DIR")
  p.add_argument("prompt", metavar="PROMPT.npy")
  p.add_argument("--task", required=True)
  p.add_argument("--run", default="google")
  p.add_argument("--kind", choices=KINDS, default="source_prompt")
  for name in ("model", "frozen_checksum", "vocabulary"):
    p.add_argument(f"--{name}", help="the frozen model's identity, for a new library (default: "
                   "the library's: you vouch that the prompt was tuned on its model)")
  p.add_argument("--overwrite", action="store_true", help="replace an existing (task, run)")
  p.set_defaults(fn=_cmd_library_import_google)


def build_parser() -> argparse.ArgumentParser:
  from spot_jax.checkpoints import FORMATS
  from spot_jax.embedded import protocol, tasks
  parser = _Parser(
      prog="spot-jax", description="Soft prompt tuning and transfer (SPoT) on a frozen T5.")
  parser.add_argument(VERBOSE_FLAG, action="store_true",
                      help="let TensorFlow, XLA, JAX and absl print their log lines (hidden by "
                           "default); accepted anywhere on the command line")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

  p = sub.add_parser("version", help="print versions")
  p.set_defaults(fn=_cmd_version)

  p = sub.add_parser("convert", help="convert a checkpoint between t5x and HF layouts",
                     description="Convert a whole T5 checkpoint: t5x directory (msgpack + zarr) <-> "
                                 "HF directory (config.json + model.safetensors).")
  p.add_argument("--from", dest="src_format", choices=FORMATS, required=True)
  p.add_argument("--to", dest="dst_format", choices=FORMATS, required=True)
  p.add_argument("--config", help="model config name (e.g. t5_1_1_base) for t5x sources; "
                                  "default: inferred from the parameter shapes")
  p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
  p.add_argument("src", metavar="SRC")
  p.add_argument("dst", metavar="DST")
  p.set_defaults(fn=_cmd_convert)

  for command, help_text in (("train", "tune a prompt (gin-configured)"),
                             ("eval", "evaluate a prompt with the task's metrics (gin-configured)"),
                             ("infer", "decode a task split with a prompt (gin-configured), "
                              "or several tasks in mixed batches with library prompts (--tasks)")):
    p = sub.add_parser(command, help=help_text, description=(
        f"{help_text}. Compose gin files t5x-style, e.g. spot-jax {command} "
        "--gin_file=models/t5_1_1_base.gin --gin_file=prompts/sampled_vocab.gin "
        f"--gin_file=runs/{'prompt_finetune' if command == 'train' else command}.gin "
        "--gin.MIXTURE_OR_TASK_NAME=\"'glue_rte_v2'\" --gin.MODEL_DIR=\"'/tmp/rte'\""))
    p.add_argument("--gin_file", action="append", default=[],
                   help="gin file (searched in the working directory, then gin_configs/); repeatable")
    p.add_argument("--module", action="append", default=["tasks"],
                   help="module to import that registers seqio tasks (default: tasks); repeatable")
    p.set_defaults(fn=_cmd_gin, tasks=None)
    _distributed_flags(p)
    if command == "infer":
      _infer_mixed_flags(p)

  p = sub.add_parser("dryrun", help="compile the train step for a mesh ahead of time: per-device "
                     "memory, FLOPs, sharding (gin-configured like train; nothing runs)",
                     description="Lowers and compiles the exact train step `spot-jax train` would "
                     "run, on abstract parameters, state and batch laid out over the mesh "
                     "(train.mesh_data x train.mesh_model), and prints per-device memory "
                     "(arguments, outputs, temporaries), GFLOPs per step, compile time and each "
                     "parameter group's sharding. Takes train's gin files unchanged; "
                     "MIXTURE_OR_TASK_NAME, MODEL_DIR and INITIAL_CHECKPOINT_PATH are not needed. "
                     "Memory knobs: train.remat_policy, train.frozen_dtype (docs/scale.md). "
                     "e.g. spot-jax dryrun --devices 256 --gin_file=models/t5_1_1_xxl.gin "
                     "--gin_file=runs/prompt_finetune.gin --gin.train.mesh_model=16")
  p.add_argument("--gin_file", action="append", default=[],
                 help="gin file (searched in the working directory, then gin_configs/); repeatable")
  p.add_argument("--module", action="append", default=[],
                 help="module to import that the gin files need (default: none); repeatable")
  p.add_argument("--devices", type=_positive, help="compile for N fake CPU devices, e.g. 256 for a "
                 "TPU v4-512 slice's chips (default: this machine's devices)")
  p.add_argument("--topology", metavar="NAME", help="compile with XLA:TPU for a TPU topology, e.g. "
                 "v5e:16x16 or v4:4x4x4, with no TPU attached (needs the libtpu package; "
                 "docs/scale.md); replaces --devices")
  p.add_argument("--runs", type=_positive, default=1, metavar="K", help="compile the K-run step "
                 "(spot_jax.train.multi: K stacked prompts, each with train.batch_size examples)")
  p.add_argument("--json", metavar="OUT.json", help="also write the full record as JSON")
  p.set_defaults(fn=_cmd_dryrun)

  p = sub.add_parser("tasks", help="list the seqio catalog: name, family, source, metrics, data here")
  p.add_argument("--family", help="only this family, e.g. glue")
  p.add_argument("--json", action="store_true", help="machine-readable output")
  p.set_defaults(fn=_cmd_tasks)

  p = sub.add_parser("export-prompt", help="write the prompt of a training checkpoint as .npy + .json")
  p.add_argument("model_dir", metavar="MODEL_DIR")
  p.add_argument("output", metavar="OUT.npy")
  p.add_argument("--step", type=_non_negative, help="checkpoint step (default: the latest)")
  p.set_defaults(fn=_cmd_export_prompt)

  p = sub.add_parser("demo", help="the SPoT loop on the embedded universe in minutes (CPU)",
                     description="Tune source prompts into a library, embed a held-out target, "
                                 "retrieve, tune the target from the retrieved prompts and from "
                                 "scratch; write report.md with tables and figures.")
  p.add_argument("--out", default="spot_demo", help="output directory (default: spot_demo)")
  p.add_argument("--target", help="held-out embedded target task (default: "
                 f"{tasks.task_name('sent_mood')})")
  p.set_defaults(fn=_cmd_demo)

  def protocol_flags(p: argparse.ArgumentParser) -> None:
    defaults = protocol.DEMO_PROTOCOL
    p.add_argument("--steps", type=_positive, default=defaults.steps,
                   help="target prompt-tuning steps")
    p.add_argument("--embedding_step", type=_positive, default=defaults.embedding_step, help="task "
                   "embedding = prompt after this many steps (paper: 10K)")
    p.add_argument("--eval_examples", type=_positive, default=defaults.num_eval_examples,
                   help="validation examples per check")

  study = sub.add_parser("study", help="SPoT studies on the embedded universe")
  study_sub = study.add_subparsers(dest="study", metavar="STUDY", required=True)
  p = study_sub.add_parser("transfer", help="source x target x seed grid, resumable; tables, "
                           "figures and retrieval in OUT/report.md")
  p.add_argument("--out", required=True)
  p.add_argument("--sources", nargs="+", help="default: all 16 embedded sources")
  p.add_argument("--targets", nargs="+", help="default: all 10 embedded targets")
  p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  p.add_argument("--source_steps", type=_positive, default=protocol.DEMO_SOURCE_STEPS)
  p.add_argument("--top_k", type=_positive, default=3)
  p.add_argument("--metric", default="token_cosine", choices=("token_cosine", "avg_cosine"))
  p.add_argument("--mixture", action="store_true", help="also retrieve by top-k multi-task "
                 "mixture (a prompt tuned on the top-k sources + the target initialises it)")
  p.add_argument("--embedding_seeds", type=int, nargs="+", default=[0], help="embed every task "
                 "from the init of each seed and average the similarities (paper: one seed)")
  p.add_argument("--reverse", action="store_true", help="run the grid's cells last to first: "
                 "start a second process on the same --out with it to share the work")
  protocol_flags(p)
  p.set_defaults(fn=_cmd_study)

  from spot_jax.peft.trees import METHODS
  from spot_jax.study.crossfit import CHECKPOINTS, UPSTREAMS
  p = study_sub.add_parser(
      "crossfit", help="CrossFit PEFT study: prompt/prefix/adapter/full x none/MTL/MAML upstream, "
      "downstream lr x batch grid, ARG; resumable, several processes may share --out",
      description="Runs (or resumes) every upstream and downstream cell into OUT/ and writes "
                  "report.md (ARG per upstream x method, per-task test scores), results.csv and "
                  "arg.png. Start more processes on the same --out to share the cells.")
  p.add_argument("--out", required=True)
  p.add_argument("--upstream", nargs="+", default=list(UPSTREAMS), choices=UPSTREAMS)
  p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
  p.add_argument("--targets", nargs="+", help="short target names (default: all of the universe)")
  p.add_argument("--seeds", type=int, nargs="+", help="k-shot seeds (default: 13 21 42 87 100)")
  p.add_argument("--steps", type=_positive, default=1000, help="downstream steps (seed: 1000)")
  p.add_argument("--eval_every", type=_positive, default=100,
                 help="dev evaluation period (seed: 100)")
  p.add_argument("--batch_sizes", type=_positive, nargs="+", default=[4, 8])
  p.add_argument("--learning_rates", nargs="+", metavar="LR|METHOD=LR,LR", help="downstream "
                 "learning rates: numbers for every method, or per method, e.g. prompt=1,0.1 "
                 "full=1e-3 (default: each method's presets)")
  p.add_argument("--upstream_steps", type=_positive, help="default: the presets' (embedded 1000, "
                 "seed T5 34,600)")
  p.add_argument("--checkpoints", nargs="+", default=list(CHECKPOINTS), choices=CHECKPOINTS,
                 help="which upstream trees transfer (default: both best-dev and last)")
  p.add_argument("--baseline_dir", help="ARG against the none/full cells of this other study "
                 "directory (same model and targets) instead of this study's own")
  p.add_argument("--runs_per_step", default="1", metavar="K|auto",
                 help="tune K downstream runs of one (upstream, method, batch) group in one stacked "
                 "step; auto: the measured rule (batch 4 -> 4, 8 -> 2, 32 -> 1). Default 1: "
                 "bit-reproducible; stacked runs equal single runs only to float round-off")
  p.add_argument("--gym", action="store_true", help="the CrossFit Gym TSVs (set_data_dir) with "
                 "the model of --gin_file (MODEL_CONFIG, INITIAL_CHECKPOINT_PATH)")
  p.add_argument("--gin_file", action="append", default=[])
  p.set_defaults(fn=_cmd_crossfit)

  p = sub.add_parser("embed", help="task embedding of an embedded task: its prompt after E steps")
  p.add_argument("task")
  p.add_argument("output", metavar="OUT.npy")
  p.add_argument("--seed", type=int, default=0)
  protocol_flags(p)
  p.set_defaults(fn=_cmd_embed)

  p = sub.add_parser("retrieve", help="rank a library's sources by similarity to a task embedding")
  p.add_argument("library", metavar="LIBRARY_DIR", nargs="?",
                 help="default: the library released with spot-jax (the embedded model's sources)")
  p.add_argument("query", metavar="EMBEDDING.npy")
  p.add_argument("--metric", default="token_cosine", choices=("token_cosine", "avg_cosine"))
  p.add_argument("-k", type=_positive, default=10)
  p.add_argument("--run", help="compare with this run's embeddings only, e.g. seed0 for a query "
                 "embedded with --seed 0 (default: every run, averaged per task)")
  p.add_argument("--no_center", action="store_true",
                 help="compare raw embeddings (default: subtract the library's mean embedding)")
  p.add_argument("--save_prompt", metavar="OUT.npy", help="also write the top sources' weighted "
                 "average source prompt (SPoT's target init)")
  p.add_argument("--mix", type=_positive, default=1, help="how many top sources --save_prompt "
                 "mixes (default 1: the best source's prompt)")
  p.set_defaults(fn=_cmd_retrieve)

  _library_parser(sub)

  p = sub.add_parser("smoke", help="tiny end-to-end forward/decode run (no downloads)")
  p.add_argument("--checkpoint", help="t5x or HF checkpoint directory (default: random weights)")
  p.add_argument("--config", help="model config name (default: the checkpoint's own, or "
                                  "t5_1_1_test with random weights)")
  p.add_argument("--vocab", help="SentencePiece model (default: byte vocabulary)")
  p.add_argument("--prompt_length", type=_positive, default=20)
  p.add_argument("--beam_size", type=_positive, default=4)
  p.add_argument("--max_decode_len", type=_positive, default=16)
  p.set_defaults(fn=_cmd_smoke)
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  # --verbose is global and may follow the command: take it out before anything imports TF or jax.
  verbose = VERBOSE_FLAG in argv
  logs.configure(verbose=verbose)
  from spot_jax.gin_utils import split_gin_args
  bindings, rest = split_gin_args([a for a in argv if a != VERBOSE_FLAG])
  args = build_parser().parse_args(rest)
  args.verbose, args.gin_bindings = verbose, bindings
  prefix = f"spot-jax {args.command}:"
  try:
    args.fn(args)
  except Interrupted as e:
    print(f"{prefix} {e.message}", file=sys.stderr)
    return e.exit_code
  except SpotError as e:  # .message: gin appends "In call to configurable ..." lines to str(e)
    print(f"{prefix} error: {e.message}", file=sys.stderr)
    return e.exit_code
  except KeyboardInterrupt:  # Ctrl-C outside a training loop (which stops cleanly itself)
    print(f"{prefix} interrupted", file=sys.stderr)
    return 128 + signal.SIGINT
  except Exception as e:
    message = environment_error(e)
    if message is None or verbose:
      raise
    print(f"{prefix} error: {message} (--verbose for the traceback)", file=sys.stderr)
    return 2
  return 0



if __name__ == "__main__":
  sys.exit(main())
