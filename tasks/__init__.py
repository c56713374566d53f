"""seqio task and mixture registrations (the catalog). `spot-jax train|eval|infer` import this
package by default, like t5x's MIXTURE_OR_TASK_MODULE. The catalog itself lands with its own issue."""
