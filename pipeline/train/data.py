"""Training data: audio shards joined with cached teacher targets by sample key.

:class:`TrainingData` knows which samples can be trained on (manifest rows of committed store shards,
split ``train``, not failed in the teacher) and loads batches: audio from the webdataset shards
(decoded shard by shard through a small cache, since the sampler walks a few shards at a time) and
targets from the zarr store. :class:`ReplayMix` adds another corpus's clips (``train.replay_from``), a share of
every epoch. :class:`Prefetcher` loads the next batches in a thread so that the
loader wait stays a small share of the step time.

Usage::

    >>> data = TrainingData(ShardSet("runs/demo/shards"), store, split="train")          # doctest: +SKIP
    >>> data.check_complete()        # every manifest key of a committed shard has targets      # doctest: +SKIP
    >>> batch = data.load(["key1", "key2"], with_targets=True)                           # doctest: +SKIP
    >>> batch.targets.shape          # (batch, layers, max_frames, width)                      # doctest: +SKIP
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from feature_store import FeatureStore
from pipeline.data.shards import ShardSet
from pipeline.train.targets import pad_targets, read_targets


def spread_evenly(items: list, count: int | None) -> list:
    """``count`` of ``items`` spread evenly over them, the first and the last included (all when fewer).

    >>> spread_evenly(list(range(10)), 4)
    [0, 3, 6, 9]
    >>> spread_evenly([1, 2], 5)
    [1, 2]
    """
    if count is None or len(items) <= count:
        return list(items)
    return [items[round(i * (len(items) - 1) / max(count - 1, 1))] for i in range(count)]


class TrainingDataError(RuntimeError):
    """The shards and the store do not fit together (missing keys, nothing to train on)."""


@dataclass
class Batch:
    keys: list[str]
    audio: list[torch.Tensor]  # float32 mono 16 kHz, unpadded
    rows: list[dict[str, Any]]  # manifest rows (text, task, question, answer, ...)
    targets: torch.Tensor | None = None  # (B, layers, max_frames, width), zero padded
    target_lengths: torch.Tensor | None = None  # (B,)
    epoch: int | None = None  # set on training batches: per-clip augmentation is drawn per epoch


class TrainingData:
    """Samples usable for training or held-out evaluation; see the module docstring."""

    def __init__(self, shards: ShardSet, store: FeatureStore | None, split: str | None = "train",
                 cache_shards: int = 8, tasks: Iterable[str] | None = None):
        self.shards = shards
        self.store = store
        self.split = split
        self.tasks = set(tasks) if tasks is not None else None
        self.cache_shards = cache_shards
        self._audio_cache: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self.refresh()

    def _row_selected(self, row: dict[str, Any]) -> bool:
        split = row.get("split") or "train"
        if self.split is not None and split != self.split:
            return False
        return self.tasks is None or (row.get("task") or "transcribe") in self.tasks

    def refresh(self) -> None:
        """Re-read the manifest and the store's committed shards (at an epoch boundary)."""
        rows = self.shards.manifest_rows()
        self.rows = {r["key"]: r for r in rows}
        if self.store is not None:
            self.store.refresh()
            committed = self.store.committed_shards()
            failed = self.store.failures()
        else:
            committed = {r["shard"] for r in rows}
            failed = {}
        self.committed = committed
        self.by_shard: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for r in rows:
            if r["shard"] in committed and r["key"] not in failed and self._row_selected(r):
                self.by_shard[r["shard"]].append((r["key"], int(r["num_samples"])))
        self.pending_shards = sorted({r["shard"] for r in rows} - committed)

    def shard_lengths(self) -> dict[str, list[tuple[str, int]]]:
        """For the sampler: ``{shard: [(key, num_samples), ...]}`` of selected samples."""
        self.refresh()
        return {shard: items for shard, items in self.by_shard.items() if items}

    def keys(self) -> list[str]:
        return [key for shard in sorted(self.by_shard) for key, _ in self.by_shard[shard]]

    def check_complete(self) -> None:
        """Fail before training if the store lacks targets for selected samples of committed shards."""
        if self.store is None:
            return
        if not self.by_shard:
            raise TrainingDataError(
                f"nothing to train on: no committed store shard holds {self.split or 'any'} samples "
                f"({len(self.pending_shards)} shard(s) not yet precomputed; run `aura precompute`)"
            )
        stored = set(self.store.keys())
        missing = [key for key in self.keys() if key not in stored]
        if missing:
            raise TrainingDataError(
                f"the feature store {self.store.path} has no targets for {len(missing)} manifest sample(s) "
                f"of committed shards, e.g. {missing[:5]}; were the shards re-ingested after precompute? "
                "Run `aura store verify` and `aura precompute`."
            )

    # ------------------------------------------------------------------ loading
    def _shard_audio(self, shard: str) -> dict[str, np.ndarray]:
        with self._lock:
            if shard in self._audio_cache:
                self._audio_cache.move_to_end(shard)
                return self._audio_cache[shard]
        audio = {s.key: s.audio for s in self.shards.iter_shard(shard)}
        with self._lock:
            self._audio_cache[shard] = audio
            while len(self._audio_cache) > self.cache_shards:
                self._audio_cache.popitem(last=False)
        return audio

    def audio(self, key: str) -> np.ndarray:
        return self._shard_audio(self.rows[key]["shard"])[key]

    def source(self, key: str) -> tuple[TrainingData, str]:
        """The corpus that holds ``key`` and its name there: this one (see :meth:`ReplayMix.source`)."""
        return self, key

    def read_targets(self, keys: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The stored teacher states of ``keys``, zero padded, with their lengths."""
        return read_targets(self.store, keys)

    def load(self, keys: list[str], with_targets: bool = True) -> Batch:
        return load_batch(self, keys, with_targets and self.store is not None)

    def epoch_shards(self, lengths: dict[str, list[tuple[str, int]]], epoch: int) -> list[str]:
        """The shards an epoch walks (for the sampler): all of them."""
        return sorted(lengths)


def load_batch(data, keys: list[str], with_targets: bool) -> Batch:
    """A :class:`Batch` of ``keys`` from ``data``'s ``audio(key)``, ``rows`` and ``read_targets(keys)``."""
    audio = [torch.from_numpy(np.asarray(data.audio(k), dtype=np.float32)) for k in keys]
    batch = Batch(keys=list(keys), audio=audio, rows=[data.rows[k] for k in keys])
    if with_targets:
        batch.targets, batch.target_lengths = data.read_targets(keys)
    return batch


def replay_epoch_shards(lengths: dict[str, list[tuple[str, int]]], epoch: int, share: float, seed: int,
                        prefix: str = "replay/") -> list[str]:
    """An epoch's shards when a replayed corpus (shard names starting with ``prefix``) is mixed in: every own
    shard, and replayed shards drawn anew each epoch (from ``seed`` and ``epoch``) until they hold ``share`` of
    the epoch's clips (whole shards: a little more, at most one shard; all of them when there are not enough).

    >>> lengths = {"a": [("a1", 1)] * 4, **{f"replay/{i}": [("r", 1)] * 2 for i in range(6)}}
    >>> chosen = replay_epoch_shards(lengths, epoch=0, share=0.5, seed=0)
    >>> [s for s in chosen if not s.startswith("replay/")], len(chosen) - 1   # 4 replayed clips for 4 own clips
    (['a'], 2)
    >>> chosen != replay_epoch_shards(lengths, epoch=1, share=0.5, seed=0)   # other shards next epoch
    True
    """
    own = sorted(s for s in lengths if not s.startswith(prefix))
    replayed = sorted(s for s in lengths if s.startswith(prefix))
    wanted = share / (1 - share) * sum(len(lengths[s]) for s in own)
    chosen, clips = [], 0
    for i in np.random.default_rng([seed, epoch]).permutation(len(replayed)):
        if clips >= wanted:
            break
        chosen.append(replayed[i])
        clips += len(lengths[replayed[i]])
    return sorted(own + chosen)


class ReplayMix:
    """This run's training clips with another corpus's replayed beside them (``train.replay_from``).

    The replayed corpus's shards and keys are named ``replay/<name>`` here (the two corpora may use the same
    names); each epoch walks every own shard and a fresh draw of replayed shards (:func:`replay_epoch_shards`),
    so over the epochs the whole replayed corpus comes round. Audio, rows and targets come from the corpus a key
    belongs to. It reads like a :class:`TrainingData` to the sampler and the recipes.
    """

    PREFIX = "replay/"

    def __init__(self, own: TrainingData, replayed: TrainingData, share: float, seed: int):
        self.own, self.replayed, self.share, self.seed = own, replayed, share, seed
        self._merge_rows()  # each corpus read itself when it was made

    def refresh(self) -> None:
        self.own.refresh()
        self.replayed.refresh()
        self._merge_rows()

    def _merge_rows(self) -> None:
        self.rows = {**self.own.rows, **{self.PREFIX + k: row for k, row in self.replayed.rows.items()}}

    @classmethod
    def is_replayed(cls, key: str) -> bool:
        """Whether a key of this mix names a replayed clip.

        >>> ReplayMix.is_replayed("replay/utt-1"), ReplayMix.is_replayed("utt-1")
        (True, False)
        """
        return key.startswith(cls.PREFIX)

    def source(self, key: str) -> tuple[TrainingData, str]:
        """The corpus that holds ``key`` and its name there (its store reads it by that name)."""
        if self.is_replayed(key):
            return self.replayed, key[len(self.PREFIX):]
        return self.own, key

    def shard_lengths(self) -> dict[str, list[tuple[str, int]]]:
        lengths = self.own.shard_lengths()
        for shard, items in self.replayed.shard_lengths().items():
            lengths[self.PREFIX + shard] = [(self.PREFIX + key, n) for key, n in items]
        self._merge_rows()  # both corpora were re-read
        return lengths

    def epoch_shards(self, lengths: dict[str, list[tuple[str, int]]], epoch: int) -> list[str]:
        return replay_epoch_shards(lengths, epoch, self.share, self.seed, self.PREFIX)

    def keys(self) -> list[str]:
        return self.own.keys() + [self.PREFIX + k for k in self.replayed.keys()]

    def check_complete(self) -> None:
        self.own.check_complete()
        self.replayed.check_complete()

    def audio(self, key: str) -> np.ndarray:
        source, key = self.source(key)
        return source.audio(key)

    def read_targets(self, keys: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_targets([source.store.read(key) for source, key in map(self.source, keys)])

    def load(self, keys: list[str], with_targets: bool = True) -> Batch:
        return load_batch(self, keys, with_targets)


def replayed_corpus(cfg, split: str, tasks: Iterable[str] | None = None) -> TrainingData:
    """``split`` of the corpus in ``train.replay_from``, its store opened read-only with this config's teacher
    fingerprint (a store made with other teacher settings is refused, naming the field)."""
    from pipeline.config import WORKDIR_LAYOUT
    from pipeline.store import teacher_fingerprint

    workdir = cfg.train.replay_from
    shards, store = workdir / WORKDIR_LAYOUT["shards"], workdir / WORKDIR_LAYOUT["store"]
    if not (shards.is_dir() and store.is_dir()):
        raise TrainingDataError(f"train.replay_from={workdir}: a replayed corpus needs its shards ({shards}) and its "
                                f"feature store ({store}); run `aura ingest` and `aura precompute` there first")
    return TrainingData(ShardSet(shards), FeatureStore.open(store, teacher_fingerprint(cfg), mode="r"), split=split,
                        tasks=tasks)


def training_data(cfg, store: FeatureStore | None, tasks: Iterable[str] | None = None) -> TrainingData | ReplayMix:
    """The clips a run trains on: the training split of ``paths.shards``, with ``train.replay_from``'s mixed in."""
    own = TrainingData(ShardSet(cfg.paths.shards), store, split="train", tasks=tasks)
    if cfg.train.replay_from is None:
        return own
    return ReplayMix(own, replayed_corpus(cfg, "train", tasks), cfg.train.replay_share, cfg.train.seed)


class Prefetcher:
    """Loads batches in a background thread, ``depth`` ahead; measures the time the consumer waits."""

    _DONE = object()

    def __init__(self, plans: Iterator[Any], load, depth: int = 2):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._plans = plans
        self._load = load
        self._stop = threading.Event()
        self.wait_seconds = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for plan in self._plans:
                if self._stop.is_set():
                    return
                item = (plan, self._load(plan))
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # surface loader errors in the training thread
            self._queue.put(exc)
        self._queue.put(self._DONE)

    def __iter__(self):
        return self

    def __next__(self):
        start = time.perf_counter()
        item = self._queue.get()
        self.wait_seconds += time.perf_counter() - start
        if item is self._DONE:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
