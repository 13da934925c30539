"""Training data: a replayed corpus mixed into every epoch (``train.replay_from``), on the tiny corpus."""

from __future__ import annotations

import pytest
import torch

from feature_store import FingerprintMismatch
from pipeline.config import load_config
from pipeline.store import open_store_for
from pipeline.train.data import ReplayMix, TrainingDataError, replayed_corpus, training_data
from pipeline.train.sampler import LengthGroupedSampler

pytestmark = pytest.mark.slow  # the tiny corpus is built with Ray


@pytest.fixture(scope="module")
def mix(tiny_workdir, tmp_path_factory):
    """The tiny corpus's training clips with a second tiny corpus replayed beside them (other texts, same keys)."""
    own = tiny_workdir[0]
    replayed = tmp_path_factory.mktemp("replayed")
    from tests.conftest import build_tiny_workdir

    build_tiny_workdir(replayed, num_utterances=48, extra=("--set", "corpus.seed=7"))
    cfg = load_config("configs/tiny.yaml", [f"workdir={own}", f"train.replay_from={replayed}", "train.replay_share=0.5"])
    data = training_data(cfg, open_store_for(cfg))
    assert isinstance(data, ReplayMix)
    return cfg, data


def test_each_epoch_replays_its_share_of_clips_drawn_anew(mix):
    cfg, data = mix
    lengths = data.shard_lengths()
    own_clips = len(data.own.keys())
    largest = max(len(items) for items in lengths.values())
    replayed_per_epoch = []
    for epoch in range(6):
        shards = data.epoch_shards(lengths, epoch)
        assert [s for s in shards if not s.startswith("replay/")] == sorted(data.own.shard_lengths())  # every own one
        replayed = [s for s in shards if s.startswith("replay/")]
        clips = sum(len(lengths[s]) for s in replayed)
        assert own_clips <= clips < own_clips + largest  # share 0.5: as many as the own clips, whole shards
        replayed_per_epoch.append(frozenset(replayed))
    assert len(set(replayed_per_epoch)) > 1  # other replayed shards in other epochs
    assert len(frozenset().union(*replayed_per_epoch)) > len(replayed_per_epoch[0])


def test_a_mixed_batch_reads_each_clip_from_its_own_corpus(mix):
    cfg, data = mix
    replayed = replayed_corpus(cfg, "train")
    own_key, replayed_key = data.own.keys()[0], replayed.keys()[0]
    assert set(data.own.shard_lengths()) & set(replayed.shard_lengths())  # names alike: the mix keeps them apart
    batch = data.load([own_key, "replay/" + replayed_key])
    alone = [data.own.load([own_key]), replayed.load([replayed_key])]
    for i, single in enumerate(alone):
        assert torch.equal(batch.audio[i], single.audio[0])
        assert batch.rows[i] == single.rows[0]
        frames = int(single.target_lengths[0])
        assert batch.target_lengths[i] == frames
        assert torch.equal(batch.targets[i, :, :frames], single.targets[0])
        assert not batch.targets[i, :, frames:].any()


def test_the_sampler_resumes_a_mixed_epoch_at_the_exact_next_batch(mix):
    _, data = mix

    def sampler():
        return LengthGroupedSampler(data.shard_lengths, batch_size=2, rank=0, world_size=1, seed=3,
                                    epoch_shards=data.epoch_shards)

    uninterrupted = iter(sampler())
    planned = [next(uninterrupted) for _ in range(40)]  # several epochs
    assert any(k.startswith("replay/") for p in planned for k in p.keys)
    assert any(not k.startswith("replay/") for p in planned for k in p.keys)
    resumed = sampler()
    resumed.load_state_dict(planned[23].state_after())
    again = iter(resumed)
    assert [next(again).keys for _ in range(16)] == [p.keys for p in planned[24:]]


def test_a_replayed_store_made_with_other_teacher_settings_is_refused(mix):
    cfg, _ = mix
    other = load_config("configs/tiny.yaml", [f"workdir={cfg.workdir}", f"train.replay_from={cfg.train.replay_from}",
                                              "store.layers=[2]"])
    with pytest.raises(FingerprintMismatch, match="layers"):
        replayed_corpus(other, "train")


def test_a_replayed_corpus_without_shards_or_store_is_named(tmp_path):
    cfg = load_config("configs/tiny.yaml", [f"train.replay_from={tmp_path}"])
    with pytest.raises(TrainingDataError, match=r"train\.replay_from=.*run `aura ingest` and `aura precompute`"):
        replayed_corpus(cfg, "train")


def test_replayed_clips_can_be_left_out_of_the_distillation(mix, tmp_path):
    """``train.replay_distill=false``: a mixed batch's distillation loss is its own clips' alone."""
    from types import SimpleNamespace

    from pipeline.train.distill import DistillRecipe
    from pipeline.train.targets import TargetPreparer

    cfg, data = mix
    cfg = cfg.model_copy(deep=True)
    cfg.train.replay_distill = False
    recipe = DistillRecipe(cfg, tmp_path / "distill")
    recipe.rank, recipe.world, recipe.bf16, recipe._dtype = 0, 1, False, torch.float32
    recipe.device, recipe.store, recipe.data = torch.device("cpu"), open_store_for(cfg), data
    recipe.prepare_targets = TargetPreparer(recipe.store, cfg.student)
    torch.manual_seed(0)
    recipe.engine = SimpleNamespace(module=recipe.build_student().eval())
    own, replayed = data.own.keys()[:2], ["replay/" + k for k in data.replayed.keys()[:2]]
    with torch.no_grad():
        mixed, per_layer = recipe.compute_loss(data.load(own + replayed))
        alone, _ = recipe.compute_loss(data.load(own))
        only_replayed, _ = recipe.compute_loss(data.load(replayed))
        cfg.train.replay_distill = True
        everything, _ = recipe.compute_loss(data.load(own + replayed))
    assert torch.allclose(mixed, alone, atol=1e-5)
    assert float(only_replayed) == 0.0 and not torch.allclose(everything, alone, atol=1e-4)


def test_the_bridge_trains_on_the_same_mix(mix, tmp_path):
    """The bridge baseline (its own trainer) reads replayed clips' Whisper states from their own store and draws
    them in their share, so `aura eval` compares AuRA and the bridge on the same data."""
    from pipeline.train.bridge import _TeacherStates, teacher_final_layer, train_bridge

    cfg, data = mix
    final_layer, _ = teacher_final_layer(cfg)
    states = _TeacherStates(cfg, data.own.store, final_layer)
    assert states.source == "store"  # the tiny store holds Whisper's last layer: no live encoder
    own_key, replayed_key = data.own.keys()[0], data.replayed.keys()[0]
    padded, lengths = states.batch([own_key, "replay/" + replayed_key], data)
    for i, (store, key) in enumerate([(data.own.store, own_key), (data.replayed.store, replayed_key)]):
        alone = torch.from_numpy(store.read(key, layers=[final_layer])[0]).float()
        assert torch.equal(padded[i, : int(lengths[i])].float(), alone)
    result = train_bridge(cfg, out_path=tmp_path / "projector.safetensors", steps=6, batch_size=4, progress=False)
    assert 0 < result.replayed < 24  # share 0.5 of each epoch's clips
    assert len(result.losses) == 6
