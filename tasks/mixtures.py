"""Mixtures across families: GLUE / SuperGLUE here (the other families register theirs in their
modules), and SPoT's `spot_all` (C4 + every labeled task), after every family is registered."""

from tasks import catalog, glue, spot_lists

catalog.register_mixture("glue", [t for t in glue.GLUE_TASKS if "wnli" not in t])
catalog.register_mixture("super_glue", [t for t in glue.SUPER_GLUE_TASKS if "_ax" not in t])
spot_lists.register_spot_all()
