"""Baselines with the random tiny models: the bridge projector learns and round-trips; cascade and
text-only produce strings."""

import numpy as np
import pytest
import torch

from pipeline.config import load_config
from pipeline.eval.systems import BridgeSystem, CascadeSystem, TextOnlySystem
from pipeline.models.bridge import BridgeProjector, bridge_loss, load_projector, save_projector
from pipeline.prompts import instruction_for
from pipeline.train.bridge import stage2_budget


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    return load_config("configs/tiny.yaml", [f"workdir={tmp_path_factory.mktemp('bl')}"])


@pytest.fixture(scope="module")
def llm_and_tokenizer(tiny_cfg):
    from pipeline.models.sources import load_llm

    llm, tok = load_llm(tiny_cfg.models.llm, tiny_cfg.models.cache_dir)
    llm.requires_grad_(False)
    return llm, tok


def test_projector_stacks_frames_and_ignores_padding():
    proj = BridgeProjector(teacher_width=8, llm_width=16, stack=2)
    states = torch.randn(1, 5, 8)
    alone, n = proj(states, torch.tensor([5]))
    padded = torch.cat([states, torch.randn(1, 3, 8)], dim=1)  # garbage past the length
    batched, m = proj(padded, torch.tensor([5]))
    assert n.tolist() == m.tolist() == [3]
    torch.testing.assert_close(alone[0, :3], batched[0, :3])


def test_bridge_projector_trains_and_round_trips(llm_and_tokenizer, tmp_path):
    llm, tok = llm_and_tokenizer
    torch.manual_seed(0)
    proj = BridgeProjector(teacher_width=64, llm_width=llm.config.hidden_size, stack=4)
    states = torch.randn(2, 30, 64)
    lengths = torch.tensor([30, 22])
    rows = [{"task": "transcribe", "text": "the quick brown fox"},
            {"task": "spoken_qa", "text": "what is the capital of france", "answer": "paris"}]
    optimizer = torch.optim.AdamW(proj.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        loss = bridge_loss(llm, tok, proj, states, lengths, rows)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.05, losses
    assert all(p.grad is None for p in llm.parameters())  # the LLM stays frozen

    path = save_projector(proj, tmp_path / "bridge" / "projector.safetensors",
                          {"teacher_layer": 4, "pooling": 1, "steps": 6})
    again, meta = load_projector(path)
    assert meta["teacher_layer"] == 4 and meta["projector"]["stack"] == 4
    with torch.no_grad():
        torch.testing.assert_close(proj(states, lengths)[0], again(states, lengths)[0])
        assert float(bridge_loss(llm, tok, again, states, lengths, rows)) == pytest.approx(
            float(bridge_loss(llm, tok, proj, states, lengths, rows)), rel=1e-5)


def test_bridge_system_answers_with_a_live_encoder(tiny_cfg, llm_and_tokenizer, tmp_path):
    llm, _ = llm_and_tokenizer
    proj = BridgeProjector(teacher_width=64, llm_width=llm.config.hidden_size, stack=4)
    path = save_projector(proj, tmp_path / "p.safetensors", {"teacher_layer": 4, "pooling": 1})
    bridge = BridgeSystem.from_config(tiny_cfg, projector_path=path, device="cpu")
    audio = (0.1 * np.random.default_rng(0).standard_normal(12000)).astype(np.float32)
    result = bridge.answer(audio, instruction_for("transcribe"), max_new_tokens=4)
    assert isinstance(result.text, str) and result.new_tokens <= 4
    assert result.num_audio_tokens == 10  # 12000 samples -> 38 teacher frames -> ceil(38 / 4)
    assert 0 < result.time_to_first_token_s <= result.latency_s


def test_cascade_and_text_only_produce_strings(tiny_cfg):
    audio = (0.1 * np.random.default_rng(1).standard_normal(8000)).astype(np.float32)
    cascade = CascadeSystem.from_config(tiny_cfg, device="cpu")
    transcript = cascade.answer(audio, instruction_for("transcribe"), task="transcribe", max_new_tokens=4)
    qa = cascade.answer(audio, instruction_for("spoken_qa"), task="spoken_qa", max_new_tokens=4)
    assert isinstance(transcript.text, str) and isinstance(qa.text, str)
    assert transcript.prompt_tokens == 0  # transcription: Whisper's transcript is the output, no LLM
    assert qa.prompt_tokens > 0 and qa.latency_s >= qa.time_to_first_token_s > 0

    text = TextOnlySystem.from_config(tiny_cfg, device="cpu")
    out = text.answer(None, instruction_for("spoken_qa"), task="spoken_qa",
                      transcript="what is the capital of france", max_new_tokens=4)
    assert isinstance(out.text, str) and out.prompt_tokens > 0 and out.num_audio_tokens == 0
    with pytest.raises(ValueError):
        text.answer(None, "x")


def test_stage2_budget_is_stage_2s_steps_not_stage_1s(tiny_cfg):
    cfg = tiny_cfg.model_copy(deep=True)
    cfg.train.max_steps, cfg.train.tasks_max_steps, cfg.train.batch_size, cfg.train.num_workers = 70, 8, 4, 2
    assert stage2_budget(cfg) == (8, 8)  # stage 2's 8 steps x the global batch of 2 workers x 4
    cfg.train.tasks_max_steps = None  # stage 2 without its own budget runs stage 1's
    assert stage2_budget(cfg) == (70, 8)
