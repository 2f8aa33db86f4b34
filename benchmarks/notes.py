"""The prose part of BENCHMARKS.md (the figures are filled in by `benchmarks.report`)."""

NOTES = """\
## Notes
"""
