"""Ray job entry point for `aura train`: `python -m jobs.train --config FILE [--set k=v ...]`."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]], job="train"))
