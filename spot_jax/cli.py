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


def build_parser() -> argparse.ArgumentParser:
  from spot_jax.checkpoints import FORMATS
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
  args = build_parser().parse_args(argv)
  try:
    args.fn(args)
  except SpotError as e:
    print(f"spot-jax {args.command}: error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
