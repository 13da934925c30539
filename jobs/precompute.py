"""Ray job entry point for `aura precompute`: `python -m jobs.precompute --config FILE [--set k=v ...]`."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["precompute", *sys.argv[1:]], job="precompute"))
