"""seqio task and mixture registrations (the catalog). `spot-jax train|eval|infer` import this
package by default, like t5x's MIXTURE_OR_TASK_MODULE. Importing registers every task."""

from tasks import glue  # noqa: F401
from tasks import nli_paraphrase_sentiment  # noqa: F401
from tasks import generation  # noqa: F401
from tasks import rainbow_local  # noqa: F401
from tasks import crossfit  # noqa: F401
from tasks import mixtures  # noqa: F401
from spot_jax.embedded import seqio_tasks  # noqa: F401  the embedded universe: synthetic_*_v2
