"""Ray job entry point for `aura infer-batch`: `python -m jobs.infer SOURCE --out DIR [--config FILE] [--set k=v ...]`."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["infer-batch", *sys.argv[1:]], job="infer"))
