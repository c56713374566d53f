"""kill -9 soak test: SIGKILL `spot-jax train` and `spot-jax study transfer` at chosen moments, resume
them, and compare what they wrote with an uninterrupted run.

Run from the repository root:

  python tools/soak_preempt.py --trials 10 [--seed 0] [--work DIR] [--json OUT.json] [--keep] [--quick]

Two workloads run through the real CLI (`python -m spot_jax.cli`, JAX_PLATFORMS=cpu) on the shipped
embedded model: `train` (a short source run: orbax checkpoints, exports, metrics.jsonl) and `study`
(a 2-source x 1-target transfer study: a prompt library and one result file per cell). Each runs
once uninterrupted: the reference. Every trial then takes the next workload (train, study, train,
...), starts it in a fresh directory, SIGKILLs its process group 1-3 times, rerunning the same
command after each kill, and lets the last run finish. Each kill targets one moment (a trial's
first kill takes the workload's kinds in turn, further kills pick one at random):

  random      a random time in the first 60 % of the reference's run after its start-up (the
              start-up ends when the run writes its first file)
  checkpoint  as soon as an orbax `<step>.orbax-checkpoint-tmp*` directory appears (a save under
              way)
  export      at the 1st-3rd file-system change under exports/ (tmp file, .npy, .json sidecar)
  library     at the 1st-6th change anywhere under the study's library/ (an add in progress)
  cell        0-1.5 s after a new cell result file appears (just after it, or in the next cell)

The directories are polled with os.scandir about every millisecond, so a targeted moment can be
missed (the run ends first, or the write is over before it is seen); what was seen at each kill
is recorded, and the summary counts targeted vs hit per kind.

A trial passes when the finished run matches the reference: train: every exports/*.npy
bit-identical and its .json sidecar equal, metrics.jsonl with each (step, keys) row once, in the
reference's order, with equal values (train/steps_per_s, a wall-clock rate, excepted), every
checkpoint step readable (its prompt restored through orbax and bit-identical to the reference's),
the same checkpoint steps, and no `*.orbax-checkpoint-tmp*` left; study: the library lists and
loads, its entries (arrays bit-identical, entry.json and sidecars equal) are the reference's, the
target embeddings are bit-identical, the cell files equal (their `seconds` excepted), results.json
and report.md equal. Leftover '.'-temporary files and a stale library index (which retrieval
ignores by design) are counted, not failed. Exit status 0 only if every trial passed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("JAX_PLATFORMS", "cpu")  # this process restores checkpoints for the checks

# Workload sizes: FULL takes about 30-60 s per uninterrupted run on 2 CPU cores, QUICK less.
SIZES = {
    "full": {"train": dict(steps=100, period=20, embedding=10, log=5, eval=32),
             "study": dict(source_steps=30, steps=20, embedding=10, eval=32)},
    "quick": {"train": dict(steps=40, period=10, embedding=5, log=5, eval=16),
              "study": dict(source_steps=10, steps=10, embedding=5, eval=16)},
}
KINDS = {"train": ("random", "checkpoint", "export"), "study": ("random", "library", "cell")}
MARKER = {"train": "run.json", "study": "study.json"}  # first file a run writes: start-up is over
ORBAX_TMP = "orbax-checkpoint-tmp"


def command(workload: str, out: Path, size: dict) -> list[str]:
  cli = [sys.executable, "-m", "spot_jax.cli"]
  if workload == "train":
    return cli + ["train", "--gin_file=embedded/source.gin",
                  "--gin.MIXTURE_OR_TASK_NAME='synthetic_nli_location_v2'",
                  f"--gin.MODEL_DIR='{out}'", f"--gin.train.num_train_steps={size['steps']}",
                  f"--gin.train.eval_period={size['period']}",
                  f"--gin.train.checkpoint_period={size['period']}",
                  f"--gin.train.task_embedding_step={size['embedding']}",
                  f"--gin.train.log_period={size['log']}",
                  f"--gin.train.num_eval_examples={size['eval']}", "--gin.train.progress=False"]
  return cli + ["study", "transfer", "--out", str(out), "--sources", "synthetic_nli_location_v2",
                "synthetic_sent_review_v2", "--targets", "synthetic_nli_cb_v2", "--seeds", "0",
                "--source_steps", str(size["source_steps"]), "--steps", str(size["steps"]),
                "--embedding_step", str(size["embedding"]), "--eval_examples", str(size["eval"])]


# ------------------------------------------------------------------------ running and killing
def snapshot(root: Path, recursive: bool) -> dict[str, tuple[int, int, int]]:
  """{relative path: (inode, mtime_ns, size)} of everything under `root` ('.'-names included)."""
  found, todo = {}, [root]
  while todo:
    directory = todo.pop()
    try:
      with os.scandir(directory) as it:
        for e in it:
          try:
            st = e.stat(follow_symlinks=False)
          except FileNotFoundError:  # renamed or removed while we looked
            continue
          found[os.path.relpath(e.path, root)] = (st.st_ino, st.st_mtime_ns, st.st_size)
          if recursive and e.is_dir(follow_symlinks=False):
            todo.append(Path(e.path))
    except (FileNotFoundError, NotADirectoryError):
      pass
  return found


def changes(before: dict, after: dict) -> list[str]:
  return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def run_once(cmd: list[str], out: Path, kind: str | None, rng: random.Random, ref: dict,
             log: Path) -> tuple[int | None, dict]:
  """Runs `cmd` until it exits (returns its rc) or until the moment `kind` comes (SIGKILLs its
  process group; rc None). The dict says what was targeted and seen."""
  watch = {"checkpoint": (out / "checkpoints", False), "export": (out / "exports", False),
           "library": (out / "library", True), "cell": (out / "cells", True)}.get(kind)
  events_needed = {"export": rng.randint(1, 3), "library": rng.randint(1, 6)}.get(kind, 1)
  # Random kills fall in the first 60 % after start-up: a resumed run (or one on a less busy
  # machine) ends sooner than the reference, and a later moment would often come after its end.
  at = (ref["startup_s"] + rng.uniform(0, 0.6) * (ref["seconds"] - ref["startup_s"])
        if kind == "random" else None)
  seen, events, kill_at = [], 0, None
  last = snapshot(*watch) if watch else {}
  before = snapshot(out, True)  # what earlier runs left: not this kill's doing
  with open(log, "a") as f:
    f.write(f"\n$ {' '.join(cmd)}  # kill target: {kind}\n")
    f.flush()
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    while proc.poll() is None:
      now = time.monotonic() - start
      if now > 10 * ref["seconds"] + 60:  # hung: the trial fails with rc -9
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return proc.returncode, {"target": kind, "hit": False, "timeout_s": round(now)}
      if watch and kill_at is None:
        current = snapshot(*watch)
        changed = changes(last, current)
        last = current
        if kind == "checkpoint":
          changed = [c for c in changed if ORBAX_TMP in c and c in current]
        elif kind == "cell":
          changed = [c for c in changed if c.endswith(".json") and "/." not in "/" + c
                     and c in current]
        if changed:
          events += 1
          seen += changed
          if events >= events_needed:
            kill_at = now + (rng.uniform(0, 1.5) if kind == "cell" else 0)
      elif kind == "random" and kill_at is None:
        kill_at = at
      if kill_at is not None and now >= kill_at:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        left = state_after_kill(out, before)
        # A checkpoint kill hits when the orbax temporary was still there: the write was cut.
        hit = bool(left["orbax_tmp"]) if kind == "checkpoint" else True
        return None, {"target": kind, "hit": hit, "t_s": round(now, 3), "seen": seen[-6:],
                      "after_kill": left}
      time.sleep(0.001 if watch else 0.02)
  return proc.returncode, {"target": kind, "hit": False, "seen": seen[-6:]}


def state_after_kill(out: Path, before: dict | None = None) -> dict:
  """What a kill left (paths new since the snapshot `before`, or of another inode): orbax tmp
  directories, '.'-temporaries (a write cut short), the metrics rows and the finished cells."""
  before = before or {}
  names = [n for n, v in snapshot(out, True).items() if before.get(n, (None,))[0] != v[0]]
  left = {"orbax_tmp": sorted(n for n in names if ORBAX_TMP in n.split("/")[-1]),
          "dot_tmp": sorted(n for n in names if "/." in "/" + n and ".tmp-" in n)}
  metrics = out / "metrics.jsonl"
  if metrics.exists():
    lines = metrics.read_text().splitlines()
    left["metrics_rows"] = len(lines)
  left["new_cells"] = sum(n.endswith(".json") and n.startswith("cells/") for n in names)
  return left


# ------------------------------------------------------------------------ comparing with the reference
def load_json(path: Path) -> object:
  return json.loads(path.read_text())


def same_arrays(a: Path, b: Path) -> bool:
  x, y = np.load(a), np.load(b)
  return x.dtype == y.dtype and np.array_equal(x, y)


def visible_files(root: Path, pattern: str) -> list[str]:
  return sorted(str(p.relative_to(root)) for p in root.glob(pattern)
                if not any(part.startswith(".") for part in p.relative_to(root).parts))


def checkpoint_prompts(model_dir: Path, scratch: Path) -> tuple[dict[int, np.ndarray], list]:
  """{step: prompt} of every numbered checkpoint directory, restored through orbax as
  `spot-jax export-prompt --step S` does; and the steps that could not be read."""
  from spot_jax.train.checkpointing import export_checkpoint_prompt
  prompts, unreadable = {}, []
  for name in sorted(os.listdir(model_dir / "checkpoints")):
    if name.isdigit():
      try:
        path = export_checkpoint_prompt(model_dir, scratch / f"ckpt{name}.npy", step=int(name))
        prompts[int(name)] = np.load(path)
      except Exception as e:  # any failure to restore counts as unreadable
        unreadable.append(f"{name}: {type(e).__name__}: {str(e)[:200]}")
  return prompts, unreadable


def compare_train(ref: Path, out: Path, ref_ckpts: dict) -> dict:
  problems = []
  exports = visible_files(ref / "exports", "*")
  if visible_files(out / "exports", "*") != exports:
    problems.append(f"exports {visible_files(out / 'exports', '*')} != {exports}")
  prompts_same = all((out / "exports" / n).exists() and (
      same_arrays(ref / "exports" / n, out / "exports" / n) if n.endswith(".npy")
      else load_json(ref / "exports" / n) == load_json(out / "exports" / n)) for n in exports)
  if not prompts_same:
    problems.append("an export differs from the reference")
  # metrics.jsonl: the same rows, each once, in the same order, with the same values.
  rows = lambda d: [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
  key = lambda r: (r["step"], tuple(sorted(r)))
  strip = lambda r: {k: v for k, v in r.items() if k != "train/steps_per_s"}
  ref_rows, out_rows = rows(ref), rows(out)
  keys = [key(r) for r in out_rows]
  duplicated = len(keys) - len(set(keys))
  missing = len(set(map(key, ref_rows)) - set(keys))
  metrics_ok = (keys == [key(r) for r in ref_rows]
                and [strip(r) for r in out_rows] == [strip(r) for r in ref_rows])
  if not metrics_ok:
    problems.append(f"metrics.jsonl: {len(out_rows)} rows vs {len(ref_rows)}, {duplicated} "
                    f"duplicated, {missing} missing, values equal: "
                    f"{[strip(r) for r in out_rows] == [strip(r) for r in ref_rows]}")
  scratch = Path(tempfile.mkdtemp(dir=out.parent))
  ckpts, unreadable = checkpoint_prompts(out, scratch)
  shutil.rmtree(scratch)
  if unreadable:
    problems.append(f"unreadable checkpoints: {unreadable}")
  if sorted(ckpts) != sorted(ref_ckpts) or not all(
      np.array_equal(ckpts[s], ref_ckpts[s]) for s in ckpts if s in ref_ckpts):
    prompts_same = False
    problems.append(f"checkpoint steps {sorted(ckpts)} (reference {sorted(ref_ckpts)}) or "
                    "their prompts differ")
  orbax_tmp = [n for n in os.listdir(out / "checkpoints") if ORBAX_TMP in n]
  if orbax_tmp:
    problems.append(f"orbax temporaries left: {orbax_tmp}")
  for name in ("run.json", "config.gin"):  # config.gin names MODEL_DIR: the only difference
    if (ref / name).read_text().replace(str(ref), str(out)) != (out / name).read_text():
      problems.append(f"{name} differs")
  return {"prompts_identical": prompts_same, "metrics_ok": metrics_ok,
          "unreadable_checkpoints": len(unreadable), "orbax_tmp_left": len(orbax_tmp),
          "unreadable_libraries": 0, "problems": problems}


def compare_study(ref: Path, out: Path) -> dict:
  from spot_jax.library.store import PromptLibrary
  problems, prompts_same, unreadable, stale = [], True, 0, False

  def entries(root: Path) -> tuple[dict, bool, object]:
    """({(task, run): {file: array or dict}}, index current?, library.json) of OUT/library,
    read through PromptLibrary: list, load every prompt and sidecar, open the index."""
    library = PromptLibrary(root / "library")
    found = {}
    for e in library.list():
      found[(e.task, e.run)] = {"entry.json": e.metadata, **{
          f"{k}.npy": e.load(k) for k in e.kinds}, **{f"{k}.json": e.sidecar(k) for k in e.kinds}}
    library.index()  # reads LIB/index (or rebuilds it in memory when stale)
    return found, library.index_is_current(), load_json(root / "library" / "library.json")

  reference = entries(ref)
  try:
    found = entries(out)
  except Exception as e:  # a library that does not list, load or index is unreadable
    unreadable, found, prompts_same = 1, None, False
    problems.append(f"library unreadable: {type(e).__name__}: {e}")
  if found is not None:
    stale = not found[1]
    same = lambda a, b: (np.array_equal(a, b) and a.dtype == b.dtype if isinstance(a, np.ndarray)
                         else a == b)
    if found[2] != reference[2] or found[0].keys() != reference[0].keys() or not all(
        found[0][k].keys() == v.keys() and all(same(x, found[0][k][f]) for f, x in v.items())
        for k, v in reference[0].items()):
      prompts_same = False
      problems.append("library entries differ from the reference")
  targets = visible_files(ref / "target_embeddings", "*/*.npy")
  if visible_files(out / "target_embeddings", "*/*.npy") != targets or not all(
      same_arrays(ref / "target_embeddings" / t, out / "target_embeddings" / t) for t in targets):
    prompts_same = False
    problems.append("target embeddings differ")
  cells = visible_files(ref / "cells", "*/*/*.json")
  strip = lambda p: {k: v for k, v in load_json(p).items() if k != "seconds"}
  if visible_files(out / "cells", "*/*/*.json") != cells or not all(
      strip(ref / "cells" / c) == strip(out / "cells" / c) for c in cells):
    problems.append("cell results differ")
  for name in ("results.json", "report.md", "study.json"):
    if not (out / name).exists() or (ref / name).read_text() != (out / name).read_text():
      problems.append(f"{name} missing or different")
  return {"prompts_identical": prompts_same, "metrics_ok": None, "unreadable_checkpoints": 0,
          "orbax_tmp_left": 0, "unreadable_libraries": unreadable, "stale_index": stale,
          "problems": problems}


# ------------------------------------------------------------------------ main
def positive(value: str) -> int:
  if not value.isdigit() or int(value) < 1:
    raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
  return int(value)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--trials", type=positive, default=10)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--work", help="working directory (default: a new temporary one)")
  parser.add_argument("--json", help="write the summary record here")
  parser.add_argument("--keep", action="store_true", help="keep the run directories")
  parser.add_argument("--quick", action="store_true", help="smaller workloads (for the test)")
  args = parser.parse_args()
  rng = random.Random(args.seed)
  size = SIZES["quick" if args.quick else "full"]
  work = Path(args.work or tempfile.mkdtemp(prefix="soak_preempt_")).resolve()
  work.mkdir(parents=True, exist_ok=True)
  say = lambda msg: print(msg, file=sys.stderr, flush=True)
  start = time.monotonic()
  workloads = [("train", "study")[i % 2] for i in range(args.trials)]

  refs = {}  # the uninterrupted runs
  for w in sorted(set(workloads), key=workloads.index):
    out, log = work / f"reference_{w}", work / f"reference_{w}.log"
    shutil.rmtree(out, ignore_errors=True)
    t0, startup = time.monotonic(), None
    with open(log, "w") as f:
      proc = subprocess.Popen(command(w, out, size[w]), cwd=REPO, stdout=f,
                              stderr=subprocess.STDOUT, env={**os.environ, "JAX_PLATFORMS": "cpu"})
      while proc.poll() is None:  # start-up ends when the run writes its first file
        if startup is None and (out / MARKER[w]).exists():
          startup = time.monotonic() - t0
        time.sleep(0.01)
    seconds = time.monotonic() - t0
    if proc.returncode:
      say(f"reference {w} failed (rc {proc.returncode}); see {log}")
      return 1
    refs[w] = {"seconds": round(seconds, 1), "startup_s": round(startup or 0, 1), "dir": out}
    if w == "train":
      scratch = Path(tempfile.mkdtemp(dir=work))
      refs[w]["ckpts"], bad = checkpoint_prompts(out, scratch)
      shutil.rmtree(scratch)
      assert not bad, bad
    say(f"reference {w}: {seconds:.1f} s (start-up {refs[w]['startup_s']} s)")

  results = []
  for i, w in enumerate(workloads):
    out, log = work / f"trial{i:02d}_{w}", work / f"trial{i:02d}_{w}.log"
    shutil.rmtree(out, ignore_errors=True)
    cmd = command(w, out, size[w])
    kills, rc, t0 = [], None, time.monotonic()
    # The first kill cycles through the workload's kinds (every kind is aimed at when there are
    # at least 6 trials), the 0-2 further kills pick theirs at random; None: run to the end.
    first = KINDS[w][(i // 2) % len(KINDS[w])]
    targets = [first] + [rng.choice(KINDS[w]) for _ in range(rng.randint(0, 2))]
    for kind in targets + [None]:
      rc, kill = run_once(cmd, out, kind, rng, refs[w], log)
      if kind:
        kills.append(kill)
      if rc is not None:  # the run finished (a later target, if any, never came)
        break
    result = {"trial": i, "workload": w, "kills": kills, "rc": rc,
              "seconds": round(time.monotonic() - t0, 1)}
    if rc != 0:
      result.update(passed=False, problems=[f"the last run exited with rc {rc}; see {log}"],
                    prompts_identical=False, metrics_ok=False if w == "train" else None,
                    unreadable_checkpoints=0, orbax_tmp_left=0, unreadable_libraries=0)
    else:
      try:
        result.update(compare_train(refs[w]["dir"], out, refs[w]["ckpts"]) if w == "train"
                      else compare_study(refs[w]["dir"], out))
      except Exception as e:  # a file the comparison needs is missing or unreadable
        result.update(problems=[f"comparison failed: {type(e).__name__}: {e}"],
                      prompts_identical=False, metrics_ok=False if w == "train" else None,
                      unreadable_checkpoints=0, orbax_tmp_left=0, unreadable_libraries=0)
      result["dot_tmp_left"] = len(state_after_kill(out)["dot_tmp"])
      result["passed"] = not result["problems"]
    results.append(result)
    if not args.keep and result["passed"]:
      shutil.rmtree(out)
    shown = ", ".join(f"{k['target']}{'' if k['hit'] else ' (missed)'}" for k in kills)
    say(f"trial {i + 1}/{args.trials} {w}: {len(kills)} kill(s) [{shown}] -> "
        f"{'PASS' if result['passed'] else 'FAIL: ' + '; '.join(result['problems'])} "
        f"({result['seconds']} s)")

  kinds = sorted({k for ks in KINDS.values() for k in ks})
  every = [k for r in results for k in r["kills"]]
  summary = {
      "trials": len(results), "passed": sum(r["passed"] for r in results),
      "prompts_identical": sum(r["prompts_identical"] for r in results),
      "metrics_ok": f"{sum(bool(r['metrics_ok']) for r in results if r['workload'] == 'train')}"
                    f"/{workloads.count('train')}",
      "unreadable_checkpoints": sum(r["unreadable_checkpoints"] for r in results),
      "unreadable_libraries": sum(r["unreadable_libraries"] for r in results),
      "orbax_tmp_left": sum(r["orbax_tmp_left"] for r in results),
      "dot_tmp_left": sum(r.get("dot_tmp_left", 0) for r in results),
      "stale_library_index": sum(bool(r.get("stale_index")) for r in results),
      "kills": len(every),
      # per kind: kills aimed at it, kills that hit it, and kills that cut a write short (left
      # an orbax temporary or a '.'-temporary file behind)
      "kill_moments": {k: {"targeted": sum(x["target"] == k for x in every),
                           "hit": sum(x["target"] == k and x["hit"] for x in every),
                           "cut_a_write": sum(x["target"] == k and x["hit"] and bool(
                               x["after_kill"]["orbax_tmp"] or x["after_kill"]["dot_tmp"])
                                              for x in every)}
                       for k in kinds},
      "reference_s": {w: {"seconds": r["seconds"], "startup_s": r["startup_s"]}
                      for w, r in refs.items()},
      "sizes": {w: size[w] for w in refs}, "seed": args.seed, "work": str(work),
      "wall_s": round(time.monotonic() - start, 1), "results": results}
  brief = {k: v for k, v in summary.items() if k != "results"}
  print(json.dumps(brief, indent=1))
  if args.json:
    Path(args.json).write_text(json.dumps(summary, indent=1, default=str) + "\n")
  if not args.keep and all(r["passed"] for r in results) and not args.work:
    shutil.rmtree(work)  # else the references, the failed trials' directories and all logs stay
  return 0 if summary["passed"] == summary["trials"] else 1


if __name__ == "__main__":
  sys.exit(main())
