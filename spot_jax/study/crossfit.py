"""The CrossFit PEFT study (seed 002, following CrossFit, Ye et al. 2021) as resumable cells.

For each tuning method (prompt, prefix, adapter, full; spot_jax.peft.trees) and upstream strategy:
  none  the method's default init (the frozen model for full tuning, zero-up adapters, ...);
  mtl   the trainable tree tuned on an examples-proportional mixture of the upstream tasks'
        train splits, validated on their dev splits;
  maml  the same tree meta-trained (spot_jax.train.meta: second-order MAML by default; FOMAML,
        Reptile) with support batches from an upstream task's train split and query batches
        from its dev split.
Upstream keeps its best-dev and its last tree; the seed leaves open which one transfers, so both
do: downstream upstream names "mtl-best", "mtl-last", "maml-best", "maml-last".

Downstream, every (upstream, method, target, k-shot seed, learning rate, batch size) is one cell:
tune for `steps` steps, evaluate on the k-shot dev split every `eval_every`, keep the best-dev tree,
score it on test. crossfit_report selects (lr, batch, step) by dev per (upstream, method, target,
seed) and computes ARG against full tuning without upstream.

Layout of OUT/: upstream/<upstream>/<method>/{result.json, best.npz, last.npz};
cells/<upstream>/<method>/<target>/seed<S>_lr<LR>_b<B>.json; results.csv, selected.csv,
report.md, arg.png. A cell's file exists only when the cell is finished (atomic writes); cells are
claimed (spot_jax.study.grid) so that several processes can share OUT/; rerunning resumes.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import sys
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils import epath

from spot_jax import validation
from spot_jax.data.pipeline import converted_dataset, train_batches
from spot_jax.errors import SpotError
from spot_jax.io import atomic_write
from spot_jax.model.config import T5Config
from spot_jax.peft import trees
from spot_jax.study import grid
from spot_jax.train import meta, multi, step as train_step_lib
from spot_jax.train.evaluation import Validator, score_of
from spot_jax.train.state import TrainState

UPSTREAMS = ("none", "mtl", "maml")
CHECKPOINTS = ("best", "last")
BASELINE = ("none", "full")  # ARG's default baseline: full-model tuning without upstream


class CrossFitError(SpotError):
  """A study that cannot run: unknown upstream or method, empty grid, missing upstream tree."""


@dataclasses.dataclass(frozen=True)
class Universe:
  """Where the study's tasks come from: the embedded universe or the CrossFit Gym."""
  name: str
  targets: tuple[str, ...]                 # short target names (the cells' "target")
  target_task: Callable[[str, int], str]   # (target, k-shot seed) -> registered task
  upstream_tasks: tuple[str, ...]          # registered k-shot upstream tasks (MAML samples them)
  upstream_mixture: str                    # examples-proportional mixture of upstream_tasks
  feature_lengths: Callable[[str], Mapping[str, int]]
  seeds: tuple[int, ...] = (13, 21, 42, 87, 100)
  upstream_split: str = "train"            # what MTL trains on (CrossFit's Gym: train_dev)
  dev_mixture: Optional[str] = None        # upstream selection on its validation split (None:
                                           # upstream_mixture's: the upstream tasks' dev sets)


def gym_universe() -> Universe:
  """The real CrossFit Gym (tasks/crossfit.py): the seed's 10 targets, the classification
  partition's 45 upstream tasks (train + dev files, every seed, as CrossFit's multi-task loader
  reads them) and its 10 dev tasks for upstream selection. Needs the Gym TSVs under the data dir."""
  from tasks import crossfit as gym
  return Universe(name="crossfit_gym", targets=tuple(gym.ADL_TARGETS),
                  target_task=lambda t, s: gym.task_name(t, gym.K, s),
                  upstream_tasks=tuple(gym.upstream_task_names()),
                  upstream_mixture=gym.UPSTREAM_MIXTURE, feature_lengths=lambda _: GYM_LENGTHS,
                  seeds=gym.SEEDS, upstream_split=gym.UPSTREAM_SPLIT, dev_mixture=gym.DEV_MIXTURE)


GYM_LENGTHS = {"inputs": 512, "targets": 64}  # CrossFit's max_input_length / max_output_length


@dataclasses.dataclass(frozen=True)
class Downstream:
  """The downstream grid (seed §4.4): lr per method x batch {4, 8}, 1000 steps, dev every 100."""
  learning_rates: Mapping[str, tuple[float, ...]]
  batch_sizes: tuple[int, ...] = (4, 8)
  steps: int = 1000
  eval_every: int = 100
  eval_batch_size: int = 64
  num_test_examples: Optional[int] = None  # None: the whole test split


@dataclasses.dataclass(frozen=True)
class Upstream:
  """Upstream learning per method: MTL with AdamW at `learning_rates[method]` and batch
  `batch_size`; MAML-family with `meta[method]` (algorithm, inner SGD lr and batch, tasks per
  step, outer AdamW lr). `steps` steps each; the dev mixture is scored every `eval_every`."""
  learning_rates: Mapping[str, float]
  meta: Mapping[str, meta.MetaConfig]
  steps: int = 1000
  batch_size: int = 32
  eval_every: int = 250
  num_dev_examples: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class Study:
  methods: Mapping[str, trees.Method]       # name -> shape of its trainable tree
  downstream: Downstream
  upstream: Upstream
  upstreams: tuple[str, ...] = UPSTREAMS
  targets: Optional[tuple[str, ...]] = None  # default: the universe's
  seeds: Optional[tuple[int, ...]] = None    # default: the universe's
  checkpoints: tuple[str, ...] = CHECKPOINTS  # which upstream trees transfer

  def __post_init__(self):
    unknown = [u for u in self.upstreams if u not in UPSTREAMS]
    if unknown:
      raise CrossFitError(f"unknown upstream {', '.join(unknown)}; choose from {', '.join(UPSTREAMS)}")
    missing = [m for m in self.methods if m not in self.downstream.learning_rates]
    if missing:
      raise CrossFitError(f"no downstream learning rates for method(s) {', '.join(missing)}")
    bad = [c for c in self.checkpoints if c not in CHECKPOINTS]
    if bad:
      raise CrossFitError(f"unknown upstream checkpoint {', '.join(bad)}; choose best and/or last")


@dataclasses.dataclass(frozen=True)
class Presets:
  """A model's defaults: method shapes, downstream learning rates per method, upstream settings."""
  methods: Mapping[str, trees.Method]
  learning_rates: Mapping[str, tuple[float, ...]]
  upstream: Upstream


def build_study(presets: Presets, *, upstreams: Sequence[str] = UPSTREAMS,
                methods: Optional[Sequence[str]] = None, targets: Optional[Sequence[str]] = None,
                seeds: Optional[Sequence[int]] = None, steps: int = 1000, eval_every: int = 100,
                batch_sizes: Sequence[int] = (4, 8),
                learning_rates: Optional[Mapping[str, Sequence[float]]] = None,
                upstream_steps: Optional[int] = None,
                checkpoints: Sequence[str] = CHECKPOINTS) -> Study:
  """A Study from `presets` with the grid's axes chosen (defaults: the seed's grid shape);
  `learning_rates` replaces the lists of the methods it names ("*": every method's)."""
  validation.check_positive({"steps": steps, "eval_every": eval_every,
                             **{f"batch_sizes[{i}]": b for i, b in enumerate(batch_sizes)}})
  validation.check_optional_positive({"upstream_steps": upstream_steps})
  validation.check_finite({f"learning_rates[{m}]": r for m, rates in (learning_rates or {}).items()
                           for r in rates})
  if seeds is not None and len(set(seeds)) != len(seeds):
    raise CrossFitError(f"seeds must not repeat, got {list(seeds)}")
  methods = tuple(methods or presets.methods)
  unknown = [m for m in methods if m not in presets.methods]
  if unknown:
    raise CrossFitError(f"unknown method(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(presets.methods)}")
  upstream = presets.upstream
  if upstream_steps is not None:
    upstream = dataclasses.replace(upstream, steps=upstream_steps,
                                   eval_every=max(1, upstream_steps // 4))
  given = dict(learning_rates or {})
  rates = {m: tuple(given.get(m, given.get("*", presets.learning_rates[m]))) for m in methods}
  return Study(methods={m: presets.methods[m] for m in methods},
               downstream=Downstream(learning_rates=rates, batch_sizes=tuple(batch_sizes),
                                     steps=steps, eval_every=eval_every),
               upstream=upstream, upstreams=tuple(upstreams),
               targets=tuple(targets) if targets else None, seeds=tuple(seeds) if seeds else None,
               checkpoints=tuple(checkpoints))


def _say(message: str) -> None:
  print(f"spot-jax study crossfit: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ cells


@dataclasses.dataclass(frozen=True)
class UpstreamCell:
  upstream: str  # mtl | maml
  method: str

  @property
  def key(self) -> str:
    return f"upstream/{self.upstream}/{self.method}/result.json"

  def fields(self) -> dict[str, Any]:
    return {"upstream": self.upstream, "method": self.method}

  def tree_path(self, out: epath.Path, checkpoint: str) -> epath.Path:
    return out / "upstream" / self.upstream / self.method / f"{checkpoint}.npz"


@dataclasses.dataclass(frozen=True)
class DownstreamCell:
  upstream: str  # none | mtl-best | mtl-last | maml-best | maml-last
  method: str
  target: str
  seed: int
  learning_rate: float
  batch_size: int

  @property
  def key(self) -> str:
    return (f"cells/{self.upstream}/{self.method}/{self.target}/"
            f"seed{self.seed}_lr{self.learning_rate:g}_b{self.batch_size}.json")

  def fields(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @property
  def source(self) -> Optional[UpstreamCell]:
    """The upstream cell whose tree this cell starts from (None: no upstream)."""
    if self.upstream == "none":
      return None
    return UpstreamCell(self.upstream.split("-")[0], self.method)


def downstream_cells(study: Study, universe: Universe) -> list[DownstreamCell]:
  """Every downstream cell, method-major so each method's runs share compiled steps."""
  targets = study_targets(study, universe)
  seeds = study.seeds or universe.seeds
  upstreams = [u if u == "none" else f"{u}-{c}" for u in study.upstreams
               for c in (("",) if u == "none" else study.checkpoints)]
  return [DownstreamCell(u, m, t, s, lr, b) for m in study.methods for u in upstreams
          for t in targets for s in seeds for lr in study.downstream.learning_rates[m]
          for b in study.downstream.batch_sizes]


# ------------------------------------------------------------------------------- tree files


def save_tree(path: epath.Path, tree: Mapping) -> None:
  """A trainable tree as .npz of '/'-joined names, written atomically."""
  flat = flax.traverse_util.flatten_dict(jax.device_get(dict(tree)), sep="/")
  buf = io.BytesIO()
  np.savez(buf, **{k: np.asarray(v, np.float32) for k, v in flat.items()})
  atomic_write(path, buf.getvalue())


def load_tree(path: epath.Path) -> dict[str, Any]:
  if not path.exists():
    raise CrossFitError(f"upstream tree {path} does not exist; run the upstream cells first")
  with np.load(io.BytesIO(path.read_bytes())) as data:
    flat = {k: jnp.asarray(data[k]) for k in data.files}
  return flax.traverse_util.unflatten_dict(flat, sep="/")


# ------------------------------------------------------------------------------------ tuning


class _DevTracker:
  """One run's dev scores and best-dev tree, fed at each evaluation step (tune, tune_group and
  meta_train share it)."""

  def __init__(self, runner: "Runner", dev: tuple[str, Optional[int]], loss: str, what: str):
    self.runner, self.dev, self.loss, self.what = runner, dev, loss, what
    self.scores: dict[int, float] = {}
    self.best, self.best_score = None, -np.inf

  def observe(self, step: int, loss_value: float, trainable: Mapping) -> None:
    """Checks the loss is finite and scores `trainable` on the validation split of dev[0]."""
    if not np.isfinite(loss_value):
      raise CrossFitError(f"{self.what}: {self.loss} {loss_value} at step {step}; lower the "
                          "learning rate")
    self.scores[step] = self.runner.score(self.dev[0], "validation", trainable, self.dev[1])
    if self.scores[step] > self.best_score:
      self.best, self.best_score = jax.device_get(trainable), self.scores[step]

  def result(self, last: dict) -> tuple[dict, dict, dict[int, float]]:
    """(best-dev tree, last tree, {step: dev score}); the last tree when every score is NaN."""
    return (last if self.best is None else self.best), last, self.scores


class Runner:
  """Runs cells over one frozen model; compiled steps and validators are built once and shared."""

  # One optimizer object for every learning rate: the rate lives in the optimizer state
  # (inject_hyperparams), so runs with different rates share one compiled step.
  optimizer = optax.inject_hyperparams(optax.adamw)(learning_rate=1.0, weight_decay=0.0)

  def __init__(self, config: T5Config, frozen, universe: Universe, study: Study, *,
               runs_per_step: Optional[int] = 1):
    self.config = config.replace(dropout_rate=0.0)
    self.frozen = frozen
    self.universe = universe
    self.study = study
    self.step_fn = train_step_lib.jit_train_step(self.config, self.optimizer)
    self.multi_step_fn = multi.jit_multi_train_step(self.config, self.optimizer)
    self.runs_per_step = runs_per_step  # None: spot_jax.train.multi.runs_per_step's measured rule
    self.frozen_params = trees.count_params(frozen)
    self._validators: dict[tuple[str, str], Validator] = {}
    self._computed: dict[DownstreamCell, dict] = {}  # group members' results, not yet written

  def init(self, method: str, seed: int) -> dict:
    return trees.init_trainable(self.study.methods[method], self.config, self.frozen,
                                jax.random.PRNGKey(seed))

  def state(self, trainable: Mapping, learning_rate: float, seed: int) -> TrainState:
    state = TrainState.create(dict(trainable), self.optimizer, seed)
    state.opt_state.hyperparams["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
    return state

  def score(self, task: str, split: str, trainable: Mapping, num_examples: Optional[int]) -> float:
    key = (task, split)
    if key not in self._validators:
      self._validators[key] = Validator(
          task, config=self.config, feature_lengths=self.universe.feature_lengths(task), split=split,
          batch_size=self.study.downstream.eval_batch_size, num_examples=num_examples)
    return score_of(self._validators[key](self.frozen, trees.materialize(trainable)))

  def tune(self, trainable: Mapping, task: str, *, learning_rate: float, batch_size: int,
           steps: int, eval_every: int, seed: int, split: str = "train",
           dev_task: Optional[str] = None, dev_examples: Optional[int] = None
           ) -> tuple[dict, dict, dict[int, float]]:
    """(best-dev tree, last tree, {step: dev score}) of training on `task`'s `split`; dev is the
    validation split of `dev_task` (default: `task`)."""
    batches = train_batches(task, split=split, feature_lengths=self.universe.feature_lengths(task),
                            global_batch_size=batch_size, seed=seed)
    return self._loop(self.state(trainable, learning_rate, seed),
                      lambda state: self.step_fn(state, self.frozen, next(batches)),
                      steps=steps, eval_every=eval_every, loss="loss",
                      dev=(dev_task or task, dev_examples), what=f"{task} at lr {learning_rate}")

  def tune_group(self, trainables: Sequence[Mapping], tasks: Sequence[str], *,
                 learning_rates: Sequence[float], seeds: Sequence[int], batch_size: int,
                 steps: int, eval_every: int) -> list[tuple[dict, dict, dict[int, float]]]:
    """`tune` of K runs (run k: trainables[k] on tasks[k]'s train split at learning_rates[k]
    with data seed seeds[k]) advanced together by one vmapped step (spot_jax.train.multi); each
    run's batches, dev scores and best tree are its own, as `tune` would give them."""
    batches = [train_batches(task, split="train", feature_lengths=self.universe.feature_lengths(task),
                             global_batch_size=batch_size, seed=seed)
               for task, seed in zip(tasks, seeds)]
    states = multi.create_states([dict(t) for t in trainables], self.optimizer, seeds=seeds,
                                 learning_rates=learning_rates)
    runs = range(len(tasks))
    trackers = [_DevTracker(self, (task, None), "loss", f"{task} at lr {lr}")
                for task, lr in zip(tasks, learning_rates)]
    for i in range(1, steps + 1):
      states, metrics = self.multi_step_fn(states, self.frozen, multi.stack([next(b) for b in batches]))
      if i % eval_every == 0 or i == steps:
        losses = np.asarray(metrics["loss"])
        for k in runs:
          trackers[k].observe(i, float(losses[k]), multi.unstack(states.trainable, k))
    return [trackers[k].result(jax.device_get(multi.unstack(states.trainable, k))) for k in runs]

  def meta_train(self, trainable: Mapping, cfg: meta.MetaConfig, *, seed: int, steps: int,
                 eval_every: int) -> tuple[dict, dict, dict[int, float]]:
    """MAML-family upstream: each step samples meta_batch upstream tasks; support from a task's
    train split, query from its dev split, both inner_batch examples."""
    tasks = self.universe.upstream_tasks
    lengths = self.universe.feature_lengths(self.universe.upstream_mixture)
    # k-shot splits are small: held in memory, and support / query batches are drawn from them
    # (with replacement, as CrossFit's meta-learning loader does), instead of 2 x len(tasks)
    # endless tf.data pipelines (tearing that many down deadlocked a run).
    supports = {t: split_arrays(t, "train", lengths) for t in tasks}
    queries = {t: split_arrays(t, "validation", lengths) for t in tasks}
    loss_fn = functools.partial(_deterministic_loss, frozen=self.frozen, config=self.config)
    step = jax.jit(functools.partial(meta.meta_train_step, loss_fn=loss_fn, optimizer=self.optimizer,
                                     algorithm=cfg.algorithm, inner_steps=cfg.inner_steps),
                   donate_argnums=(0,))
    rng = np.random.RandomState(seed)

    def draw(arrays):  # inner_batch examples of one task
      rows = rng.choice(len(arrays["encoder_input_tokens"]), cfg.inner_batch_size,
                        replace=len(arrays["encoder_input_tokens"]) < cfg.inner_batch_size)
      return {k: v[rows] for k, v in arrays.items()}

    def advance(state):
      chosen = [tasks[j] for j in rng.choice(len(tasks), cfg.meta_batch_size,
                                             replace=len(tasks) < cfg.meta_batch_size)]
      stack = lambda split: jax.tree.map(lambda *b: np.stack(b), *[draw(split[t]) for t in chosen])  # noqa: E731
      return step(state, stack(supports), stack(queries), inner_lr=jnp.float32(cfg.inner_lr))
    dev = (self.universe.dev_mixture or self.universe.upstream_mixture,
           self.study.upstream.num_dev_examples)
    return self._loop(self.state(trainable, cfg.outer_lr, seed), advance, steps=steps,
                      eval_every=eval_every, loss="query_loss", dev=dev,
                      what=f"{cfg.algorithm} at outer lr {cfg.outer_lr}, inner lr {cfg.inner_lr}")

  def _loop(self, state: TrainState, advance: Callable, *, steps: int, eval_every: int, loss: str,
            dev: tuple[str, Optional[int]], what: str) -> tuple[dict, dict, dict[int, float]]:
    """Runs `advance` (state -> (state, metrics)) `steps` times; every `eval_every` steps and at
    the end checks the loss is finite and scores the tree on the validation split of dev[0]."""
    tracker = _DevTracker(self, dev, loss, what)
    for i in range(1, steps + 1):
      state, metrics = advance(state)
      if i % eval_every == 0 or i == steps:
        tracker.observe(i, float(metrics[loss]), state.trainable)
    return tracker.result(jax.device_get(state.trainable))

  # ------------------------------------------------------------------------------ cells

  def run_upstream(self, cell: UpstreamCell, out: epath.Path) -> dict:
    up = self.study.upstream
    start = time.perf_counter()
    trainable = self.init(cell.method, 0)
    if cell.upstream == "mtl":
      best, last, dev = self.tune(trainable, self.universe.upstream_mixture,
                                  split=self.universe.upstream_split,
                                  dev_task=self.universe.dev_mixture or self.universe.upstream_mixture,
                                  learning_rate=up.learning_rates[cell.method],
                                  batch_size=up.batch_size, steps=up.steps,
                                  eval_every=up.eval_every, seed=0,
                                  dev_examples=up.num_dev_examples)
    else:
      best, last, dev = self.meta_train(trainable, up.meta[cell.method], seed=0, steps=up.steps,
                                        eval_every=up.eval_every)
    save_tree(cell.tree_path(out, "best"), best)
    save_tree(cell.tree_path(out, "last"), last)
    best_step = best_dev_step(dev)
    seconds = time.perf_counter() - start
    _say(f"upstream {cell.upstream} {cell.method}: best dev {dev[best_step]:.1f} at step "
         f"{best_step} of {up.steps} ({seconds:.0f} s)")
    return {"score": dev[best_step], "best_step": best_step, "dev": dev, "seconds": seconds}

  def _downstream_start(self, cell: DownstreamCell, out: epath.Path) -> tuple[dict, str]:
    """(initial trainable tree, registered task) of a downstream cell."""
    if cell.source is None:
      trainable = self.init(cell.method, cell.seed)
    else:
      trainable = load_tree(cell.source.tree_path(out, cell.upstream.split("-")[1]))
    return trainable, self.universe.target_task(cell.target, cell.seed)

  def _downstream_record(self, task: str, best: dict, dev: dict[int, float],
                         seconds: float) -> dict:
    down = self.study.downstream
    best_step = best_dev_step(dev)
    test = self.score(task, "test", best, down.num_test_examples)
    tunable = trees.count_params(trees.materialize(best))
    return {"score": test, "test_score": test, "dev_score": dev[best_step], "best_step": best_step,
            "dev": dev, "tunable_params": tunable, "frozen_params": self.frozen_params,
            "seconds": seconds}

  def run_downstream(self, cell: DownstreamCell, out: epath.Path) -> dict:
    down = self.study.downstream
    start = time.perf_counter()
    trainable, task = self._downstream_start(cell, out)
    best, _, dev = self.tune(trainable, task, learning_rate=cell.learning_rate,
                             batch_size=cell.batch_size, steps=down.steps,
                             eval_every=down.eval_every, seed=cell.seed)
    return self._downstream_record(task, best, dev, time.perf_counter() - start)

  def run_downstream_group(self, cells: Sequence[DownstreamCell], out: epath.Path) -> list[dict]:
    """run_downstream of cells of one group_key, tuned together (tune_group); one record per
    cell, as run_downstream writes it ("seconds": the group's time / the number of cells)."""
    down = self.study.downstream
    start = time.perf_counter()
    starts = [self._downstream_start(cell, out) for cell in cells]
    tasks = [task for _, task in starts]
    runs = self.tune_group([t for t, _ in starts], tasks,
                           learning_rates=[c.learning_rate for c in cells],
                           seeds=[c.seed for c in cells], batch_size=cells[0].batch_size,
                           steps=down.steps, eval_every=down.eval_every)
    seconds = (time.perf_counter() - start) / len(cells)
    return [self._downstream_record(task, best, dev, seconds)
            for task, (best, _, dev) in zip(tasks, runs)]

  def group_key(self, cell: DownstreamCell) -> tuple:
    """Cells of one key can be tuned in one stacked step: same upstream and method (one tree
    shape), batch size and feature lengths (one batch shape); steps are the study's."""
    lengths = self.universe.feature_lengths(self.universe.target_task(cell.target, cell.seed))
    return (cell.upstream, cell.method, cell.batch_size, tuple(sorted(lengths.items())))

  def run_downstream_grouped(self, cell: DownstreamCell, out: epath.Path,
                             peers: Sequence[DownstreamCell]) -> dict:
    """run_downstream of `cell` (what run_grid calls), tuning up to K - 1 unfinished `peers` (its
    group_key's cells) with it, K from spot_jax.train.multi.runs_per_step; their records wait
    in memory until run_grid reaches them (and claims and writes them). Peers whose file exists
    are never rerun, so a resumed group reruns only its missing cells; peers another process has
    claimed are left to it."""
    if cell in self._computed:
      return self._computed.pop(cell)
    k = (multi.runs_per_step(cell.batch_size) if self.runs_per_step is None
         else self.runs_per_step)
    group = [cell] + [p for p in peers if p != cell and p not in self._computed
                      and not (out / p.key).exists() and not grid.claim_path(out / p.key).exists()
                      ][:max(k, 1) - 1]
    if len(group) == 1:
      return self.run_downstream(cell, out)
    records = self.run_downstream_group(group, out)
    self._computed.update(zip(group[1:], records[1:]))
    return records[0]


def split_arrays(task: str, split: str, lengths: Mapping[str, int]) -> dict[str, np.ndarray]:
  """Every example of a (small) split as model-feature arrays [N, L], read once to the end."""
  ds = converted_dataset(task, split=split, feature_lengths=lengths, shuffle=False, seed=None,
                         num_epochs=1)
  batches = list(ds.batch(4096).as_numpy_iterator())
  if not batches:
    raise CrossFitError(f"{task} has no {split} examples")
  return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def best_dev_step(dev: Mapping[int, float]) -> int:
  """The step of the best dev score, the earliest on ties; NaN scores never win."""
  return max(dev, key=lambda s: (-np.inf if np.isnan(dev[s]) else dev[s], -s))


def _deterministic_loss(trainable, batch, *, frozen, config):
  return train_step_lib.loss_fn(trainable, frozen, batch, jax.random.PRNGKey(0), config=config,
                                deterministic=True)


# ----------------------------------------------------------------------------------- driver


def load_cells(out: str | epath.PathLike) -> list[dict]:
  """Every finished downstream cell's record under `out` (any study's)."""
  out = epath.Path(out)
  paths = [p for p in out.glob("cells/*/*/*/seed*.json") if not p.name.startswith(".")]
  return [json.loads(p.read_text()) for p in sorted(paths)]


def run_study(config: T5Config, frozen, universe: Universe, study: Study,
              out: str | epath.PathLike, *, protocol_note: str = "", poll_seconds: float = 20.0,
              progress: bool = True, baseline_dir: Optional[str | epath.PathLike] = None,
              runs_per_step: Optional[int] = 1) -> Optional[epath.Path]:
  """Runs (or resumes, or joins) the study in `out`; writes the report when every cell is done.

  Upstream cells run first; a downstream cell runs once its upstream tree exists. Cells another
  process has claimed are left to it; when only those remain this process waits for them, then
  writes the report (so the last process to finish writes the complete one). `baseline_dir`:
  ARG against full tuning without upstream as another study directory holds it (same model).
  Downstream cells of one Runner.group_key are tuned `runs_per_step` at a time in one stacked step
  (None: spot_jax.train.multi's measured rule for the batch size); every cell's file is written as
  a single run writes it. Stacked runs equal single runs only to float32 round-off, which tuning
  at these rates amplifies (a 1e-7 change of the init moves a prompt by O(1) within 20 steps), so
  a stacked cell's scores are another draw of the same run, not the same numbers: the default, 1,
  keeps one run at a time and a study bit-reproducible."""
  validation.check_writable_dir(out, setting="--out")
  out = epath.Path(out)
  runner = Runner(config, frozen, universe, study, runs_per_step=runs_per_step)
  upstream = [UpstreamCell(u, m) for u in study.upstreams if u != "none" for m in study.methods]
  cells = downstream_cells(study, universe)
  _say(f"{len(upstream)} upstream and {len(cells)} downstream cells -> {out}/ (resumes; other "
       f"processes may share it)")
  while True:
    grid.run_grid(upstream, lambda c: runner.run_upstream(c, out), out, progress=False, claim=True)
    ready = [c for c in cells if c.source is None or (out / c.source.key).exists()]
    groups: dict[tuple, list[DownstreamCell]] = {}
    for c in ready:
      groups.setdefault(runner.group_key(c), []).append(c)
    records = grid.run_grid(
        ready, lambda c: runner.run_downstream_grouped(c, out, groups[runner.group_key(c)]), out,
        progress=progress, claim=True)
    finished = [r for r in records if r]
    if len(finished) == len(cells):
      break
    _say(f"{len(cells) - len(finished)} cells are running in other processes or wait for an "
         f"upstream tree another process is training; waiting")
    time.sleep(poll_seconds)
  from spot_jax.study import crossfit_report  # matplotlib: only when a report is written
  baseline = baseline_of(study)
  if baseline_dir is not None:
    baseline = BASELINE
    borrowed = [r for r in load_cells(baseline_dir)
                if (r["upstream"], r["method"]) == baseline and r["target"] in study_targets(study, universe)]
    if not borrowed:
      raise CrossFitError(f"{baseline_dir} holds no finished none/full cells of this study's "
                          "targets; run `--upstream none --methods full` there first")
    finished = [r for r in finished if (r["upstream"], r["method"]) != baseline] + borrowed
  source = f" from {baseline_dir}" if baseline_dir is not None else (
      "" if baseline == BASELINE else " (the study has no none/full cells)")
  note = f"{protocol_note}\n\nBaseline of ARG: {baseline[0]}/{baseline[1]}{source}."
  return crossfit_report.write_report(finished, out, baseline=baseline, protocol_note=note)


def study_targets(study: Study, universe: Universe) -> tuple[str, ...]:
  return study.targets or universe.targets


def baseline_of(study: Study) -> tuple[str, str]:
  """The seed's baseline, full-model tuning without upstream, when the study runs it; otherwise
  its first upstream x method (ARG is then relative to that)."""
  if "none" in study.upstreams and "full" in study.methods:
    return BASELINE
  first = study.upstreams[0]
  if first != "none":
    first = f"{first}-{study.checkpoints[0]}"
  return first, next(iter(study.methods))
