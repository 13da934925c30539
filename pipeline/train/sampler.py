"""A resumable, length-grouped, shard-partitioned batch sampler.

Each epoch the shard list is shuffled with ``(seed, epoch)`` and dealt to ranks round-robin, so no
two ranks read the same shard. A rank walks its shards in windows of ``window_shards``: inside a
window samples are sorted by length, cut into batches and the batches shuffled (padding stays low
and the audio of only a few shards is needed at a time). Every rank takes the same number of
batches (the smallest over ranks), so DeepSpeed's collectives never wait on a rank that ran dry.

The state is ``(epoch, position, shards)``; the order is a pure function of it, so restoring the
state resumes at the exact next batch. The shard list is a snapshot taken at the start of an epoch:
shards committed to the store while a run is going are picked up at the next epoch boundary.

Usage::

    >>> sampler = LengthGroupedSampler(lambda: {"shard-000000": [("a", 16000), ("b", 8000)]},
    ...                                batch_size=2, rank=0, world_size=1, seed=0)
    >>> planned = next(iter(sampler))
    >>> sorted(planned.keys)
    ['a', 'b']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

import numpy as np

ShardLengths = dict[str, list[tuple[str, int]]]


@dataclass
class SamplerState:
    epoch: int = 0
    position: int = 0  # batches of this epoch already consumed
    shards: list[str] = field(default_factory=list)  # the epoch's shard snapshot; empty = take a new one


@dataclass(frozen=True)
class PlannedBatch:
    epoch: int
    position: int
    keys: list[str]
    shards: list[str]

    def state_after(self) -> dict:
        """The sampler state once this batch has been trained on (what a checkpoint stores)."""
        return asdict(SamplerState(self.epoch, self.position + 1, list(self.shards)))


class LengthGroupedSampler:
    """See the module docstring. ``list_shards`` returns ``{shard: [(key, num_samples), ...]}``; ``epoch_shards``
    (default: all of them) picks the shards of an epoch from it and the epoch's number (e.g. a replayed
    corpus's share, :func:`pipeline.train.data.replay_epoch_shards`)."""

    def __init__(self, list_shards: Callable[[], ShardLengths], batch_size: int, rank: int, world_size: int,
                 seed: int, window_shards: int = 4, epoch_shards: Callable[[ShardLengths, int], list[str]] | None = None):
        self.list_shards = list_shards
        self.epoch_shards = epoch_shards or (lambda lengths, epoch: sorted(lengths))
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.window_shards = window_shards
        self.state = SamplerState()
        self._lengths: ShardLengths = {}

    # ------------------------------------------------------------------ order
    def _rank_batches(self, lengths: ShardLengths, shards: list[str], epoch: int, rank: int) -> list[list[str]]:
        rng = np.random.default_rng([self.seed, epoch])
        ordered = [shards[i] for i in rng.permutation(len(shards))]
        mine = ordered[rank :: self.world_size]
        batch_rng = np.random.default_rng([self.seed, epoch, rank])
        batches: list[list[str]] = []
        for w in range(0, len(mine), self.window_shards):
            window = [item for shard in mine[w : w + self.window_shards] for item in lengths[shard]]
            window.sort(key=lambda item: (item[1], item[0]))
            chunk = [[key for key, _ in window[i : i + self.batch_size]] for i in range(0, len(window), self.batch_size)]
            batches.extend(chunk[i] for i in batch_rng.permutation(len(chunk)))
        return batches

    def epoch_batches(self, epoch: int, shards: list[str]) -> list[list[str]]:
        """This rank's batches for ``epoch`` over the ``shards`` snapshot (same count on every rank)."""
        missing = [s for s in shards if s not in self._lengths]
        if missing:
            self._lengths = self.list_shards()
            missing = [s for s in shards if s not in self._lengths]
            if missing:
                raise RuntimeError(f"sampler state names shards that no longer exist: {missing[:5]}")
        if len(shards) < self.world_size:
            raise RuntimeError(
                f"{len(shards)} shard(s) for {self.world_size} workers: each worker needs at least one shard "
                "(ingest with fewer samples_per_shard or train with fewer workers)"
            )
        per_rank = [self._rank_batches(self._lengths, shards, epoch, r) for r in range(self.world_size)]
        steps = min(len(b) for b in per_rank)
        if steps == 0:
            raise RuntimeError("an epoch has no batch for some worker")
        return per_rank[self.rank][:steps]

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[PlannedBatch]:
        """Yield batches forever, starting at the current state."""
        while True:
            if not self.state.shards:
                self._lengths = self.list_shards()
                self.state.shards = self.epoch_shards(self._lengths, self.state.epoch)
            batches = self.epoch_batches(self.state.epoch, self.state.shards)
            while self.state.position < len(batches):
                position = self.state.position
                self.state.position += 1
                yield PlannedBatch(self.state.epoch, position, batches[position], self.state.shards)
            self.state = SamplerState(epoch=self.state.epoch + 1)

    def state_dict(self) -> dict:
        return asdict(self.state)

    def load_state_dict(self, state: dict) -> None:
        self.state = SamplerState(**state)
