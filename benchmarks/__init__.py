"""Benchmarks of sandbox_magic: the cost of a remote cell, side by side with the floor.

Run ``python -m benchmarks`` from the repository root; it writes ``BENCHMARKS.md`` and
``benchmarks/results.json``. See `benchmarks.run`.
"""
