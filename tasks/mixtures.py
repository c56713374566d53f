"""Family mixtures (examples-proportional, K = 2^19)."""

from tasks import catalog, glue

catalog.register_mixture("glue", [t for t in glue.GLUE_TASKS if "wnli" not in t])
catalog.register_mixture("super_glue", [t for t in glue.SUPER_GLUE_TASKS
                                        if "_ax" not in t])
