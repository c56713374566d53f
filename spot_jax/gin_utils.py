"""gin at the edge: parse --gin_file / --gin.NAME=VALUE the t5x way, check required macros up front,
and save the operative config beside the run.

Every library function stays gin-free; `spot_jax.configurables` registers the ones a run file binds.
"""

from __future__ import annotations

import io
import pathlib
import re
import tokenize
from typing import Any, Callable, Mapping, Sequence

import gin
from etils import epath

from spot_jax.errors import SpotError

GIN_DIR = pathlib.Path(__file__).resolve().parents[1] / "gin_configs"

# Macro -> where it is usually set, for the "missing binding" message.
REQUIRED_MACROS: Mapping[str, str] = {
    "MODEL_CONFIG": "a model file, e.g. --gin_file=models/t5_1_1_lm_adapted_base.gin",
    "PROMPT_INITIALIZER": "a prompt file, e.g. --gin_file=prompts/sampled_vocab.gin",
    "MIXTURE_OR_TASK_NAME": "the command line, e.g. --gin.MIXTURE_OR_TASK_NAME=\"'glue_rte_v2'\"",
    "MODEL_DIR": "the command line, e.g. --gin.MODEL_DIR=\"'/tmp/rte'\"",
    "INITIAL_CHECKPOINT_PATH": "the command line, e.g. --gin.INITIAL_CHECKPOINT_PATH=\"'gs://.../checkpoint_1100000'\" "
                               "(or None for a randomly initialised frozen model)",
    "PROMPT_FILE": "the command line, e.g. --gin.PROMPT_FILE=\"'/tmp/rte/exports/source_prompt.npy'\"",
    "OUTPUT_FILE": "the command line, e.g. --gin.OUTPUT_FILE=\"'/tmp/predictions.jsonl'\"",
    "CLASS_LABELS": "the command line, e.g. --gin.CLASS_LABELS=\"['yes', 'no']\" (prompts/class_labels.gin)",
}


def split_gin_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """Separates `--gin.NAME=VALUE` overrides (t5x style) from the other arguments."""
  bindings, rest = [], []
  for arg in argv:
    if arg.startswith("--gin.") and "=" in arg:
      bindings.append(arg[len("--gin."):])
    else:
      rest.append(arg)
  return bindings, rest


def parse(gin_files: Sequence[str], bindings: Sequence[str], required: Sequence[str]) -> None:
  """Parses the files (searched in the working directory and gin_configs/) and the overrides,
  then fails at once, naming the binding and the file that usually sets it, if a required macro
  is unset."""
  import spot_jax.configurables  # noqa: F401  registers the configurables the files bind

  gin.clear_config()
  gin.add_config_file_search_path(str(GIN_DIR))
  if not gin_files:
    raise SpotError("no --gin_file given; start from gin_configs/runs/*.gin (see README)")
  try:
    gin.parse_config_files_and_bindings([_resolve(f) for f in gin_files], list(bindings),
                                        finalize_config=False)
  except (IOError, OSError) as e:
    raise SpotError(f"cannot read gin file: {e}") from None
  except (ValueError, SyntaxError, tokenize.TokenError) as e:
    raise SpotError(f"bad gin config: {_parse_error(e, bindings)}") from None
  _apply_process_settings()
  # Required by the command, or declared %gin.REQUIRED by a file in use (e.g. prompts/from_file.gin).
  missing = [m for m in required if _macro_state(m) != "set"]
  missing += [m for m in REQUIRED_MACROS if m not in required and _macro_state(m) == "required"]
  if missing:
    where = "; ".join(f"{m} is set by {REQUIRED_MACROS.get(m, 'the command line')}" for m in missing)
    raise SpotError(f"missing required gin binding{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(missing)}: {where}")


def _parse_error(error: Exception, bindings: Sequence[str]) -> str:
  """gin's parse error, with the binding at fault and the fix where the cause is a common one."""
  unquoted = re.search(r"Failed to parse token '([^']*)'", str(error))
  if unquoted:  # --gin.NAME=value where the shell ate the quotes of a string
    word = unquoted.group(1)
    return (f"{word} is not a value gin knows (a number, a quoted string, a list, @configurable, "
            f"%MACRO); quote a string inside the shell quotes, e.g. --gin.NAME=\"'{word}'\"")
  if isinstance(error, tokenize.TokenError):
    for binding in bindings:
      try:
        list(tokenize.generate_tokens(io.StringIO(binding).readline))
      except tokenize.TokenError:
        return f"--gin.{binding} ends inside brackets or a string; close them"
  return " ".join(str(error).split())


def _apply_process_settings() -> None:
  """Setters bound in gin files take effect at parse time: `set_data_dir.path` (root of local-file
  datasets) and `set_mixture_limit.k` (K of examples-proportional mixtures)."""
  from spot_jax.data import local
  from tasks import catalog
  for selector, setter in (("set_data_dir.path", local.set_data_dir),
                           ("set_mixture_limit.k", catalog.set_mixture_limit)):
    try:
      value = gin.query_parameter(selector)
    except ValueError:
      continue
    setter(value)


def _resolve(gin_file: str) -> str:
  """A path as given if it exists, else relative to gin_configs/ (so gin logs no failed lookups)."""
  if pathlib.Path(gin_file).exists() or not (GIN_DIR / gin_file).exists():
    return gin_file
  return str(GIN_DIR / gin_file)


def macro_value(name: str, default=None):
  """The value of gin macro `name`, or `default` when it is not bound."""
  try:
    return gin.query_parameter(f"{name}/gin.macro.value")
  except ValueError:
    return default


def _macro_state(name: str) -> str:
  """'unset', 'required' (bound to %gin.REQUIRED) or 'set'."""
  try:
    value = gin.query_parameter(f"{name}/gin.macro.value")
  except ValueError:
    return "unset"
  return "required" if repr(value) == "%gin.REQUIRED" else "set"


def bound_arguments(name: str, fn: Callable[..., Any], arguments: Sequence[str]) -> dict[str, Any]:
  """The values gin would pass to the configurable `name` (wrapping `fn`) for `arguments`: bound
  values with macros and @references evaluated, else `fn`'s defaults; an argument with neither
  is left out."""
  import copy
  import inspect
  bound = gin.get_bindings(name, resolve_references=False)
  defaults = inspect.signature(fn).parameters
  values = {}
  for arg in arguments:
    if arg in bound:
      values[arg] = copy.deepcopy(bound[arg])  # evaluates macros and @references as gin would
    elif defaults[arg].default is not inspect.Parameter.empty:
      values[arg] = defaults[arg].default
  return values


def save_config(model_dir: str | epath.PathLike, name: str, text: str) -> None:
  """Writes a gin config beside the run (config.gin: as parsed; operative_config.gin: as used);
  in a multi-process run, process 0 alone writes it."""
  from spot_jax.train.distributed import is_writer
  if not is_writer():
    return
  path = epath.Path(model_dir)
  path.mkdir(parents=True, exist_ok=True)
  (path / name).write_text(text)
