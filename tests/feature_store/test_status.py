import numpy as np
import pytest
from feature_store_helpers import activations, write_shard

from feature_store import FeatureStore, format_status, status
from feature_store.schema import COMMIT_MARKER


def test_status_numbers(new_store, store_path):
    store = new_store("fp16")
    a = write_shard(store, "a")
    b = write_shard(store, "b")
    with store.shard_writer("c") as writer:
        writer.add_failure("c-1", "too long")
    write_shard(store, "d")
    (store_path / "shards" / "d" / COMMIT_MARKER).unlink()  # an interrupted write
    lease = store.try_claim("e", owner="busy-worker")

    st = status(FeatureStore.open(store_path), manifest_shards=["a", "b", "c", "d", "e", "f"])
    frames = sum(x.shape[1] for x in [*a.values(), *b.values()])
    hours = frames / 50.0 / 3600
    assert st["shards_committed"] == 3 and st["shards_uncommitted"] == 1
    assert st["shards_pending"] == 3 and st["pending_shards"] == ["d", "e", "f"]
    assert st["shards_unexpected"] == 0
    assert st["samples"] == 8 and st["failures"] == 1 and st["frames"] == frames
    assert st["audio_hours"] == pytest.approx(hours)
    committed_bytes = sum(store.bytes_on_disk(s) for s in "abc")
    assert st["bytes_committed"] == committed_bytes < st["bytes_on_disk"]
    assert st["bytes_per_audio_hour_per_layer"] == pytest.approx(committed_bytes / hours / 3)
    assert [(x["shard"], x["owner"], x["stale"]) for x in st["leases"]] == [("e", "busy-worker", None)]
    text = format_status(st)
    assert "3 committed, 3 pending, 1 uncommitted" in text and "busy-worker" in text
    lease.release()


def test_status_without_manifest_and_empty_store(new_store):
    st = status(new_store("int8"))
    assert st["shards_pending"] is None and st["pending_shards"] is None
    assert st["samples"] == 0 and st["audio_hours"] == 0
    assert st["bytes_per_audio_hour_per_layer"] is None
    text = format_status(st)
    # No manifest: pending is unknown ("-"), not zero; sizes per audio hour are unknown too.
    assert "0 committed, - pending, 0 uncommitted" in text and "samples 0 (0 failed)" in text
    assert "- per audio-hour per layer" in text


@pytest.mark.parametrize(
    ("codec", "low", "high"),
    # Bytes per frame per layer per width on disk, chunk checksums and metadata included.
    [("fp16", 2.0, 2.1), ("bf16", 1.0, 2.0), ("int8", 0.5, 1.15)],
)
def test_bytes_per_frame_per_width_on_disk(new_store, codec, low, high):
    store = new_store(codec, chunk_frames=256, width=512)
    rng = np.random.default_rng(0)
    with store.shard_writer("s") as writer:
        for i in range(8):
            writer.add(f"k{i}", activations(rng, 3, 500, 512))
    st = status(store)
    per_value = st["bytes_per_frame_per_layer_per_width"]
    print(f"{codec} ({st['compression']}): {per_value:.3f} bytes per frame per layer per width")
    assert low < per_value < high
