"""Telling waiters that a job changed: `Prefer: wait`, the job's event stream, their signals."""
