"""`spot-jax` command line. Each subcommand is a thin wrapper over a library function.

User errors (SpotError) are printed as one line without a traceback and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from spot_jax import __version__
from spot_jax.errors import SpotError


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


def _cmd_gin(args: argparse.Namespace) -> None:
  """train / eval / infer: parse the gin files and overrides, then call the bound function."""
  import importlib
  import gin
  from spot_jax import gin_utils
  for module in args.module:
    try:
      importlib.import_module(module)
    except ImportError as e:
      raise SpotError(f"cannot import task module {module!r} ({e}); check --module / PYTHONPATH")
  name, required = _GIN_COMMANDS[args.command]
  gin_utils.parse(args.gin_file, args.gin_bindings, required)
  if args.command == "train":
    model_dir = gin.query_parameter("MODEL_DIR/gin.macro.value")
    gin_utils.save_config(model_dir, "config.gin", gin.config_str())
  fn = gin.get_configurable(name)
  fn()
  if args.command == "train":
    gin_utils.save_config(model_dir, "operative_config.gin", gin.operative_config_str())


def _cmd_export_prompt(args: argparse.Namespace) -> None:
  from spot_jax.train.checkpointing import export_checkpoint_prompt
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


def _quiet() -> None:
  """Long study/demo runs print their own progress; keep TensorFlow's and seqio's advice out of it."""
  import os
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  from absl import logging
  logging.set_verbosity(logging.ERROR)


def _cmd_demo(args: argparse.Namespace) -> None:
  _quiet()
  from spot_jax.embedded import demo
  demo.run_demo(args.out, target=args.target)


def _protocol(args: argparse.Namespace):
  from spot_jax.embedded import protocol
  return protocol.study_protocol(args.steps, embedding_step=args.embedding_step,
                                 num_eval_examples=args.eval_examples)


def _cmd_study(args: argparse.Namespace) -> None:
  _quiet()
  from spot_jax.embedded import demo, tasks
  demo.study(args.out, sources=args.sources or tasks.SOURCE_TASKS,
             targets=args.targets or tasks.TARGET_TASKS, seeds=args.seeds,
             protocol=_protocol(args), source_steps=args.source_steps, top_k=args.top_k,
             metric=args.metric, mixture=args.mixture, embedding_seeds=args.embedding_seeds,
             reverse=args.reverse)
  print(f"report: {args.out}/report.md")


def _cmd_embed(args: argparse.Namespace) -> None:
  _quiet()
  from spot_jax.embedded import demo, tasks
  from spot_jax.peft import save_prompt_file
  (task,) = tasks.resolve([args.task])
  tuner = demo.embedded_tuner(_protocol(args))
  run = tuner.tune(task, seed=args.seed, steps=args.embedding_step)
  save_prompt_file(args.output, run.task_embedding)
  print(f"wrote {args.output}: task embedding of {task} after {args.embedding_step} steps")


def _cmd_retrieve(args: argparse.Namespace) -> None:
  from spot_jax.library.store import PromptLibrary
  from spot_jax.peft import load_prompt_file
  from spot_jax.study.transfer import rank_sources
  library = PromptLibrary(args.library)
  ranking = rank_sources(library, {args.run: load_prompt_file(args.query)}, args.metric,
                         center=not args.no_center)
  for i, (task, score) in enumerate(ranking[:args.k], 1):
    print(f"{i:3d}. {task:<36s} {score:.4f}")


def build_parser() -> argparse.ArgumentParser:
  from spot_jax.checkpoints import FORMATS
  from spot_jax.embedded import protocol, tasks
  parser = argparse.ArgumentParser(
      prog="spot-jax", description="Soft prompt tuning and transfer (SPoT) on a frozen T5.")
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
                             ("infer", "decode a task split with a prompt (gin-configured)")):
    p = sub.add_parser(command, help=help_text, description=(
        f"{help_text}. Compose gin files t5x-style, e.g. spot-jax {command} "
        "--gin_file=models/t5_1_1_base.gin --gin_file=prompts/sampled_vocab.gin "
        f"--gin_file=runs/{'prompt_finetune' if command == 'train' else command}.gin "
        "--gin.MIXTURE_OR_TASK_NAME=\"'glue_rte_v2'\" --gin.MODEL_DIR=\"'/tmp/rte'\""))
    p.add_argument("--gin_file", action="append", default=[],
                   help="gin file (searched in the working directory, then gin_configs/); repeatable")
    p.add_argument("--module", action="append", default=["tasks"],
                   help="module to import that registers seqio tasks (default: tasks); repeatable")
    p.set_defaults(fn=_cmd_gin)

  p = sub.add_parser("tasks", help="list the seqio catalog: name, family, source, metrics, data here")
  p.add_argument("--family", help="only this family, e.g. glue")
  p.add_argument("--json", action="store_true", help="machine-readable output")
  p.set_defaults(fn=_cmd_tasks)

  p = sub.add_parser("export-prompt", help="write the prompt of a training checkpoint as .npy + .json")
  p.add_argument("model_dir", metavar="MODEL_DIR")
  p.add_argument("output", metavar="OUT.npy")
  p.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
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
    p.add_argument("--steps", type=int, default=defaults.steps, help="target prompt-tuning steps")
    p.add_argument("--embedding_step", type=int, default=defaults.embedding_step, help="task "
                   "embedding = prompt after this many steps (paper: 10K)")
    p.add_argument("--eval_examples", type=int, default=defaults.num_eval_examples,
                   help="validation examples per check")

  study = sub.add_parser("study", help="SPoT studies on the embedded universe")
  study_sub = study.add_subparsers(dest="study", metavar="STUDY", required=True)
  p = study_sub.add_parser("transfer", help="source x target x seed grid, resumable; tables, "
                           "figures and retrieval in OUT/report.md")
  p.add_argument("--out", required=True)
  p.add_argument("--sources", nargs="+", help="default: all 16 embedded sources")
  p.add_argument("--targets", nargs="+", help="default: all 10 embedded targets")
  p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  p.add_argument("--source_steps", type=int, default=protocol.DEMO_SOURCE_STEPS)
  p.add_argument("--top_k", type=int, default=3)
  p.add_argument("--metric", default="token_cosine", choices=("token_cosine", "avg_cosine"))
  p.add_argument("--mixture", action="store_true", help="also retrieve by top-k multi-task "
                 "mixture (a prompt tuned on the top-k sources + the target initialises it)")
  p.add_argument("--embedding_seeds", type=int, nargs="+", default=[0], help="embed every task "
                 "from the init of each seed and average the similarities (paper: one seed)")
  p.add_argument("--reverse", action="store_true", help="run the grid's cells last to first: "
                 "start a second process on the same --out with it to share the work")
  protocol_flags(p)
  p.set_defaults(fn=_cmd_study)

  p = sub.add_parser("embed", help="task embedding of an embedded task: its prompt after E steps")
  p.add_argument("task")
  p.add_argument("output", metavar="OUT.npy")
  p.add_argument("--seed", type=int, default=0)
  protocol_flags(p)
  p.set_defaults(fn=_cmd_embed)

  p = sub.add_parser("retrieve", help="rank a library's sources by similarity to a task embedding")
  p.add_argument("library", metavar="LIBRARY_DIR")
  p.add_argument("query", metavar="EMBEDDING.npy")
  p.add_argument("--metric", default="token_cosine", choices=("token_cosine", "avg_cosine"))
  p.add_argument("-k", type=int, default=10)
  p.add_argument("--run", help="compare with this run's embeddings only, e.g. seed0 for a query "
                 "embedded with --seed 0 (default: every run, averaged per task)")
  p.add_argument("--no_center", action="store_true",
                 help="compare raw embeddings (default: subtract the library's mean embedding)")
  p.set_defaults(fn=_cmd_retrieve)

  p = sub.add_parser("smoke", help="tiny end-to-end forward/decode run (no downloads)")
  p.add_argument("--checkpoint", help="t5x or HF checkpoint directory (default: random weights)")
  p.add_argument("--config", help="model config name (default: the checkpoint's own, or "
                                  "t5_1_1_test with random weights)")
  p.add_argument("--vocab", help="SentencePiece model (default: byte vocabulary)")
  p.add_argument("--prompt_length", type=int, default=20)
  p.add_argument("--beam_size", type=int, default=4)
  p.add_argument("--max_decode_len", type=int, default=16)
  p.set_defaults(fn=_cmd_smoke)
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  from spot_jax.gin_utils import split_gin_args
  bindings, rest = split_gin_args(sys.argv[1:] if argv is None else argv)
  args = build_parser().parse_args(rest)
  args.gin_bindings = bindings
  try:
    args.fn(args)
  except SpotError as e:  # .message: gin appends "In call to configurable ..." lines to str(e)
    print(f"spot-jax {args.command}: error: {e.message}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
