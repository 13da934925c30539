"""The store's read view: one scan of the markers, rescanned on refresh, reading what writers committed."""

import numpy as np
import pytest
from feature_store_helpers import shard_keys, write_shard

from feature_store import FeatureStore, StoreReader


def test_a_reader_sees_the_groups_of_its_scan_until_refresh(new_store, store_path):
    writer = new_store("fp16")
    first = write_shard(writer, "shard-a", shard_keys("shard-a", 3))
    reader_store = FeatureStore.open(store_path)  # read-only, another process's view
    view = reader_store.reader
    assert isinstance(view, StoreReader) and view.keys() == list(first)

    second = write_shard(writer, "shard-b", shard_keys("shard-b", 2))
    # The index keeps its scan (a training run's key set must not change under it) ...
    assert reader_store.reader is view and list(second)[0] not in reader_store
    with pytest.raises(KeyError, match="not in any committed shard"):
        reader_store.read(list(second)[0])
    # ... but a shard named explicitly is read when it has committed since (the precompute's stats pass).
    assert [key for key, _ in reader_store.iter_shard("shard-b")] == list(second)

    reader_store.refresh()
    assert reader_store.reader is not view
    assert reader_store.keys() == list(first) + list(second)
    assert reader_store.lengths() == {key: x.shape[1] for key, x in {**first, **second}.items()}
    for key, x in second.items():
        np.testing.assert_allclose(reader_store.read(key), x, rtol=1e-2, atol=1e-2)  # fp16 storage


def test_an_uncommitted_shard_is_refused_by_name(new_store):
    store = new_store("int8")
    write_shard(store, "shard-a")
    with pytest.raises(KeyError, match="'shard-z' is not committed"):
        next(store.iter_shard("shard-z"))
