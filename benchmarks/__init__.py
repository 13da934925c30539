"""Benchmarks and trials: each ``python -m benchmarks.<name>`` prints its figures and, with ``--out``, keeps them."""

from __future__ import annotations

import json
from pathlib import Path


def save_results(path: str | Path | None, results: dict) -> None:
    """Write a benchmark's ``results`` as indented JSON to ``path`` (nothing when ``--out`` was not given)."""
    if path:
        Path(path).write_text(json.dumps(results, indent=1) + "\n")
