"""The prompt-tuning loop: frozen T5 + trainable prompt, validation, exports, checkpoints, resume.

`train(...)` takes keyword arguments only and knows nothing of gin; the CLI makes it configurable.
Its defaults are SPoT's (paper §2.1.4): prompt length 100, Adafactor lr 0.3, batch 32, dropout 0.1,
2^18 steps, validation + checkpoint every 500 steps, task embedding at step 10,000.
`pack=True` trains on packed rows (spot_jax.data.packing): each of the `batch_size` rows holds
several examples, each with its own copy of the prompt; validation stays unpacked. `pack_lengths`
({"inputs": ..., "targets": ...}) overrides the packed row lengths (spot_jax.data.packing).
In a multi-process run (spot_jax.train.distributed) every process runs this loop in lockstep on
the global mesh; process 0 alone writes metrics, TensorBoard events and exports, all processes
write the orbax checkpoints together.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
import time
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils import epath

from spot_jax import validation
from spot_jax.checkpoints import load_checkpoint
from spot_jax.data.pipeline import process_rows, train_batches
from spot_jax.errors import Interrupted, SpotError
from spot_jax.model.config import T5Config, get_config
from spot_jax.model.params import cast_params, init_params
from spot_jax.peft import PromptInitializer, SampledVocabInit
from spot_jax.io import atomic_write
from spot_jax.train import distributed, partitioning, run_dir
from spot_jax.train.checkpointing import Checkpointer
from spot_jax.train.evaluation import Validator, score_of
from spot_jax.train.exports import ExportInfo, export_prompt, params_checksum
from spot_jax.train.optim import adafactor
from spot_jax.train.signals import StopOnSignal
from spot_jax.train.state import TrainState
from spot_jax.train.step import jit_train_step


@dataclasses.dataclass(frozen=True)
class TrainResult:
  step: int
  best_step: Optional[int]
  best_score: float
  exports: epath.Path  # directory with source_prompt / task_embedding / final_prompt (.npy + .json)
  resumed: bool


def load_frozen(model_config: T5Config | str, initial_checkpoint_path: Optional[str],
                seed: int) -> tuple[T5Config, Any]:
  """The frozen model: a t5x or HF checkpoint, or (tests, smoke runs) a random initialisation."""
  config = get_config(model_config) if isinstance(model_config, str) else model_config
  if initial_checkpoint_path:
    return load_checkpoint(initial_checkpoint_path, config)
  print("spot-jax: no INITIAL_CHECKPOINT_PATH: the frozen model is randomly initialised",
        file=sys.stderr)
  return config, init_params(config, seed)


def _parse_row(line: str) -> Optional[dict]:
  try:
    return json.loads(line)
  except json.JSONDecodeError:
    return None


class MetricsWriter:
  """metrics.jsonl (one JSON object per logged step) and TensorBoard scalars in MODEL_DIR; in a
  multi-process run only the writing process (distributed.is_writer) touches them."""

  def __init__(self, model_dir: epath.Path):
    self.path = model_dir / "metrics.jsonl"
    self.active = distributed.is_writer()
    import tensorflow as tf  # already loaded by seqio; TensorBoard event files
    self._tf = tf
    self._writer = (tf.summary.create_file_writer(str(model_dir / "tensorboard"))
                    if self.active else None)

  def truncate_after(self, step: Optional[int]) -> None:
    """On resume: drop rows logged after the restored checkpoint (all rows when no checkpoint was
    restored, `step` None); those steps are run again. A torn last line (a kill mid-write) goes
    too."""
    if self.active and self.path.exists():
      rows = [r for r in map(_parse_row, self.path.read_text().splitlines())
              if r is not None and step is not None and r["step"] <= step]
      atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in rows))

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.active:
      return
    with self.path.open("a") as f:
      f.write(json.dumps({"step": step, **{k: float(v) for k, v in scalars.items()}}) + "\n")
    with self._writer.as_default(step=step):
      for k, v in scalars.items():
        self._tf.summary.scalar(k, float(v))
    self._writer.flush()


def _best_so_far(exports: epath.Path) -> tuple[float, Optional[int]]:
  sidecar = exports / "source_prompt.json"
  if not sidecar.exists():
    return -math.inf, None
  record = json.loads(sidecar.read_text())
  return record["score"], record["step"]


def _flat(metrics: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
  return {f"{task}/{k}": v for task, m in metrics.items() for k, v in m.items()}


def train(*, model_dir: str, mixture_or_task_name: str, feature_lengths: Mapping[str, int],
          model_config: T5Config | str = "t5_1_1_lm_adapted_base",
          initial_checkpoint_path: Optional[str] = None, vocabulary: str = "",
          prompt_length: int = 100, prompt_initializer: PromptInitializer = SampledVocabInit(),
          optimizer: Optional[optax.GradientTransformation] = None, batch_size: int = 32,
          num_train_steps: int = 2**18, dropout_rate: float = 0.1, z_loss: float = 0.0,
          eval_period: int = 500, checkpoint_period: Optional[int] = None,
          keep_checkpoints: Optional[int] = 3, task_embedding_step: int = 10_000,
          train_split: str = "train", validation_split: str = "validation",
          eval_batch_size: Optional[int] = None, num_eval_examples: Optional[int] = None,
          best_metric: Optional[str] = None, log_period: int = 10, seed: int = 0,
          mesh_data: int = -1, mesh_model: int = 1, progress: bool = True,
          pack: bool = False, pack_lengths: Optional[Mapping[str, int]] = None,
          remat_policy: str = "none", frozen_dtype: str = "float32", overwrite: bool = False,
          files: Optional[Mapping[str, str]] = None) -> TrainResult:
  """Tunes a prompt on `mixture_or_task_name` and exports source prompt / task embedding.

  `overwrite`: start MODEL_DIR afresh even if it holds another run (run_dir.RUN_OUTPUTS are
  removed). `files`: {name: text} written into MODEL_DIR once the settings are checked (the CLI's
  config.gin). SIGINT or SIGTERM stops the run after the current step, once a checkpoint of it is
  saved (errors.Interrupted); a rerun resumes there.
  """
  # Every setting is checked before anything is loaded or written: a run that cannot start leaves
  # MODEL_DIR as it was (spot_jax.validation).
  task = validation.resolve_task(mixture_or_task_name)
  for split, setting in ((train_split, "train_split"), (validation_split, "validation_split")):
    validation.check_split(task, split, setting=setting)
  validation.check_positive({"batch_size": batch_size, "num_train_steps": num_train_steps,
                             "eval_period": eval_period, "log_period": log_period,
                             "prompt_length": prompt_length})
  validation.check_optional_positive({"checkpoint_period": checkpoint_period,
                                      "keep_checkpoints": keep_checkpoints,
                                      "eval_batch_size": eval_batch_size,
                                      "num_eval_examples": num_eval_examples})
  validation.check_feature_lengths(feature_lengths)
  validation.check_writable_dir(model_dir, setting="MODEL_DIR")
  mesh = partitioning.make_mesh(mesh_data, mesh_model)
  validation.check_divides(batch_size, mesh.shape["data"])
  # The run's identity (spot_jax.train.run_dir): what it was, a resume must still be.
  identity = {"task": mixture_or_task_name, "prompt_length": prompt_length, "seed": seed,
              "batch_size": batch_size, "feature_lengths": dict(feature_lengths), "pack": pack,
              "pack_lengths": dict(pack_lengths) if pack_lengths else None}
  if not overwrite:
    run_dir.check_identity(model_dir, identity, keys=set(identity))  # before loading the model

  # The frozen model, laid out over the mesh.
  config, frozen = load_frozen(model_config, initial_checkpoint_path, seed)
  config = config.replace(dropout_rate=dropout_rate, remat_policy=remat_policy)
  info = ExportInfo(task=mixture_or_task_name, model=config.name, vocabulary=vocabulary, seed=seed,
                    frozen_checksum=params_checksum(frozen))
  identity.update(model=config.name, frozen_checksum=info.frozen_checksum,
                  embed_dim=config.emb_dim)
  if not overwrite:
    run_dir.check_identity(model_dir, identity)
  embedding = np.asarray(frozen["token_embedder"]["embedding"])
  frozen = jax.device_put(cast_params(frozen, frozen_dtype),  # memory knobs: docs/scale.md
                          partitioning.param_shardings(config, mesh))
  optimizer = optimizer or adafactor()
  prompt = prompt_initializer(jax.random.PRNGKey(seed), embedding, prompt_length)
  initial = jax.device_put(TrainState.create({"prompt": prompt}, optimizer, seed),
                           partitioning.replicated(mesh))

  model_dir = epath.Path(model_dir)
  lock = _claim(model_dir, identity, overwrite, files) if distributed.is_writer() else None
  checkpointer = Checkpointer(model_dir / "checkpoints", keep=keep_checkpoints)
  try:
    # The initial state, or the latest checkpoint (resume order: spot_jax/train/checkpointing.py).
    state, resumed = checkpointer.restore_or_init(initial)
    step = int(distributed.to_host(state.step))
    run = _Run(model_dir, state, step, frozen=frozen, info=info, checkpointer=checkpointer,
               best=_best_so_far(model_dir / "exports") if resumed else (-math.inf, None),
               validator=Validator(mixture_or_task_name, config=config,
                                   feature_lengths=feature_lengths, split=validation_split,
                                   batch_size=eval_batch_size or batch_size,
                                   num_examples=num_eval_examples),
               best_metric=best_metric)
    run.metrics.truncate_after(step if resumed else None)
    batches = train_batches(mixture_or_task_name, split=train_split, feature_lengths=feature_lengths,
                            global_batch_size=batch_size, seed=seed, start_step=step, pack=pack,
                            prompt_length=prompt_length, pack_lengths=pack_lengths,
                            rows=process_rows(partitioning.batch_sharding(mesh), batch_size))
    if not resumed:
      run.validate()  # the initial prompt's score: the bar every later checkpoint must clear
    run.loop(jit_train_step(config, optimizer, z_loss),
             (partitioning.shard_batch(batch, mesh) for batch in batches),
             num_train_steps=num_train_steps, log_period=log_period, eval_period=eval_period,
             checkpoint_period=checkpoint_period or eval_period,
             task_embedding_step=task_embedding_step, progress=progress)
    return TrainResult(step=run.step, best_step=run.best_step, best_score=run.best_score,
                       exports=run.exports, resumed=resumed)
  finally:
    checkpointer.close()
    if lock:
      lock.release()


def _claim(model_dir: epath.Path, identity: Mapping[str, Any], overwrite: bool,
           files: Optional[Mapping[str, str]]) -> run_dir.WriterLock:
  """MODEL_DIR becomes this run's: locked, cleared if `overwrite`, its identity and `files`
  written. The writing process alone calls this."""
  model_dir.mkdir(parents=True, exist_ok=True)
  lock = run_dir.WriterLock(model_dir).acquire()
  if overwrite:
    run_dir.clear_run(model_dir)
  run_dir.write_identity(model_dir, identity)
  for name, text in (files or {}).items():
    atomic_write(model_dir / name, text)
  return lock


class _Run:
  """The loop's state between steps: the train state, the best validation score, the metrics
  writer and the exports; every process holds one and calls its methods in lockstep."""

  def __init__(self, model_dir: epath.Path, state: TrainState, step: int, *, frozen: Any,
               info: ExportInfo, checkpointer: Checkpointer, validator: Validator,
               best: tuple[float, Optional[int]], best_metric: Optional[str]):
    self.state, self.step, self.frozen, self.info = state, step, frozen, info
    self.checkpointer, self.validator, self.best_metric = checkpointer, validator, best_metric
    self.best_score, self.best_step = best
    self.exports = model_dir / "exports"
    self.writes = distributed.is_writer()
    self.metrics = MetricsWriter(model_dir)
    self.diverged = jnp.zeros((), bool)  # ~isfinite(loss) of any step since the last check
    self.last_good = step  # the last step the checks found finite
    self.say = functools.partial(print, file=sys.stderr)

  def export(self, kind: str, **record) -> None:
    prompt = distributed.to_host(self.state.trainable["prompt"])  # every process takes part
    if self.writes:
      export_prompt(self.exports, kind, prompt, self.info, step=self.step, **record)

  def check_finite(self) -> None:
    """Fails, naming the step range, if a loss since the last check or the prompt is not finite;
    called before every checkpoint, so a checkpoint only ever holds a finite state."""
    finite = not bool(distributed.to_host(self.diverged))
    if finite and np.isfinite(distributed.to_host(self.state.trainable["prompt"])).all():
      self.last_good = self.step
      return
    kept = self.checkpointer.latest_step()
    raise SpotError(f"training diverged (non-finite loss or prompt) between steps {self.last_good} "
                    f"and {self.step}; " + (f"the last checkpoint, step {kept}, is finite: rerun "
                                            "with a lower learning rate (or z_loss) to resume "
                                            "from it" if kept is not None else "no checkpoint "
                                            "was saved yet: rerun with a lower learning rate (or "
                                            "z_loss)"))

  def save(self) -> None:
    self.check_finite()
    self.checkpointer.save(self.state)  # a step already saved is not saved again

  def validate(self) -> None:
    metrics = self.validator(self.frozen, self.state.trainable, self.step)
    score = score_of(metrics, self.best_metric)
    self.metrics.write(self.step, {**_flat(metrics), "validation/score": score})
    if score > self.best_score:
      self.best_score, self.best_step = score, self.step
      self.export("source_prompt", metrics=_flat(metrics), score=score)
    if self.writes:
      self.say(f"step {self.step}: validation score {score:.4g} (best {self.best_score:.4g} at "
               f"{self.best_step})")

  def loop(self, step_fn, batches, *, num_train_steps: int, log_period: int, eval_period: int,
           checkpoint_period: int, task_embedding_step: int, progress: bool) -> None:
    from tqdm import tqdm
    bar = tqdm(total=num_train_steps, initial=self.step, disable=not (progress and self.writes),
               desc="train", dynamic_ncols=True, file=sys.stderr)
    self.say = functools.partial(tqdm.write, file=sys.stderr)  # lines above the bar
    tick, logged = time.perf_counter(), self.step
    with StopOnSignal(say=self.say) as stop:
      while self.step < num_train_steps:
        self.state, metrics = step_fn(self.state, self.frozen, next(batches))
        self.step += 1
        bar.update(1)
        self.diverged = self.diverged | ~jnp.isfinite(metrics["loss"])  # on device: no sync
        if self.step % log_period == 0 or self.step == num_train_steps:
          self.check_finite()
          scalars = {f"train/{k}": float(distributed.to_host(v)) for k, v in metrics.items()}
          now = time.perf_counter()
          scalars["train/steps_per_s"] = (self.step - logged) / max(now - tick, 1e-9)
          tick, logged = now, self.step
          self.metrics.write(self.step, scalars)
          bar.set_postfix(loss=f"{scalars['train/loss']:.4f}",
                          steps_s=f"{scalars['train/steps_per_s']:.2f}")
        if self.step == task_embedding_step:
          self.export("task_embedding")
        if self.step % eval_period == 0 or self.step == num_train_steps:
          self.validate()
        if self.step % checkpoint_period == 0 or self.step == num_train_steps:
          self.save()
        if stop.agreed(self.step, log_period) and self.step < num_train_steps:
          self.save()
          bar.close()
          raise Interrupted(f"stopped by {stop.name} at step {self.step} of {num_train_steps}; "
                            f"checkpoint {self.step} is saved: rerun the same command to resume",
                            stop.signum)
    bar.close()
    self.export("final_prompt")
    distributed.sync("spot_jax_train_done")  # no process returns before the exports are written
