"""Data: seqio datasets -> model features -> per-host numpy batches; metrics."""
