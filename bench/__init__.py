"""Benchmarks: `make bench` (or `python -m bench [--quick]`). Results in docs/BENCHMARKS.md."""
