"""Fixtures for the feature store tests (helpers live in feature_store_helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest
from feature_store_helpers import make_fingerprint

from feature_store import FeatureStore, StoreFingerprint


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def fingerprint() -> StoreFingerprint:
    return make_fingerprint()


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "features.zarr"


@pytest.fixture
def new_store(store_path):
    """Factory: a store in mode "a" with 16-frame chunks, so that tests cross chunk boundaries."""

    def make(codec: str = "fp16", chunk_frames: int = 16, **fingerprint_overrides) -> FeatureStore:
        fp = make_fingerprint(codec=codec, **fingerprint_overrides)
        return FeatureStore.open(store_path, fp, mode="a", chunk_frames=chunk_frames)

    return make
