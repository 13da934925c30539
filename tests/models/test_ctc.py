"""The auxiliary CTC head (pipeline.models.ctc) alone and inside the student: the loss is low only on the
right transcript, greedy decoding inverts a best path, a CTC student trains, saves, loads and computes the
same audio states in every layout; a character head spells the normalised transcript at ctc_upsample frames per
audio token, and a student swaps one vocabulary's head for the other's only when told that parts may be new; a
character head trains beside a token head and is left unread by students without one."""

from __future__ import annotations

import pytest
import torch

from pipeline.models.ctc import (
    CHARACTERS,
    CharacterCTCHead,
    TokenCTCHead,
    ctc_beam_search,
    ctc_greedy_ids,
    ctc_token_loss,
)
from pipeline.models.student import AuraStudent
from tests.models.test_student import (
    TEACHER_LAYERS,
    make_llm,
    make_student,
    mixed_batch,
    random_mel,
)

torch.set_num_threads(1)


def peaked(path: list[int], vocab: int = 6) -> torch.Tensor:
    """Log-probabilities ``(1, len(path), 1 + vocab)`` that put (almost) all mass on ``path``."""
    log_probs = torch.full((1, len(path), 1 + vocab), -20.0)
    log_probs[0, torch.arange(len(path)), torch.tensor(path)] = 0.0
    return log_probs.log_softmax(-1)


def fit_ctc(student: AuraStudent, mel: torch.Tensor, lengths: torch.Tensor, labels: list[list[int]], steps: int
            ) -> tuple[list[float], dict]:
    """Train ``student`` on its CTC loss alone over one batch; the loss per step and the forward in eval mode after."""
    optimizer = torch.optim.Adam(student.trainable_parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        out = student.forward_distill(mel, lengths)
        loss = ctc_token_loss(out["ctc_log_probs"], out["ctc_lengths"], labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    student.eval()
    with torch.no_grad():
        return losses, student.forward_distill(mel, lengths)


def test_loss_is_near_zero_only_for_the_transcript_the_path_spells():
    log_probs = peaked([3, 3, 0, 3, 5, 0])   # tokens 2, 2, 4 (repeat split by a blank)
    lengths = torch.tensor([6])
    assert float(ctc_token_loss(log_probs, lengths, [[2, 2, 4]])) < 1e-3
    for wrong in ([2, 4], [2, 2, 4, 4], [1, 2, 4], [4, 2, 2]):
        assert float(ctc_token_loss(log_probs, lengths, [wrong])) > 5.0, wrong
    assert ctc_greedy_ids(log_probs, lengths) == [[2, 2, 4]]


def test_samples_without_tokens_and_impossible_ones_do_not_break_the_batch():
    log_probs = torch.cat([peaked([2, 0, 3]), peaked([1, 1, 1])])
    lengths = torch.tensor([3, 3])
    # sample 1 says nothing: it is left out, the loss is sample 0's alone
    alone = ctc_token_loss(log_probs[:1], lengths[:1], [[1, 2]])
    assert torch.allclose(ctc_token_loss(log_probs, lengths, [[1, 2], []]), alone)
    # four tokens cannot fit three frames: zero_infinity keeps the loss finite
    assert torch.isfinite(ctc_token_loss(log_probs, lengths, [[1, 2], [0, 1, 2, 3]]))
    # padding past a sample's length is never decoded
    assert ctc_greedy_ids(log_probs, torch.tensor([3, 1])) == [[1, 2], [0]]


@torch.no_grad()
def test_best_labels_are_the_argmax_of_the_log_probs_without_scoring_padding():
    """The greedy read-out's labels (``best_labels``) are those of the argmax over the full log-probabilities, per clip
    of a padded batch, for both heads; a blank tied with the best token wins, as in the argmax; padding frames,
    even non-finite ones, are never scored."""
    torch.manual_seed(0)
    head, lm_head = TokenCTCHead(16), torch.nn.Linear(16, 40, bias=False)
    head.blank.weight.normal_()
    hidden, lengths = torch.randn(3, 9, 16), torch.tensor([9, 5, 1])
    full = head(hidden, lm_head).argmax(-1)
    padded = hidden.clone()
    padded[1, 5:] = float("nan")
    labels = head.best_labels(padded, lengths, lm_head)
    assert [len(t) for t in labels] == lengths.tolist()
    assert all(torch.equal(labels[b], full[b, :n]) for b, n in enumerate(lengths.tolist()))
    assert {int(c) for c in torch.cat(labels)} - {0}, "all blanks would test nothing"

    lm_head.weight.zero_()  # every token scores exactly what the blank scores: 0
    head.blank.weight.zero_()
    head.blank.bias.zero_()
    tied = head.best_labels(hidden, lengths, lm_head)
    assert all(bool((t == 0).all()) for t in tied)
    assert torch.equal(head(hidden, lm_head).argmax(-1), torch.zeros(3, 9, dtype=torch.long))

    letters = CharacterCTCHead(16, upsample=2)
    full = letters(hidden).argmax(-1)
    labels = letters.best_labels(hidden, lengths)
    assert all(torch.equal(labels[b], full[b, : 2 * n]) for b, n in enumerate(lengths.tolist()))


def test_head_scores_tokens_through_the_llms_output_embedding():
    llm = make_llm("sdpa")
    head = TokenCTCHead(llm.config.hidden_size)
    hidden = torch.randn(2, 5, llm.config.hidden_size)
    log_probs = head(hidden, llm.get_output_embeddings())
    assert log_probs.shape == (2, 5, 1 + llm.config.vocab_size)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 5), atol=1e-5)
    # at initialisation the token logits are the LLM's own logits of the normalised state
    x = head.norm(hidden)
    expected = llm.get_output_embeddings()(x) - torch.cat([head.blank(x), llm.get_output_embeddings()(x)],
                                                          -1).logsumexp(-1, keepdim=True)
    assert torch.allclose(log_probs[..., 1:], expected, atol=1e-4)


def test_student_ctc_head_trains_saves_and_loads(tmp_path):
    s = make_student("sdpa", ctc_weight=0.5).train()
    assert s.ctc_layer == max(s.layer_map.values()) == s.distill_depth
    trainable = {n for n, p in s.named_parameters() if p.requires_grad}
    assert {"ctc_head.norm.weight", "ctc_head.proj.weight", "ctc_head.blank.weight"} <= trainable

    mel, lengths = random_mel(2, 8, seed=3), torch.tensor([8, 6])
    transcripts = [[5, 9, 17], [33, 2]]
    losses, out = fit_ctc(s, mel, lengths, transcripts, steps=80)
    assert losses[-1] < 0.2 * losses[0]
    assert ctc_greedy_ids(out["ctc_log_probs"], lengths) == transcripts

    path = s.save_trainable(tmp_path / "student.safetensors")
    rebuilt = AuraStudent.load(make_llm("sdpa"), path).eval()
    assert rebuilt.ctc_layer == s.ctc_layer
    with torch.no_grad():
        again = rebuilt.forward_distill(mel, lengths)
    assert torch.equal(again["ctc_log_probs"], out["ctc_log_probs"])


@torch.no_grad()
def test_ctc_reads_the_same_audio_states_in_stage1_stage2_and_inference_layouts():
    s = make_student("eager", ctc_weight=1.0, ctc_layer=4)   # deeper than the distilled layers (2, 3)
    assert s.distill_depth == 4
    prefix = [5, 6, 7]
    mel, lengths = random_mel(1, 4, seed=1), torch.tensor([4])
    stage1 = s.forward_distill(mel, lengths, prefix_ids=prefix)
    full = s(**mixed_batch(prefix=prefix, tokens=4), mel=mel, token_lengths=lengths)
    assert torch.allclose(stage1["ctc_log_probs"], full["ctc_log_probs"], atol=1e-5)
    for j in TEACHER_LAYERS:
        assert torch.allclose(stage1["layer_states"][j], full["layer_states"][j], atol=1e-5)
    assert "ctc_log_probs" not in s(**mixed_batch(prefix=prefix, tokens=4), mel=mel, token_lengths=lengths,
                                    return_ctc=False)


def test_character_head_spells_the_normalised_transcript_trains_saves_and_loads(tmp_path):
    from pipeline.models.student import parts_ctc_head

    s = make_student("sdpa", ctc_weight=0.5, ctc_vocabulary="characters", ctc_upsample=3).train()
    assert isinstance(s.ctc_head, CharacterCTCHead) and s.ctc_head.upsample == 3
    texts = ["Go, Bo!", "at 2"]   # normalised "go bo" and "at two": a repeated letter needs a blank between
    labels = [s.ctc_head.labels(t) for t in texts]
    assert [len(x) for x in labels] == [5, 6] and max(max(x) for x in labels) < len(CHARACTERS)
    mel, lengths = random_mel(2, 4, seed=3), torch.tensor([4, 3])   # 12 and 9 CTC frames
    losses, out = fit_ctc(s, mel, lengths, labels, steps=120)
    assert losses[-1] < 0.2 * losses[0]
    assert out["ctc_log_probs"].shape == (2, 12, 1 + len(CHARACTERS)) and out["ctc_lengths"].tolist() == [12, 9]
    assert [s.ctc_head.text(ids) for ids in ctc_greedy_ids(out["ctc_log_probs"], out["ctc_lengths"])] == [
        "go bo", "at two"]

    path = s.save_trainable(tmp_path / "student.safetensors")
    assert parts_ctc_head(path) == {"ctc_layer": s.ctc_layer, "ctc_vocabulary": "characters", "ctc_upsample": 3}
    rebuilt = AuraStudent.load(make_llm("sdpa"), path).eval()
    assert isinstance(rebuilt.ctc_head, CharacterCTCHead)
    with torch.no_grad():
        assert torch.equal(rebuilt.forward_distill(mel, lengths)["ctc_log_probs"], out["ctc_log_probs"])


def test_a_head_of_another_vocabulary_is_replaced_only_when_parts_may_be_new(tmp_path):
    """Token-head parts into a character-head student (a run that starts a character read-out from a release):
    refused by a strict load; with ``new_parts`` the head is new (the file's is not read), the rest loads."""
    from pipeline.models.student import parts_ctc_head

    tokens = make_student("sdpa", ctc_weight=0.5)
    path = tokens.save_trainable(tmp_path / "tokens.safetensors")
    assert parts_ctc_head(path)["ctc_vocabulary"] == "llm_tokens"
    chars = make_student("sdpa", ctc_weight=0.5, ctc_vocabulary="characters")
    with torch.no_grad():   # its own LoRA, so that loading is seen
        for name, param in chars.named_parameters():
            if "lora_B" in name:
                param.add_(1.0)
    with pytest.raises(ValueError, match="does not fit.*ctc"):
        chars.load_trainable(path)
    head_before = {k: v.clone() for k, v in chars.ctc_head.state_dict().items()}
    assert chars.load_trainable(path, new_parts=True) == ["the CTC head"]
    assert all(torch.equal(v, head_before[k]) for k, v in chars.ctc_head.state_dict().items())
    mel, lengths = random_mel(1, 4), torch.tensor([4])
    with torch.no_grad():
        torch.testing.assert_close(chars.forward_distill(mel, lengths)["layer_states"][TEACHER_LAYERS[0]],
                                   tokens.forward_distill(mel, lengths)["layer_states"][TEACHER_LAYERS[0]])


def test_a_character_head_beside_the_token_head_trains_saves_and_is_left_by_students_without_one(tmp_path):
    """``student.character_ctc_weight``: both heads read the CTC layer; the pair saves and loads; parts without
    the character head start a fresh one only when parts may be new; a student without one leaves it unread."""
    from pydantic import ValidationError

    s = make_student("sdpa", ctc_weight=0.5, character_ctc_weight=0.5).train()
    assert isinstance(s.ctc_head, TokenCTCHead) and isinstance(s.character_ctc_head, CharacterCTCHead)
    mel, lengths = random_mel(2, 4, seed=5), torch.tensor([4, 3])
    texts = ["Go, Bo!", "at 2"]
    labels = [s.character_ctc_head.labels(t) for t in texts]
    optimizer = torch.optim.Adam(s.trainable_parameters(), lr=1e-2)
    for _ in range(120):   # the character loss alone: its gradient reaches the states through the LoRA
        out = s.forward_distill(mel, lengths)
        loss = ctc_token_loss(out["character_ctc_log_probs"], out["character_ctc_lengths"], labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    s.eval()
    with torch.no_grad():
        out = s.forward_distill(mel, lengths)
    assert out["ctc_log_probs"].shape[1] == 4 and out["character_ctc_lengths"].tolist() == [12, 9]
    assert [s.character_ctc_head.text(ids) for ids in
            ctc_greedy_ids(out["character_ctc_log_probs"], out["character_ctc_lengths"])] == ["go bo", "at two"]

    both = s.save_trainable(tmp_path / "both.safetensors")
    assert any(k.startswith("character_ctc.") for k in s.trainable_state_dict())
    rebuilt = AuraStudent.load(make_llm("sdpa"), both).eval()
    with torch.no_grad():
        again = rebuilt.forward_distill(mel, lengths)
    assert torch.equal(again["character_ctc_log_probs"], out["character_ctc_log_probs"])
    assert torch.equal(again["ctc_log_probs"], out["ctc_log_probs"])

    token_only = make_student("sdpa", ctc_weight=0.5)
    assert token_only.load_trainable(both) == []   # the character head, a training aid, is left unread
    with torch.no_grad():
        assert torch.equal(token_only.eval().forward_distill(mel, lengths)["ctc_log_probs"], out["ctc_log_probs"])
    parts = token_only.save_trainable(tmp_path / "tokens.safetensors")
    fresh = make_student("sdpa", ctc_weight=0.5, character_ctc_weight=0.5)
    with pytest.raises(ValueError, match="does not fit.*character_ctc"):
        fresh.load_trainable(parts)
    assert fresh.load_trainable(parts, new_parts=True) == ["the character CTC head"]
    with pytest.raises(ValidationError, match="character_ctc_weight"):
        make_student("sdpa", ctc_weight=0.5, ctc_vocabulary="characters", character_ctc_weight=0.5)


def test_students_without_a_ctc_head_are_unchanged():
    s = make_student("sdpa")
    assert s.ctc_head is None and not any(k.startswith("ctc.") for k in s.trainable_state_dict())
    assert "ctc_log_probs" not in s.forward_distill(random_mel(1, 4), torch.tensor([4]))
    with pytest.raises(ValueError, match="outside the LLM's layers"):
        make_student("sdpa", ctc_weight=1.0, ctc_layer=9)


class TableLM:
    """A language model that likes one token after each prefix (and the end after the whole sentence)."""

    def __init__(self, sentence: list[int], vocab: int = 6, end_id: int = 5):
        self.sentence, self.vocab, self.end_id = sentence, vocab, end_id

    def next_log_probs_many(self, prefixes):
        out = []
        for prefix in prefixes:
            liked = self.sentence[len(prefix)] if len(prefix) < len(self.sentence) else self.end_id
            scores = torch.full((self.vocab,), -5.0)
            scores[liked] = 0.0
            out.append(scores.log_softmax(-1))
        return out


def test_beam_search_reads_what_the_paths_add_up_to_and_the_lm_breaks_ties():
    """Without an LM a clear path comes out as greedy reads it (blanks between repeats count twice); the search
    sums a transcript's paths (greedy's best path can lose to them); with an LM, acoustically even choices follow
    the LM, and a weight of 0 ignores it."""
    clear = peaked([1, 1, 0, 3, 0, 3, 2]).squeeze(0)
    assert ctc_beam_search(clear, beam=4) == ctc_greedy_ids(clear[None], torch.tensor([7]))[0] == [0, 2, 2, 1]
    # the blank is each frame's best (0.4): the best path says nothing, P("") = 0.16; but "a" has three paths,
    # 0.35 x 0.35 + 2 x 0.35 x 0.4 = 0.40, more than "b" (0.26)
    spread = torch.log(torch.tensor([[0.4, 0.35, 0.25, 0, 0, 0, 0]] * 2).clamp(min=1e-9))
    assert ctc_greedy_ids(spread[None], torch.tensor([2]))[0] == []
    assert ctc_beam_search(spread, beam=8) == [0]
    even = torch.log(torch.tensor([[0.0, 0.5, 0.0, 0.0, 0.5, 0.0, 0.0]]).clamp(min=1e-9))  # token 0 or 3?
    assert ctc_beam_search(even, beam=4, lm=TableLM([3]), lm_weight=1.0) == [3]
    assert ctc_beam_search(even, beam=4, lm=TableLM([0]), lm_weight=1.0) == [0]
    assert ctc_beam_search(clear, beam=4, lm=TableLM([4, 4, 4, 4]), lm_weight=0.0) == [0, 2, 2, 1]
    with pytest.raises(ValueError, match="frames, 1 \\+ vocab"):
        ctc_beam_search(clear[None])


def test_llm_prefix_scorer_gives_a_full_forwards_log_probs():
    """The KV-cached scores of each extension equal one forward of the whole prefix after the start token."""
    from pipeline.decoding import LLMPrefixScorer

    llm = make_llm("sdpa").eval()
    scorer = LLMPrefixScorer(llm, start_id=1, end_id=2)
    prefixes = [(), (5,), (5, 7), (5, 9), (5, 7, 3)]
    for prefix in prefixes:
        with torch.no_grad():
            full = llm(input_ids=torch.tensor([[1, *prefix]])).logits[0, -1].float().log_softmax(-1)
        assert torch.allclose(scorer.next_log_probs(prefix), full, atol=1e-5)
    assert scorer.next_log_probs((5, 7)) is scorer.next_log_probs((5, 7))  # cached
    # a batch of new prefixes of different lengths (caches left-padded), parents scored first as needed
    scorer.reset()
    batch = [(5, 7, 3), (8,), (5, 9), (2, 4, 6, 8)]
    together = scorer.next_log_probs_many(batch)
    for prefix, scores in zip(batch, together):
        with torch.no_grad():
            full = llm(input_ids=torch.tensor([[1, *prefix]])).logits[0, -1].float().log_softmax(-1)
        assert torch.allclose(scores, full, atol=1e-5), prefix
    scorer.reset()
    assert not scorer._seen
