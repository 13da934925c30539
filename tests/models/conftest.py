"""Fixtures for model-source tests: one model cache per test session.

Set ``AURA_CACHE_DIR`` to reuse conversions across sessions (e.g. ``~/.cache/aura``); otherwise
the bundled models are converted once into a session temp dir (SmolLM2 takes ~20-35 s).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory) -> Path:
    """The cache that bundled/random model specs resolve into for this test session."""
    if os.environ.get("AURA_CACHE_DIR"):
        return Path(os.environ["AURA_CACHE_DIR"]).expanduser()
    return tmp_path_factory.mktemp("aura-cache")
