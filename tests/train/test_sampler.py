import itertools

import pytest

from pipeline.train.sampler import LengthGroupedSampler


def _shards(n_shards, per_shard=5, offset=0):
    return {
        f"shard-{s:06d}": [(f"s{s}k{i}", 1000 * ((s * 7 + i * 3) % 11 + 1)) for i in range(per_shard)]
        for s in range(offset, offset + n_shards)
    }


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_ranks_never_share_shards_and_take_equal_steps():
    shards = _shards(7)
    samplers = [LengthGroupedSampler(lambda: shards, 2, r, 3, seed=1) for r in range(3)]
    per_rank = [s.epoch_batches(0, sorted(shards)) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1
    owners = {}
    for rank, batches in enumerate(per_rank):
        for key in (k for b in batches for k in b):
            shard = key.split("k")[0]
            assert owners.setdefault(shard, rank) == rank
    all_keys = [k for b in per_rank for batch in b for k in batch]
    assert len(all_keys) == len(set(all_keys))


def test_batches_are_length_grouped():
    shards = _shards(4, per_shard=8)
    lengths = {k: n for items in shards.values() for k, n in items}
    sampler = LengthGroupedSampler(lambda: shards, 4, 0, 1, seed=0, window_shards=4)
    batches = sampler.epoch_batches(0, sorted(shards))
    spread = sum(max(lengths[k] for k in b) - min(lengths[k] for k in b) for b in batches)
    random_spread = sum(max(lengths[k] for k in b) - min(lengths[k] for k in b)
                        for b in [list(lengths)[i:i + 4] for i in range(0, 32, 4)])
    assert spread < random_spread


def test_state_restores_the_exact_next_batch_across_epochs():
    shards = _shards(4)
    full = _take(LengthGroupedSampler(lambda: shards, 3, 0, 1, seed=5), 12)
    assert full[0].epoch == 0 and full[-1].epoch >= 1
    for k in range(1, 11):
        resumed = LengthGroupedSampler(lambda: shards, 3, 0, 1, seed=5)
        resumed.load_state_dict(full[k - 1].state_after())
        assert [b.keys for b in _take(resumed, 12 - k)] == [b.keys for b in full[k:]]


def test_epochs_differ_and_growth_is_picked_up_at_the_epoch_boundary():
    current = dict(_shards(3))
    sampler = LengthGroupedSampler(lambda: current, 2, 0, 1, seed=0)
    it = iter(sampler)
    first = next(it)
    current.update(_shards(2, offset=3))  # new shards committed mid-epoch
    epoch0 = [first] + [b for b in itertools.takewhile(lambda b: b.epoch == 0, it)]
    assert all(b.shards == first.shards for b in epoch0)
    assert len(first.shards) == 3
    nxt = next(it)
    assert nxt.epoch == 1 and len(nxt.shards) == 5


def test_too_few_shards_for_the_workers_is_a_clear_error():
    shards = _shards(1)
    with pytest.raises(RuntimeError, match="at least one shard"):
        LengthGroupedSampler(lambda: shards, 2, 0, 2, seed=0).epoch_batches(0, sorted(shards))
