"""Tests of spot_jax.embedded. A regular package on purpose: pytest puts tests/ on sys.path, and gin
resolves `include 'embedded/source.gin'` by first looking up a Python package `embedded`; a
namespace package here would have no file location and crash that lookup (TypeError in gin)."""
