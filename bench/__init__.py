"""Headwater's benchmarks: `python -m bench <name>|all` (or `make bench`).

Speed is only ever reported as a ratio against a baseline measured in the same run on the same machine,
so that a slow or busy machine moves both sides alike. Results go to `docs/benchmarks.json` and, as a
table generated from the same data, `docs/benchmarks.md`.
"""
