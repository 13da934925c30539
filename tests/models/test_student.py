"""The AuRA student on a random tiny Llama (eager and sdpa attention): token counts, trainable parts,
the attention mask, truncated forward, loss, save/load and LoRA merging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

from pipeline.config import StudentConfig
from pipeline.data.mel import WHISPER_WINDOW_SAMPLES, MelSettings, log_mel, teacher_frames
from pipeline.models.distillation import default_layer_map, distillation_loss, validate_layer_map
from pipeline.models.patch_embedding import AudioPatchEmbedding
from pipeline.models.sequence import build_attention_mask, layout_speech_batch, position_ids_from_mask
from pipeline.models.student import AuraStudent

N_MELS = 16
TEACHER_LAYERS = [2, 4]
TEACHER_WIDTH = 24
NUM_LAYERS = 4
ATOL = 1e-5  # float32 on CPU: same maths in a different order

torch.set_num_threads(1)


def make_llm(impl: str, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=NUM_LAYERS,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         attn_implementation=impl)
    return LlamaForCausalLM(config).eval()


def make_student(impl: str, seed: int = 0, pooling: int = 1, **cfg) -> AuraStudent:
    """Teacher layers [2, 4] -> student {2: 2, 4: 3}; LoRA on layers 0..2 (K = 3), layer 4 untouched."""
    cfg = StudentConfig(lora_rank=4, lora_alpha=8.0, distill_depth=3, **cfg)
    student = AuraStudent.from_llm(make_llm(impl, seed), cfg, TEACHER_LAYERS, TEACHER_WIDTH, N_MELS, pooling)
    # LoRA B starts at zero (adapter = identity); randomise it so LoRA really changes the outputs.
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in student.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    return student.eval()


@pytest.fixture(params=["eager", "sdpa"])
def impl(request) -> str:
    return request.param


@pytest.fixture
def student(impl) -> AuraStudent:
    return make_student(impl)


def random_mel(batch: int, tokens: int, stride: int = 2, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, N_MELS, tokens * stride, generator=gen)


def mixed_batch(prefix=(5, 6, 7), tokens=4, suffix=(8, 9, 10), targets=None):
    return layout_speech_batch([list(prefix)], [tokens], after_audio=[list(suffix)], targets=targets, pad_id=0)


# -------------------------------------------------------------------------------- token counts


@pytest.mark.parametrize("pooling", [1, 2])
def test_token_count_equals_teacher_frames(pooling):
    embed = AudioPatchEmbedding(N_MELS, 32, stride=2 * pooling)
    lengths = [1, 159, 160, 319, 320, 321, 639, 641, 16000, 16001, 7777]
    audios = [np.zeros(n, dtype=np.float32) + 0.01 for n in lengths]
    mel, token_lengths = embed.mel_batch(audios)
    expected = [teacher_frames(n, pooling) for n in lengths]
    assert [embed.num_tokens(n) for n in lengths] == expected
    assert token_lengths.tolist() == expected
    assert mel.shape == (len(lengths), N_MELS, max(expected) * 2 * pooling)
    assert embed(mel).shape == (len(lengths), max(expected), 32)
    # A mel straight from log_mel (samples // hop frames) is padded up to the teacher's count.
    for n in lengths:
        plain = log_mel(torch.full((n + 400,), 0.01), MelSettings(n_mels=N_MELS))[:, : n // 160]
        assert embed(plain[None], embed.num_tokens(n)).shape[1] == teacher_frames(n, pooling)


def test_student_mel_equals_teacher_window_mel():
    """The frames the student sees are the frames inside Whisper's zero-padded 30 s window."""
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(12345)).astype(np.float32)
    settings = MelSettings(n_mels=N_MELS)
    mel, lengths = AudioPatchEmbedding(N_MELS, 32, stride=2).mel_batch([audio])
    window = torch.zeros(WHISPER_WINDOW_SAMPLES)
    window[: len(audio)] = torch.from_numpy(audio)
    teacher_mel = log_mel(window, settings)[:, : int(lengths[0]) * 2]
    torch.testing.assert_close(mel[0], teacher_mel, atol=1e-6, rtol=0)  # bit-identical here


# -------------------------------------------------------------------------------- layer map


def test_default_layer_map_examples():
    assert default_layer_map([1, 2, 3, 4], 8) == {1: 2, 2: 4, 3: 6, 4: 8}
    assert default_layer_map([2, 4], 3) == {2: 2, 4: 3}
    assert default_layer_map([8, 16, 24, 32], 15) == {8: 4, 16: 8, 24: 11, 32: 15}
    assert default_layer_map([0, 1, 2], 3) == {0: 1, 1: 2, 2: 3}   # layer 0 -> at least decoder layer 1
    crowded = default_layer_map(list(range(1, 33)), 32)
    assert list(crowded.values()) == list(range(1, 33))
    dense = default_layer_map(list(range(1, 13)), 12)
    assert list(dense.values()) == sorted(set(dense.values()))
    with pytest.raises(ValueError, match="distinct"):
        default_layer_map([1, 2, 3], 2)


def test_validate_layer_map():
    assert validate_layer_map({4: 3, 2: 1}, 4, teacher_layers=[2, 4]) == {2: 1, 4: 3}
    with pytest.raises(ValueError, match="1..4"):
        validate_layer_map({2: 5}, 4)
    with pytest.raises(ValueError, match="1..4"):
        validate_layer_map({2: 0}, 4)
    with pytest.raises(ValueError, match="increasing"):
        validate_layer_map({2: 3, 4: 2}, 4)
    with pytest.raises(ValueError, match="increasing"):
        validate_layer_map({2: 3, 4: 3}, 4)
    with pytest.raises(ValueError, match="not among"):
        validate_layer_map({3: 1}, 4, teacher_layers=[2, 4])


def test_user_layer_map_and_lora_layers_from_config():
    s = make_student("sdpa", layer_map={2: 1, 4: 2}, lora_layers=1)
    assert s.layer_map == {2: 1, 4: 2} and s.distill_depth == 2 and s.lora_layers == 1
    with pytest.raises(ValueError, match="lora_layers"):
        make_student("sdpa", lora_layers=NUM_LAYERS + 1)


# -------------------------------------------------------------------------------- trainable parts


def test_only_patch_embedding_lora_below_k_and_heads_are_trainable():
    s = make_student("sdpa")
    k = s.lora_layers
    assert k == 3 and s.layer_map == {2: 2, 4: 3}
    trainable = {n for n, p in s.named_parameters() if p.requires_grad}
    assert {id(p) for p in s.trainable_parameters()} == {id(p) for n, p in s.named_parameters() if n in trainable}
    for name in trainable:
        if name.startswith(("patch_embedding.", "heads.")):
            continue
        assert "lora_A" in name or "lora_B" in name, name
        assert "bias" not in name, name
        layer = int(name.split(".layers.")[1].split(".")[0])
        assert layer < k, name
    # every target projection of every layer < K carries LoRA; none at or beyond K
    targets = StudentConfig().lora_targets
    lora_modules = {n.rsplit(".lora_A", 1)[0] for n in trainable if ".lora_A." in n}
    assert len(lora_modules) == k * len(targets)
    assert not any(f".layers.{k}." in n for n in lora_modules)

    s.train()
    mel, lengths = random_mel(2, 6), torch.tensor([6, 4])
    out = s.forward_distill(mel, lengths)
    targets_ = {j: torch.randn_like(v) for j, v in out["layer_states"].items()}
    loss, _ = distillation_loss(out["layer_states"], targets_, out["token_mask"])
    loss.backward()
    for name, param in s.named_parameters():
        if name in trainable:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name


def test_lora_deeper_than_the_distilled_layers_is_frozen_for_stage_1():
    """LoRA on all 4 layers, distillation to depth 3: stage 1 freezes layer 4's LoRA (its forward stops at
    layer 3), and every parameter it still trains gets a gradient."""
    s = make_student("sdpa", lora_layers=4).train()
    frozen = s.freeze_lora(range(s.distill_depth, s.lora_layers))
    assert frozen == 2 * len(StudentConfig().lora_targets)  # A and B of layer 4
    mel, lengths = random_mel(2, 6), torch.tensor([6, 4])
    out = s.forward_distill(mel, lengths)
    loss, _ = distillation_loss(out["layer_states"], {j: torch.randn_like(v) for j, v in out["layer_states"].items()},
                                out["token_mask"])
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in s.trainable_parameters())
    assert not any(".layers.3." in n for n, p in s.named_parameters() if p.requires_grad)
    assert any(".layers.3." in k for k in s.trainable_state_dict())  # still saved (zero update) for stage 2


# -------------------------------------------------------------------------------- mask


def test_build_attention_mask_pattern():
    # [text text audio audio text audio pad]: two audio runs, each bidirectional only within itself
    attention = torch.tensor([[1, 1, 1, 1, 1, 1, 0]])
    audio = torch.tensor([[0, 0, 1, 1, 0, 1, 0]]).bool()
    allowed = build_attention_mask(attention, audio, implementation="sdpa")[0, 0]
    expected = torch.tril(torch.ones(7, 7, dtype=torch.bool))
    expected[2, 3] = True              # audio run 1 looks ahead inside itself
    expected[:, 6] = False             # nobody attends to padding...
    expected[6] = False
    expected[6, 6] = True              # ...except the padding row itself (no empty softmax rows)
    assert torch.equal(allowed, expected)
    additive = build_attention_mask(attention, audio, implementation="eager")[0, 0]
    assert additive.dtype == torch.float32
    assert torch.equal(additive == 0, expected)
    assert torch.all(additive[~expected] == torch.finfo(torch.float32).min)
    causal_only = build_attention_mask(attention, audio, bidirectional_audio=False)[0, 0]
    assert not causal_only[2, 3]
    with pytest.raises(ValueError, match="flash"):
        build_attention_mask(attention, audio, implementation="flash_attention_2")


def _mixed_hidden(s: AuraStudent, batch, mel, lengths):
    embeds = s.embed_sequence(batch["input_ids"], batch["audio_mask"], mel, lengths)
    hidden, _ = s.forward_layers(embeds, batch["audio_mask"], batch["attention_mask"])
    return hidden


@torch.no_grad()
def test_audio_is_bidirectional_and_text_is_causal(student):
    batch = mixed_batch()                       # positions: text 0-2, audio 3-6, text 7-9
    lengths = torch.tensor([4])
    mel = random_mel(1, 4)
    base = _mixed_hidden(student, batch, mel, lengths)

    later_frame = mel.clone()
    later_frame[..., -2:] += 3.0                # last audio token (position 6) only
    changed = _mixed_hidden(student, batch, later_frame, lengths)
    assert (changed[0, 3] - base[0, 3]).abs().max() > 1e-4          # earlier audio sees later audio
    torch.testing.assert_close(changed[0, :3], base[0, :3], atol=ATOL, rtol=0)  # text before audio does not

    later_text = {k: v.clone() for k, v in batch.items()}
    later_text["input_ids"][0, 8] = 99
    changed = _mixed_hidden(student, later_text, mel, lengths)
    torch.testing.assert_close(changed[0, :8], base[0, :8], atol=ATOL, rtol=0)
    assert (changed[0, 8] - base[0, 8]).abs().max() > 1e-4


@torch.no_grad()
def test_causal_audio_when_bidirectional_is_off(impl):
    s = make_student(impl, bidirectional_audio=False)
    mel, lengths = random_mel(1, 5), torch.tensor([5])
    base = s.forward_distill(mel, lengths)["layer_states"]
    later = mel.clone()
    later[..., -2:] += 3.0
    changed = s.forward_distill(later, lengths)["layer_states"]
    for j in base:
        torch.testing.assert_close(changed[j][0, :4], base[j][0, :4], atol=ATOL, rtol=0)


@torch.no_grad()
def test_padding_never_influences_real_positions(student):
    mel = random_mel(2, 9, seed=3)
    alone = student.forward_distill(mel[:1, :, :10], torch.tensor([5]))
    batched = student.forward_distill(mel, torch.tensor([5, 9]))
    garbage = mel.clone()
    garbage[0, :, 10:] = 100.0                 # sample 0's padding frames: must not matter
    batched_garbage = student.forward_distill(garbage, torch.tensor([5, 9]))
    for j in TEACHER_LAYERS:
        torch.testing.assert_close(batched["layer_states"][j][0, :5], alone["layer_states"][j][0], atol=ATOL, rtol=0)
        torch.testing.assert_close(batched_garbage["layer_states"][j][0, :5], alone["layer_states"][j][0],
                                   atol=ATOL, rtol=0)
        assert torch.isfinite(batched["layer_states"][j]).all()
    assert batched["token_mask"].tolist() == [[True] * 5 + [False] * 4, [True] * 9]

    # mixed sequences: a longer neighbour, right or left padding, leave a sample's logits unchanged
    one = layout_speech_batch([[5, 6]], [3], after_audio=[[7, 8]], pad_id=0)
    mel1, mel2 = random_mel(1, 3, seed=4), random_mel(1, 6, seed=5)
    ref = student(**one, mel=mel1, token_lengths=torch.tensor([3]))["logits"][0]
    mels = torch.cat([torch.nn.functional.pad(mel1, (0, 6)), mel2])
    for side in ("right", "left"):
        two = layout_speech_batch([[5, 6], [5, 6, 7, 8]], [3, 6], after_audio=[[7, 8], [9]], pad_id=0,
                                  padding_side=side)
        logits = student(**two, mel=mels, token_lengths=torch.tensor([3, 6]))["logits"][0]
        real = two["attention_mask"][0].bool()
        torch.testing.assert_close(logits[real], ref, atol=ATOL, rtol=0)


# -------------------------------------------------------------------------------- truncated forward


@torch.no_grad()
def test_truncated_forward_equals_full_forward(student):
    mel, lengths = random_mel(2, 7, seed=6), torch.tensor([7, 4])
    truncated = student.forward_distill(mel, lengths)
    token_mask = truncated["token_mask"]
    full = student(input_ids=torch.zeros(2, 7, dtype=torch.long), attention_mask=token_mask.long(),
                   audio_mask=token_mask, mel=mel, token_lengths=lengths)
    for j in TEACHER_LAYERS:
        torch.testing.assert_close(truncated["layer_states"][j][token_mask], full["layer_states"][j][token_mask],
                                   atol=ATOL, rtol=0)


@torch.no_grad()
def test_stage1_stage2_and_inference_layouts_give_the_same_audio_states(student):
    """Stage 1 runs [prefix][audio]; stage 2 [prefix][audio][instruction][answer]; inference left-pads
    [prefix][audio][instruction]: the audio states the heads read must be the same in all three."""
    prefix, instruction, answer = [5, 6, 7], [8, 9], [10, 11, 12]
    mel, lengths = random_mel(2, 7, seed=8), torch.tensor([7, 4])
    stage1 = student.forward_distill(mel, lengths, prefix_ids=prefix)
    mask = stage1["token_mask"]
    stage2 = student(**layout_speech_batch([prefix] * 2, lengths, after_audio=[instruction] * 2,
                                           targets=[answer, answer[:1]], pad_id=0),
                     mel=mel, token_lengths=lengths)
    inference = student(**layout_speech_batch([prefix] * 2, lengths, after_audio=[instruction] * 2, pad_id=0,
                                              padding_side="left"), mel=mel, token_lengths=lengths)
    alone = student.forward_distill(mel, lengths)  # no prefix: positions and context differ
    for j in TEACHER_LAYERS:
        ref = stage1["layer_states"][j][mask]
        torch.testing.assert_close(stage2["layer_states"][j][mask], ref, atol=ATOL, rtol=0)
        torch.testing.assert_close(inference["layer_states"][j][mask], ref, atol=ATOL, rtol=0)
        assert (alone["layer_states"][j][mask] - ref).abs().max() > 1e-3


@torch.no_grad()
def test_logits_at_labels_only_give_the_full_loss():
    s = make_student("sdpa")
    lengths = torch.tensor([4, 2])
    batch = layout_speech_batch([[5, 6], [5, 6]], lengths, after_audio=[[7], [7]], targets=[[11, 12, 13], [14]])
    full = s(**batch, mel=random_mel(2, 4, seed=9), token_lengths=lengths)
    cheap = s(**batch, mel=random_mel(2, 4, seed=9), token_lengths=lengths, logits="labels")
    assert cheap["logits"].shape == (4, 128)  # the 4 answer tokens only
    torch.testing.assert_close(cheap["loss"], full["loss"], atol=1e-5, rtol=0)
    torch.testing.assert_close(cheap["sample_loss"], full["sample_loss"], atol=1e-5, rtol=0)
    # per sample: the mean over its own answer tokens; their token-weighted mean is the batch loss
    torch.testing.assert_close((cheap["sample_loss"] * torch.tensor([3.0, 1.0])).sum() / 4, cheap["loss"])


@torch.no_grad()
def test_stage1_returns_the_raw_audio_states_of_asked_layers(student):
    mel, lengths = random_mel(2, 5), torch.tensor([5, 3])
    out = student.forward_distill(mel, lengths, prefix_ids=[5, 6], audio_states_at=(1, student.distill_depth))
    width = student.decoder.embed_tokens.weight.shape[1]
    assert {m: tuple(s.shape) for m, s in out["audio_states"].items()} == {1: (2, 5, width),
                                                                           student.distill_depth: (2, 5, width)}
    plain = student.forward_distill(mel, lengths, prefix_ids=[5, 6])
    assert "audio_states" not in plain
    for j in plain["layer_states"]:  # asking for states changes nothing else
        assert torch.equal(plain["layer_states"][j], out["layer_states"][j])
    with pytest.raises(ValueError, match="stage 1 runs layers"):
        student.forward_distill(mel, lengths, audio_states_at=(student.distill_depth + 1,))


def test_manual_layers_equal_the_llms_own_forward_when_causal(student):
    """Text only (plain causal + right padding): our mask, positions and rotary match transformers'."""
    input_ids = torch.randint(1, 128, (2, 9), generator=torch.Generator().manual_seed(7))
    attention = torch.ones(2, 9, dtype=torch.long)
    attention[1, 6:] = 0
    embeds = student.embed_sequence(input_ids)
    _, ours = student.forward_layers(embeds, None, attention, upto=3, collect=[1, 2, 3])
    theirs = student.base_llm(inputs_embeds=embeds, attention_mask=attention, output_hidden_states=True)
    real = attention.bool()
    for m in (1, 2, 3):
        torch.testing.assert_close(ours[m][real], theirs.hidden_states[m][real], atol=ATOL, rtol=0)
    logits = student(input_ids=input_ids, attention_mask=attention)["logits"]
    torch.testing.assert_close(logits[real], theirs.logits[real], atol=ATOL, rtol=0)


# -------------------------------------------------------------------------------- loss


def test_distillation_loss_values():
    torch.manual_seed(0)
    states = {2: torch.randn(2, 5, 8), 4: torch.randn(2, 5, 8)}
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool()
    loss, per = distillation_loss(states, {j: v.clone() for j, v in states.items()}, mask)
    assert abs(loss.item()) < 1e-6
    assert all(abs(per[j]["cosine"].item() - 1) < 1e-6 for j in states)
    mse, _ = distillation_loss(states, {j: v.clone() for j, v in states.items()}, mask, kind="mse")
    assert mse.item() == 0.0

    opposite, per = distillation_loss(states, {j: -v for j, v in states.items()}, mask)
    assert abs(opposite.item() - 2.0) < 1e-5 and abs(per[2]["cosine"].item() + 1) < 1e-5

    targets = {j: torch.randn(2, 5, 8) for j in states}
    loss, per = distillation_loss(states, targets, mask)
    for j in states:
        assert -1.0 <= per[j]["cosine"].item() <= 1.0
        assert not per[j]["cosine"].requires_grad
    assert torch.isclose(loss, torch.stack([per[j]["loss"] for j in states]).mean())
    # padded positions do not count
    noisy = {j: v.clone() for j, v in targets.items()}
    noisy[2][0, 3:] = 1e3
    assert torch.isclose(distillation_loss(states, noisy, mask)[0], loss)
    with pytest.raises(ValueError, match="shape"):
        distillation_loss(states, {j: v[:, :4] for j, v in targets.items()}, mask)


@torch.no_grad()
def test_loss_is_zero_when_targets_are_the_heads_outputs(student):
    out = student.forward_distill(random_mel(2, 5), torch.tensor([5, 3]))
    loss, per = distillation_loss(out["layer_states"], {j: v.clone() for j, v in out["layer_states"].items()},
                                  out["token_mask"])
    assert abs(loss.item()) < 1e-6 and set(per) == set(TEACHER_LAYERS)
    assert out["layer_states"][2].shape == (2, 5, TEACHER_WIDTH)


def test_stage2_lm_loss_and_text_only_batches():
    s = make_student("sdpa").train()
    batch = mixed_batch(targets=[[11, 12, 13]])
    out = s(**batch, mel=random_mel(1, 4), token_lengths=torch.tensor([4]))
    assert torch.isfinite(out["loss"]) and out["layer_states"][4].shape == (1, 4, TEACHER_WIDTH)
    out["loss"].backward()
    assert s.patch_embedding.proj.weight.grad.abs().sum() > 0
    s.zero_grad(set_to_none=True)
    # A text-only batch still gives the patch embedding a (zero) gradient (DeepSpeed needs one on every rank).
    text = layout_speech_batch([[5, 6, 7]], [0], targets=[[8, 9]], pad_id=0)
    s(input_ids=text["input_ids"], attention_mask=text["attention_mask"], labels=text["labels"])["loss"].backward()
    assert s.patch_embedding.proj.weight.grad is not None


# -------------------------------------------------------------------------------- save / load / merge


@torch.no_grad()
def test_save_load_trainable_round_trip(tmp_path):
    s = make_student("sdpa")
    for p in s.patch_embedding.parameters():
        p.add_(0.01)                       # make sure non-initial values travel
    path = s.save_trainable(tmp_path / "student.safetensors")
    assert path.read_bytes()[:8]           # a safetensors file, not a pickle
    batch = mixed_batch()
    mel, lengths = random_mel(1, 4), torch.tensor([4])
    expected = s(**batch, mel=mel, token_lengths=lengths)

    # same base weights (seed 0), fresh random trainable parts (seed 5) -> differ until loaded
    other = make_student("sdpa", seed=0)
    torch.manual_seed(5)
    for p in other.trainable_parameters():
        p.normal_(0, 0.1)
    other.load_trainable(path)
    again = other(**batch, mel=mel, token_lengths=lengths)
    assert torch.equal(again["logits"], expected["logits"])
    for j in TEACHER_LAYERS:
        assert torch.equal(again["layer_states"][j], expected["layer_states"][j])

    rebuilt = AuraStudent.load(make_llm("sdpa"), path).eval()
    assert rebuilt.layer_map == s.layer_map and rebuilt.lora_layers == s.lora_layers
    assert torch.equal(rebuilt(**batch, mel=mel, token_lengths=lengths)["logits"], expected["logits"])

    wrong = AuraStudent.from_llm(make_llm("sdpa"), StudentConfig(lora_rank=4, distill_depth=2), [2], TEACHER_WIDTH,
                                 N_MELS, 1)
    with pytest.raises(ValueError, match="does not fit"):
        wrong.load_trainable(path)


@torch.no_grad()
def test_deeper_lora_starts_from_shallower_parts_unchanged(tmp_path):
    """Parts with LoRA on layers 0..2 load into a student with LoRA on all 4 layers (``new_parts``): the new
    layer's LoRA starts at zero, so the outputs are the shallower student's; a strict load refuses the file.
    A CTC head the file lacks is new too."""
    shallow = make_student("sdpa")
    path = shallow.save_trainable(tmp_path / "student.safetensors")
    batch, mel, lengths = mixed_batch(), random_mel(1, 4), torch.tensor([4])
    expected = shallow(**batch, mel=mel, token_lengths=lengths)["logits"]

    def deep_student() -> AuraStudent:
        return AuraStudent.from_llm(make_llm("sdpa"), StudentConfig(lora_rank=4, lora_alpha=8.0, distill_depth=3,
                                                                     lora_layers=4), TEACHER_LAYERS, TEACHER_WIDTH,
                                    N_MELS, 1).eval()

    with pytest.raises(ValueError, match="does not fit.*layers.3"):
        deep_student().load_trainable(path)
    deep = deep_student()
    assert deep.load_trainable(path, new_parts=True) == ["LoRA of layers 4-4"]
    assert torch.allclose(deep(**batch, mel=mel, token_lengths=lengths)["logits"], expected, atol=1e-6)
    # a file that lacks a layer in the middle of its LoRA is no "deeper" student: still refused
    torn = {k: v for k, v in load_file(str(path)).items() if ".layers.1." not in k}
    save_file(torn, str(tmp_path / "torn.safetensors"))
    with pytest.raises(ValueError, match="does not fit"):
        deep_student().load_trainable(tmp_path / "torn.safetensors", new_parts=True)
    with_ctc = make_student("sdpa", ctc_weight=0.5)
    with pytest.raises(ValueError, match="does not fit.*ctc"):
        with_ctc.load_trainable(path)
    assert with_ctc.load_trainable(path, new_parts=True) == ["the CTC head"]


@torch.no_grad()
def test_a_ctc_head_is_carried_by_a_student_that_does_not_train_one(tmp_path):
    """Parts with a CTC head, loaded by a student whose config trains none (student.ctc_weight=0, e.g. distillation
    on untranscribed audio): the head comes back at the layer it read, so the read-out survives the run."""
    from pipeline.models.student import parts_ctc_layer

    with_ctc = make_student("sdpa", ctc_weight=0.5, ctc_layer=2)
    path = with_ctc.save_trainable(tmp_path / "ctc.safetensors")
    plain_path = make_student("sdpa").save_trainable(tmp_path / "plain.safetensors")
    assert parts_ctc_layer(path) == 2 and parts_ctc_layer(plain_path) is None
    cfg = StudentConfig(lora_rank=4, lora_alpha=8.0, distill_depth=3)  # ctc_weight 0
    carried = AuraStudent.from_llm(make_llm("sdpa"), cfg, TEACHER_LAYERS, TEACHER_WIDTH, N_MELS, 1,
                                   carried_ctc_layer=parts_ctc_layer(path))
    assert carried.load_trainable(path) == [] and carried.ctc_layer == 2
    mel, lengths = random_mel(2, 4), torch.tensor([4, 3])
    expected = with_ctc.forward_distill(mel, lengths)["ctc_log_probs"]
    torch.testing.assert_close(carried.eval().forward_distill(mel, lengths)["ctc_log_probs"], expected)
    assert "ctc_log_probs" not in carried.forward_distill(mel, lengths, with_ctc=False)  # a step that trains no head
    again = AuraStudent.load(make_llm("sdpa"), carried.save_trainable(tmp_path / "carried.safetensors"))
    assert again.ctc_layer == 2
    torch.testing.assert_close(again.eval().forward_distill(mel, lengths)["ctc_log_probs"], expected)


@torch.no_grad()
def test_front_end_starts_as_the_student_without_it_and_learns(tmp_path):
    """Parts without a front end load into a student with one (``new_parts``): it starts at zero, so the outputs are
    the parts' own; its output layer gets a gradient at once; its weights travel with the student's file."""
    plain = make_student("sdpa")
    path = plain.save_trainable(tmp_path / "plain.safetensors")
    batch, mel, lengths = mixed_batch(), random_mel(1, 4), torch.tensor([4])
    expected = plain(**batch, mel=mel, token_lengths=lengths)["logits"]

    def with_front_end() -> AuraStudent:
        return make_student("sdpa", front_end_channels=16)

    with pytest.raises(ValueError, match="does not fit.*front_end"):
        with_front_end().load_trainable(path)
    student = with_front_end()
    assert student.load_trainable(path, new_parts=True) == ["the front end"]
    assert torch.equal(student(**batch, mel=mel, token_lengths=lengths)["logits"], expected)
    with torch.enable_grad():
        student(**batch, mel=mel, token_lengths=lengths)["logits"].square().mean().backward()
    last = student.patch_embedding.front_end[2].weight
    assert last.grad is not None and last.grad.abs().sum() > 0
    last.add_(0.05)
    changed = student(**batch, mel=mel, token_lengths=lengths)["logits"]
    assert not torch.allclose(changed, expected)
    saved = student.save_trainable(tmp_path / "front_end.safetensors")
    assert torch.equal(AuraStudent.load(make_llm("sdpa"), saved).eval()(**batch, mel=mel, token_lengths=lengths)["logits"],
                       changed)


@torch.no_grad()
def test_front_end_with_the_clip_mean_starts_unchanged_and_sees_the_voice(tmp_path):
    """With ``front_end_clip_mean`` the front end reads each frame beside the clip's mean mel: parts without a front
    end still load and give their own outputs; once it is trained, a clip's tokens depend on its other frames (a
    changed average spectrum changes an untouched frame's token) but not on the padding of its batch."""
    from pipeline.config import StudentConfig
    from pipeline.models.patch_embedding import AudioPatchEmbedding

    with pytest.raises(ValueError, match="front_end_clip_mean needs a front end"):
        StudentConfig(front_end_clip_mean=True)
    plain = make_student("sdpa")
    path = plain.save_trainable(tmp_path / "plain.safetensors")
    batch, mel, lengths = mixed_batch(), random_mel(1, 4), torch.tensor([4])
    student = make_student("sdpa", front_end_channels=8, front_end_clip_mean=True)
    assert student.load_trainable(path, new_parts=True) == ["the front end"]
    assert torch.equal(student(**batch, mel=mel, token_lengths=lengths)["logits"],
                       plain(**batch, mel=mel, token_lengths=lengths)["logits"])

    torch.manual_seed(0)
    patch = AudioPatchEmbedding(n_mels=16, llm_width=12, stride=2, front_end_channels=8, front_end_clip_mean=True)
    for p in patch.front_end.parameters():
        p.normal_(0, 0.3)
    clip = torch.randn(1, 16, 12)
    louder_tail = clip.clone()
    louder_tail[..., 8:] += 1.0  # frames 0-5 untouched, the clip's mean moves
    assert not torch.allclose(patch(louder_tail)[:, :2], patch(clip)[:, :2])
    padded = torch.cat([clip, torch.full((1, 16, 8), float(clip.max() - 2))], dim=-1)  # silence at the floor
    assert torch.allclose(patch(padded)[:, :6], patch(clip), atol=1e-6)


@torch.no_grad()
def test_teacher_stem_is_whispers_frozen_and_starts_as_the_student_without_it(tmp_path):
    """The stem copied from a Whisper encoder gives Whisper's conv-stem frames (but at the ends, where Whisper's
    convolutions pad with zeros and the stem with the clip's silence); parts without it load (``new_parts``) and give their own
    outputs; the stem stays frozen while its projection learns; a clip alone and in a padded batch get the same
    tokens; stem and projection travel with the student's file."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from pipeline.models.patch_embedding import AudioPatchEmbedding
    from pipeline.models.student import STEM_PART

    torch.manual_seed(0)
    encoder = WhisperEncoder(WhisperConfig(d_model=TEACHER_WIDTH, num_mel_bins=N_MELS, encoder_layers=1,
                                           encoder_attention_heads=2, encoder_ffn_dim=32)).eval()
    patch = AudioPatchEmbedding(n_mels=N_MELS, llm_width=12, stride=4, teacher_stem_width=TEACHER_WIDTH)
    patch.copy_whisper_stem(encoder)
    mel = torch.randn(2, N_MELS, 16)
    whisper = F.gelu(encoder.conv2(F.gelu(encoder.conv1(mel))))
    # the ends differ only where Whisper's convolutions pad with zeros (inside its 30 s window the audio is
    # followed by silence, as here)
    assert torch.allclose(patch.stem_features(mel)[..., 1:-1], whisper[..., 1:-1], atol=1e-5)
    with pytest.raises(ValueError, match="does not fit"):
        AudioPatchEmbedding(n_mels=N_MELS, llm_width=12, stride=4, teacher_stem_width=8).copy_whisper_stem(encoder)

    plain = make_student("sdpa")
    path = plain.save_trainable(tmp_path / "plain.safetensors")
    batch, mel, lengths = mixed_batch(), random_mel(1, 4), torch.tensor([4])
    expected = plain(**batch, mel=mel, token_lengths=lengths)["logits"]
    student = make_student("sdpa", teacher_stem=True)
    student.patch_embedding.copy_whisper_stem(encoder)
    with pytest.raises(ValueError, match="does not fit.*teacher_stem"):
        make_student("sdpa", teacher_stem=True).load_trainable(path)
    assert student.load_trainable(path, new_parts=True) == [STEM_PART]
    assert torch.equal(student.patch_embedding.teacher_stem[0].weight, encoder.conv1.weight)  # kept, not reset
    assert torch.equal(student(**batch, mel=mel, token_lengths=lengths)["logits"], expected)
    with torch.enable_grad():
        student(**batch, mel=mel, token_lengths=lengths)["logits"].square().mean().backward()
    stem, proj = student.patch_embedding.teacher_stem, student.patch_embedding.stem_proj
    assert all(not p.requires_grad and p.grad is None for p in stem.parameters())
    assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0
    proj.weight.normal_(0, 0.1)
    changed = student(**batch, mel=mel, token_lengths=lengths)["logits"]
    assert not torch.allclose(changed, expected)
    clip = random_mel(1, 3)
    padded = torch.cat([clip, (clip.max() - 2).clamp(min=-1.5).expand(1, N_MELS, 4)], dim=-1)
    embed = student.patch_embedding
    assert torch.allclose(embed(padded, 5)[:, :3], embed(clip, 3), atol=1e-6)
    saved = student.save_trainable(tmp_path / "stem.safetensors")
    assert torch.equal(AuraStudent.load(make_llm("sdpa"), saved).eval()(**batch, mel=mel, token_lengths=lengths)["logits"],
                       changed)


@torch.no_grad()
def test_merged_llm_gives_the_same_logits(impl):
    """LoRA merged into the weights: logits of a text+audio sequence agree within 1e-5 (float32)."""
    s = make_student(impl)
    batch = mixed_batch(prefix=(1, 2), tokens=5, suffix=(3, 4, 5))
    mel, lengths = random_mel(1, 5, seed=9), torch.tensor([5])
    unmerged = s(**batch, mel=mel, token_lengths=lengths)["logits"]
    embeds = s.embed_sequence(batch["input_ids"], batch["audio_mask"], mel, lengths)

    merged = s.merge_and_unload()
    assert isinstance(merged, LlamaForCausalLM)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    mask = build_attention_mask(batch["attention_mask"], batch["audio_mask"], dtype=embeds.dtype,
                                implementation=merged.config._attn_implementation)
    logits = merged(inputs_embeds=embeds, attention_mask=mask,
                    position_ids=position_ids_from_mask(batch["attention_mask"])).logits
    torch.testing.assert_close(logits, unmerged, atol=1e-5, rtol=0)
    # the student itself now runs the merged weights and agrees too
    torch.testing.assert_close(s(**batch, mel=mel, token_lengths=lengths)["logits"], unmerged, atol=1e-5, rtol=0)
    with pytest.raises(RuntimeError, match="merged"):
        s.save_trainable("/nonexistent/never-written.safetensors")


@torch.no_grad()
def test_teacher_blocks_are_whispers_first_layers_frozen_and_start_as_the_student_without_them(tmp_path):
    """The teacher's first encoder layers after its stem (``student.teacher_blocks``): on the stem's frames they give
    Whisper's own layer output; parts without them load (``new_parts``) and give their own outputs; they stay frozen
    while their projection learns; a clip alone and in a padded batch get the same tokens; all of a teacher's layers
    are refused; layers, positions and statistics travel with the student's file."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from pipeline.models.student import BLOCKS_PART

    torch.manual_seed(0)
    encoder = WhisperEncoder(WhisperConfig(d_model=TEACHER_WIDTH, num_mel_bins=N_MELS, encoder_layers=2,
                                           encoder_attention_heads=2, encoder_ffn_dim=4 * TEACHER_WIDTH)).eval()
    patch = AudioPatchEmbedding(n_mels=N_MELS, llm_width=12, stride=4, teacher_stem_width=TEACHER_WIDTH,
                                teacher_blocks=1)
    patch.copy_whisper_stem(encoder)
    mel = torch.randn(1, N_MELS, 3000)  # Whisper's 30 s window
    whisper = encoder(mel, output_hidden_states=True).hidden_states[1]  # after its first layer
    stem = F.gelu(encoder.conv2(F.gelu(encoder.conv1(mel)))).transpose(1, 2)
    mine = patch.blocks_features(torch.full_like(mel, 5.0), stem)  # every frame sound: all are keys
    assert torch.allclose(mine, whisper, atol=1e-5)
    fresh = AudioPatchEmbedding(n_mels=N_MELS, llm_width=12, stride=4, teacher_stem_width=TEACHER_WIDTH,
                                teacher_blocks=1)
    before = fresh.teacher_blocks[0].fc1.weight.clone()
    fresh.copy_whisper_stem(encoder, layers=False)  # the layer's shape at random, after Whisper's stem and positions
    assert torch.equal(fresh.teacher_blocks[0].fc1.weight, before)
    assert torch.equal(fresh.teacher_positions, patch.teacher_positions) and int(fresh.teacher_blocks[0].heads) == 2
    assert torch.equal(fresh.teacher_stem[2].weight, encoder.conv2.weight)
    with pytest.raises(ValueError, match="fewer"):
        AudioPatchEmbedding(n_mels=N_MELS, llm_width=12, stride=4, teacher_stem_width=TEACHER_WIDTH,
                            teacher_blocks=2).copy_whisper_stem(encoder)
    with pytest.raises(ValueError, match="needs the teacher stem"):
        AudioPatchEmbedding(n_mels=N_MELS, llm_width=12, stride=4, teacher_blocks=1)
    with pytest.raises(ValueError, match="set student.teacher_stem"):
        StudentConfig(teacher_blocks=1)

    stemmed = make_student("sdpa", teacher_stem=True)
    stemmed.patch_embedding.copy_whisper_stem(encoder)
    path = stemmed.save_trainable(tmp_path / "stem.safetensors")
    batch, mel, lengths = mixed_batch(), random_mel(1, 4), torch.tensor([4])
    expected = stemmed(**batch, mel=mel, token_lengths=lengths)["logits"]
    student = make_student("sdpa", teacher_stem=True, teacher_blocks=1)
    student.patch_embedding.copy_whisper_stem(encoder)
    student.patch_embedding.set_blocks_statistics(torch.full((TEACHER_WIDTH,), 0.5), torch.full((TEACHER_WIDTH,), 2.0))
    with pytest.raises(ValueError, match="does not fit.*teacher_blocks"):
        make_student("sdpa", teacher_stem=True, teacher_blocks=1).load_trainable(path)
    assert student.load_trainable(path, new_parts=True) == [BLOCKS_PART]
    embed = student.patch_embedding
    assert torch.equal(embed.teacher_blocks[0].fc1.weight, encoder.layers[0].fc1.weight)  # kept, not reset
    assert int(embed.teacher_blocks[0].heads) == 2  # the teacher's, not 64-channel heads
    assert torch.equal(embed.blocks_std, torch.full((TEACHER_WIDTH,), 2.0))
    assert torch.equal(student(**batch, mel=mel, token_lengths=lengths)["logits"], expected)
    with torch.enable_grad():
        student(**batch, mel=mel, token_lengths=lengths)["logits"].square().mean().backward()
    assert all(not p.requires_grad and p.grad is None for p in embed.teacher_blocks.parameters())
    assert embed.blocks_proj.weight.grad is not None and embed.blocks_proj.weight.grad.abs().sum() > 0
    embed.blocks_proj.weight.normal_(0, 0.1)
    changed = student(**batch, mel=mel, token_lengths=lengths)["logits"]
    assert not torch.allclose(changed, expected)
    clip = random_mel(1, 3)
    padded = torch.cat([clip, (clip.max() - 2).clamp(min=-1.5).expand(1, N_MELS, 4)], dim=-1)
    assert torch.allclose(embed(padded, 5)[:, :3], embed(clip, 3), atol=1e-6)
    assert not torch.allclose(embed(clip.flip(-1), 3)[:, :1], embed(clip, 3)[:, :1])  # the first token hears the rest
    saved = student.save_trainable(tmp_path / "blocks.safetensors")
    loaded = AuraStudent.load(make_llm("sdpa"), saved).eval()
    assert torch.equal(loaded(**batch, mel=mel, token_lengths=lengths)["logits"], changed)
