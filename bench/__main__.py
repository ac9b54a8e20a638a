"""`python -m bench`: the engine benchmark (see bench/run.py)."""

from bench.run import main

main()
