"""Ray job entry point for `aura ingest`: `python -m jobs.ingest --config FILE [--set k=v ...]`."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]], job="ingest"))
