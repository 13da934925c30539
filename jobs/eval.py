"""Ray job entry point for `aura eval`: `python -m jobs.eval --config FILE [--set k=v ...]`."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]], job="eval"))
