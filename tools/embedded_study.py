"""Issue-5 numbers on the embedded universe with the shipped model, as resumable grids of runs
(spot_jax.embedded.baselines).

  python tools/embedded_study.py sources --out /tmp/embedded_study   # every source vs its trivial baseline
  python tools/embedded_study.py spot --out /tmp/embedded_study --seeds 0 1 2   # Table 1 analogue

`sources`: vanilla prompt tuning on each source task vs its trivial baseline. `spot`: a prompt tuned
on the mixture of all sources initialises each target, vs vanilla prompt tuning, per seed. Finished
runs are kept in OUT/<grid>/ and never recomputed; a second process started with `--reverse` on the
same OUT works through the cells from the other end.
"""

from __future__ import annotations

import argparse
import json
import sys

from etils import epath

from spot_jax.embedded import baselines


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("what", choices=("sources", "spot"))
  parser.add_argument("--out", default="/tmp/embedded_study")
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--source-steps", type=int, default=600)
  parser.add_argument("--mixture-steps", type=int, default=1500)
  parser.add_argument("--target-steps", type=int, default=300)
  parser.add_argument("--reverse", action="store_true",
                      help="run the cells last to first: a second process on the same OUT")
  args = parser.parse_args(argv)
  if args.what == "sources":
    summary = baselines.source_margins(args.out, steps=args.source_steps, reverse=args.reverse)
  else:
    summary = baselines.generic_spot(args.out, seeds=args.seeds, target_steps=args.target_steps,
                                     mixture_steps=args.mixture_steps, reverse=args.reverse)
  (epath.Path(args.out) / f"{args.what}_summary.json").write_text(json.dumps(summary, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
