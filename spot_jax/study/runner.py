"""In-process prompt tuning for studies and the demo: many short runs over ONE frozen model.

`spot-jax train` (spot_jax.train.trainer) is the full job: orbax checkpoints, resume, TensorBoard.
A transfer grid or the demo runs dozens of short tunings instead; here they share the loaded
frozen model, one compiled train step, and one compiled decoder per sequence length, and keep their
prompts in memory. The step, optimizer, data pipeline and validation are the trainer's own
(jit_train_step, train_batches, Validator), so a run here follows the same protocol as a
`spot-jax train` run with the same settings.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from spot_jax.data.pipeline import train_batches
from spot_jax.model.config import T5Config
from spot_jax.peft import SampledVocabInit
from spot_jax.train import optim
from spot_jax.train.evaluation import Validator, score_of
from spot_jax.train.state import TrainState
from spot_jax.train.step import jit_train_step


@dataclasses.dataclass(frozen=True)
class Protocol:
  """How every prompt of a study is tuned (the embedded defaults; paper values in comments)."""
  steps: int = 300                 # paper: up to 2^18
  eval_every: int = 100            # paper: 500 (best checkpoint = source prompt)
  batch_size: int = 32             # paper: 32
  learning_rate: float = 0.1       # Adam; paper: Adafactor 0.3
  prompt_length: int = 20          # paper: 100
  embedding_step: int = 100        # task embedding = prompt after this many steps; paper: 10K
  num_eval_examples: Optional[int] = None  # None: the whole validation split
  eval_batch_size: int = 100
  vocab_limit: int = 279           # sampled-vocab init rows (the embedded vocabulary's words)


@dataclasses.dataclass
class Run:
  """One tuned prompt: scores at each evaluation, and the prompts SPoT keeps."""
  task: str
  seed: int
  scores: dict[int, float]         # step -> validation score (step 0: the initial prompt)
  best_step: int
  best_score: float
  source_prompt: np.ndarray        # [P, E] at best_step
  task_embedding: Optional[np.ndarray]  # [P, E] after protocol.embedding_step steps
  final_prompt: np.ndarray
  seconds: float

  def score_at(self, step: int) -> float:
    return self.scores[step]


class Tuner:
  """Tunes prompts on tasks over one frozen model; compiled functions are built once."""

  def __init__(self, config: T5Config, frozen, protocol: Protocol = Protocol(), *,
               feature_lengths: Callable[[str], Mapping[str, int]], log=sys.stderr):
    self.config = config.replace(dropout_rate=0.0)
    self.frozen = frozen
    self.protocol = protocol
    self.feature_lengths = feature_lengths
    self.optimizer = optim.adam(learning_rate=protocol.learning_rate)
    self.step_fn = jit_train_step(self.config, self.optimizer)
    self.embedding = np.asarray(frozen["token_embedder"]["embedding"])
    self._validators: dict[str, Validator] = {}
    self.log = log

  def initial_prompt(self, seed: int) -> np.ndarray:
    """Vanilla prompt tuning's init: sampled vocabulary rows (SPoT §2.1.4)."""
    init = SampledVocabInit(vocab_limit=self.protocol.vocab_limit)
    return np.asarray(init(jax.random.PRNGKey(seed), self.embedding, self.protocol.prompt_length))

  def validate(self, task: str, prompt) -> float:
    if task not in self._validators:
      self._validators[task] = Validator(
          task, config=self.config, feature_lengths=self.feature_lengths(task),
          batch_size=self.protocol.eval_batch_size, num_examples=self.protocol.num_eval_examples)
    return score_of(self._validators[task](self.frozen, {"prompt": jnp.asarray(prompt)}))

  def tune(self, task: str, *, seed: int, init: Optional[np.ndarray] = None,
           steps: Optional[int] = None, eval_steps: Optional[tuple[int, ...]] = None,
           label: str = "", validate: bool = True) -> Run:
    """Tunes a prompt on `task` from `init` (default: sampled vocabulary) for `steps` steps,
    validating at step 0, every `eval_every` steps and at `eval_steps`. validate=False: no
    validation (e.g. an intermediate mixture run); the source prompt is then the final one."""
    p = self.protocol
    steps = p.steps if steps is None else steps
    checks = (sorted({0, steps, *range(p.eval_every, steps + 1, p.eval_every), *(eval_steps or ())})
              if validate else [])
    start = time.perf_counter()
    prompt = self.initial_prompt(seed) if init is None else np.asarray(init, np.float32)
    state = TrainState.create({"prompt": jnp.asarray(prompt)}, self.optimizer, seed)
    batches = train_batches(task, split="train", feature_lengths=self.feature_lengths(task),
                            global_batch_size=p.batch_size, seed=seed)
    scores: dict[int, float] = {}
    best = (-np.inf, 0, prompt)
    embedding = prompt if p.embedding_step == 0 else None
    for step in range(steps + 1):
      if step:
        state, _ = self.step_fn(state, self.frozen, next(batches))
      if step == p.embedding_step and step:
        embedding = np.asarray(state.trainable["prompt"])
      if step in checks:
        current = np.asarray(state.trainable["prompt"])
        scores[step] = self.validate(task, current)
        if scores[step] > best[0]:
          best = (scores[step], step, current)
    final = np.asarray(state.trainable["prompt"])
    if not validate:
      best = (np.nan, steps, final)
    seconds = time.perf_counter() - start
    if self.log:
      trail = " ".join(f"{s}:{v:.1f}" for s, v in scores.items())
      result = (f"best {best[0]:.1f} at step {best[1]} ({trail})" if validate
                else f"{steps} steps, not validated")
      print(f"  tuned {task}{' ' + label if label else ''} seed {seed}: {result} in "
            f"{seconds:.0f} s", file=self.log, flush=True)
    return Run(task=task, seed=seed, scores=scores, best_step=best[1], best_score=float(best[0]),
               source_prompt=best[2], task_embedding=embedding, final_prompt=final, seconds=seconds)
