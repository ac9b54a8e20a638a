"""Benchmarks: figures, never tests (DESIGN: a benchmark never fails a build on a time).

`python -m bench` (or `make bench`) runs the engine benchmark of issue 7: the real Pulumi engine over
synthetic tenants.yaml files of N tenants, for this project's design, the engine's floor and a naive
one-resource-per-secret design. `python -m bench.core.<name>` times parts of the core alone (bench/core/).
"""
