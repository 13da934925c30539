"""An auxiliary CTC head: the student's audio states spelled in the LLM's own vocabulary.

Layer-wise distillation asks the student's audio states to resemble Whisper's; nothing in it asks them to
carry words in a form the LLM reads. This head scores the audio states of one student layer against the
transcript's LLM tokens with CTC (Graves et al., 2006), through the LLM's own (frozen) output embedding:

    logits(frame) = [ blank(x), lm_head(x) ],   x = proj(norm(hidden))

so the only new weights are an ``RMSNorm``, a width x width ``Linear`` and a blank row (a third of a
million parameters for SmolLM2-135M), and a state scores a token by its dot product with that token's
embedding: audio states are pulled towards the token embeddings of what was said. Its greedy decoding is
also a way to judge stage 1 *in words*, cheaply (no LLM layer above the CTC layer runs).

Index 0 of the CTC vocabulary is the blank; LLM token ``v`` is index ``v + 1``.

:class:`CharacterCTCHead` (``student.ctc_vocabulary: characters``) spells the transcript letter by letter instead:
27 classes (the letters and the space that :func:`pipeline.eval.metrics.normalize_text` leaves, the WER's own
alphabet) where the LLM's vocabulary has 49,152, so a word never heard in training is still spelt from sounds heard
in others. English speech runs at ~15 characters/s, more than the 12.5 audio tokens/s CTC could place, so each
audio token is read as ``ctc_upsample`` CTC frames. Both heads say how to turn a text into their labels
(``labels``), labels back into text (``text``), and audio tokens into CTC frames (``frame_lengths``).

    >>> import torch
    >>> log_probs = torch.full((1, 5, 4), -10.0)
    >>> for t, c in enumerate([1, 1, 0, 3, 0]):   # "a a <blank> c <blank>"
    ...     log_probs[0, t, c] = 0.0
    >>> ctc_greedy_ids(log_probs, torch.tensor([5]))   # LLM token ids: 1 - 1 and 3 - 1
    [[0, 2]]
    >>> float(ctc_token_loss(log_probs, torch.tensor([5]), [[0, 2]])) < 1e-3
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

CTC_BLANK = 0
CHARACTERS = " abcdefghijklmnopqrstuvwxyz"  # what normalize_text leaves of a transcript: the WER's own alphabet


class TokenCTCHead(nn.Module):
    """Hidden states ``(..., width)`` -> CTC log-probabilities ``(..., 1 + vocab)`` through the LLM's output
    embedding ``lm_head`` (passed at call time: it is the LLM's, frozen, and never saved with this head)."""

    vocabulary = "llm_tokens"
    upsample = 1  # one CTC frame per audio token

    def __init__(self, llm_width: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.RMSNorm(llm_width, eps=eps)
        self.proj = nn.Linear(llm_width, llm_width)
        self.blank = nn.Linear(llm_width, 1)
        # Start as the identity map so that the first steps read the states through the LLM's own embedding.
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(llm_width))
            self.proj.bias.zero_()

    def forward(self, hidden: torch.Tensor, lm_head: nn.Module) -> torch.Tensor:
        x = self.proj(self.norm(hidden.to(self.proj.weight.dtype)))
        # Calling the lm_head module (not reading its weight) keeps DeepSpeed ZeRO-3's gather hooks working.
        logits = torch.cat([self.blank(x), lm_head(x)], dim=-1)
        return F.log_softmax(logits.float(), dim=-1)

    def best_labels(self, hidden: torch.Tensor, token_lengths: torch.Tensor, lm_head: nn.Module) -> list[torch.Tensor]:
        """Each clip's best label per CTC frame (the blank 0, token ``v`` as ``v + 1``), as the argmax of
        :meth:`forward` picks them, without its ``(B, T, 1 + vocab)`` tensor: the vocabulary is scored one clip at a
        time on that clip's own frames (padding is never scored), and the blank wins a tie, as in the argmax.
        The greedy read-out's only use of the head, so a batch of long clips costs one clip's scores in memory.

        >>> head, lm_head = TokenCTCHead(8), nn.Linear(8, 50, bias=False)
        >>> hidden, lengths = torch.randn(2, 6, 8), torch.tensor([6, 4])
        >>> full = head(hidden, lm_head).argmax(-1)
        >>> [bool(torch.equal(labels, full[b, :n])) for b, (labels, n) in
        ...  enumerate(zip(head.best_labels(hidden, lengths, lm_head), lengths))]
        [True, True]
        """
        out = []
        for clip, length in zip(hidden, token_lengths.tolist()):
            x = self.proj(self.norm(clip[:length].to(self.proj.weight.dtype)))
            best_score, best_token = lm_head(x).float().max(-1)
            out.append(torch.where(self.blank(x)[:, 0].float() >= best_score, CTC_BLANK, best_token + 1).cpu())
        return out

    def frame_lengths(self, token_lengths: torch.Tensor) -> torch.Tensor:
        return token_lengths

    @staticmethod
    def labels(text: str, tokenizer) -> list[int]:
        """The LLM token ids of ``text``: this head's CTC targets."""
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    @staticmethod
    def text(ids: Sequence[int], tokenizer) -> str:
        return tokenizer.decode(list(ids), skip_special_tokens=True).strip()


class CharacterCTCHead(nn.Module):
    """Hidden states ``(B, T, width)`` -> CTC log-probabilities ``(B, T x upsample, 1 + 27)`` over
    :data:`CHARACTERS`: each audio token's state, normalised, is expanded into ``upsample`` frames of ``inner``
    channels (one linear map, GELU) and each frame classified (0.45 M weights for SmolLM2-135M at the
    defaults). It reads no LLM weight; ``lm_head`` is accepted for the same call as :class:`TokenCTCHead`.

    >>> head = CharacterCTCHead(16, upsample=3)
    >>> head(torch.randn(2, 5, 16)).shape, head.frame_lengths(torch.tensor([5, 4])).tolist()
    (torch.Size([2, 15, 28]), [15, 12])
    >>> head.labels("It's 10 o'clock!"), head.text(head.labels("It's 10 o'clock!"))
    ([9, 20, 19, 0, 20, 5, 14, 0, 15, 3, 12, 15, 3, 11], 'its ten oclock')
    """

    vocabulary = "characters"

    def __init__(self, llm_width: int, upsample: int = 3, inner: int = 256, eps: float = 1e-6):
        super().__init__()
        self.upsample = upsample
        self.norm = nn.RMSNorm(llm_width, eps=eps)
        self.expand = nn.Linear(llm_width, upsample * inner)
        self.classify = nn.Linear(inner, 1 + len(CHARACTERS))

    def forward(self, hidden: torch.Tensor, lm_head: nn.Module | None = None) -> torch.Tensor:
        batch, tokens, _ = hidden.shape
        frames = F.gelu(self.expand(self.norm(hidden.to(self.expand.weight.dtype))))
        logits = self.classify(frames.reshape(batch, tokens * self.upsample, -1))
        return F.log_softmax(logits.float(), dim=-1)

    def best_labels(self, hidden: torch.Tensor, token_lengths: torch.Tensor,
                    lm_head: nn.Module | None = None) -> list[torch.Tensor]:
        """Each clip's best label per CTC frame (its ``upsample`` frames per audio token); as
        :meth:`TokenCTCHead.best_labels` (27 classes are cheap to score whole)."""
        best = self(hidden).argmax(-1).cpu()
        return [best[b, :n] for b, n in enumerate(self.frame_lengths(token_lengths).tolist())]

    def frame_lengths(self, token_lengths: torch.Tensor) -> torch.Tensor:
        return token_lengths * self.upsample

    @staticmethod
    def labels(text: str, tokenizer=None) -> list[int]:
        """``text`` normalised as the WER normalises it, as indices into :data:`CHARACTERS` (what else is left,
        e.g. a letter with an accent, is dropped)."""
        from pipeline.eval.metrics import normalize_text

        return [CHARACTERS.index(c) for c in normalize_text(text) if c in CHARACTERS]

    @staticmethod
    def text(ids: Sequence[int], tokenizer=None) -> str:
        return " ".join("".join(CHARACTERS[i] for i in ids).split())


CTCHead = TokenCTCHead | CharacterCTCHead


def make_ctc_head(vocabulary: str, llm_width: int, upsample: int = 3) -> CTCHead:
    """The CTC head ``student.ctc_vocabulary`` names (``llm_tokens`` or ``characters``)."""
    if vocabulary == "llm_tokens":
        return TokenCTCHead(llm_width)
    if vocabulary == "characters":
        return CharacterCTCHead(llm_width, upsample=upsample)
    raise ValueError(f"CTC vocabulary {vocabulary!r}: choose llm_tokens or characters")


def ctc_token_loss(log_probs: torch.Tensor, lengths: torch.Tensor, token_ids: Sequence[Sequence[int]],
                   batch_alphabet: bool | None = None) -> torch.Tensor:
    """CTC loss of ``(B, T, 1 + vocab)`` log-probabilities against each sample's label ids (LLM tokens, or
    characters for a :class:`CharacterCTCHead`; the blank is added at 0), per target
    label (``reduction="mean"``: each sample's loss over its token count, averaged over the batch).

    A sample whose transcript cannot fit its frames (more tokens than CTC can place) contributes 0 rather
    than infinity (``zero_infinity``); samples with no tokens are left out.

    ``batch_alphabet`` (default: on CUDA): CTC reads only the blank's and the transcripts' columns, so it runs on
    those (a batch uses a few hundred of SmolLM2's 49,153) plus one column holding the rest of each frame's
    probability mass. The loss and the gradients are the same as on the whole vocabulary (PyTorch's CTC gradient
    assumes the columns sum to one per frame, hence the rest column). On an H200 the whole-vocabulary CTC kernel
    was 58 % of a stage-1 step's GPU time (benchmarks/results/train_floor/); on CPU it is cheap and the extra
    pass for the rest column costs more than it saves, so CPU keeps the whole vocabulary.

    >>> g = torch.Generator().manual_seed(0)
    >>> logits = torch.randn(2, 6, 30, generator=g, dtype=torch.float64, requires_grad=True)
    >>> lengths, ids = torch.tensor([6, 5]), [[3, 3, 7], [12]]
    >>> full = ctc_token_loss(logits.log_softmax(-1), lengths, ids, batch_alphabet=False)
    >>> part = ctc_token_loss(logits.log_softmax(-1), lengths, ids)
    >>> grads = [torch.autograd.grad(loss, logits)[0] for loss in (full, part)]
    >>> bool(torch.allclose(full, part)), bool(torch.allclose(*grads))
    (True, True)
    """
    keep = [i for i, ids in enumerate(token_ids) if len(ids)]
    if not keep:
        return log_probs.sum() * 0.0
    device = log_probs.device
    index = torch.tensor(keep, device=device)
    log_probs = log_probs.index_select(0, index)
    labels = [t + 1 for i in keep for t in token_ids[i]]  # CTC classes: blank 0, token v -> v + 1
    if batch_alphabet if batch_alphabet is not None else device.type == "cuda":
        used = sorted(set(labels))
        columns = torch.tensor([CTC_BLANK, *used], device=device)
        classes = {c: j + 1 for j, c in enumerate(used)}
        labels = [classes[c] for c in labels]
        picked = log_probs.index_select(-1, columns)
        if len(columns) < log_probs.shape[-1]:
            rest_mass = log_probs.index_fill(-1, columns, float("-inf")).logsumexp(-1, keepdim=True)
            picked = torch.cat([picked, rest_mass], dim=-1)
        log_probs = picked
    targets = torch.tensor(labels, dtype=torch.long, device=device)
    target_lengths = torch.tensor([len(token_ids[i]) for i in keep], dtype=torch.long, device=device)
    return F.ctc_loss(log_probs.transpose(0, 1), targets, lengths.to(device).index_select(0, index), target_lengths,
                      blank=CTC_BLANK, reduction="mean", zero_infinity=True)


def ctc_greedy_ids(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best path per sample: argmax per frame, repeats merged, blanks dropped; label ids (LLM tokens or characters)."""
    best = log_probs.argmax(-1).cpu()
    return [ctc_collapse(best[b, :length]) for b, length in enumerate(lengths.tolist())]


def ctc_collapse(frame_labels: torch.Tensor) -> list[int]:
    """One clip's best label per frame (the blank 0, label ``v`` as ``v + 1``) as its label ids: repeats merged,
    blanks dropped.

    >>> ctc_collapse(torch.tensor([3, 3, 0, 3, 1, 0, 0]))
    [2, 2, 0]
    """
    return [c - 1 for c in torch.unique_consecutive(frame_labels).tolist() if c != CTC_BLANK]


@dataclass(frozen=True)
class CTCSearch:
    """How the CTC read-out turns log-probabilities into a transcript (``eval.ctc_*`` in the config): the greedy path
    (the default), or :func:`ctc_beam_search` with ``beam`` prefixes and, with ``lm_weight > 0``, the LLM as its
    language model.

    >>> CTCSearch().greedy, CTCSearch(beam=8, lm_weight=0.5, length_bonus=3.0).greedy
    (True, False)
    """

    beam: int = 1
    lm_weight: float = 0.0
    length_bonus: float = 0.0

    @property
    def greedy(self) -> bool:
        return self.beam == 1 and not self.lm_weight and not self.length_bonus


class PrefixLM(Protocol):
    """A language model over LLM token ids for :func:`ctc_beam_search` (e.g. :class:`pipeline.decoding.LLMPrefixScorer`)."""

    end_id: int

    def next_log_probs_many(self, prefixes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
        """Per prefix of LLM token ids, the log-probabilities ``(vocab,)`` of the token after it (a model may run
        them as one batch)."""
        ...


def _log_add(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    return a if b == -math.inf else a + math.log1p(math.exp(b - a))


def ctc_beam_search(log_probs: torch.Tensor, *, beam: int = 8, lm: PrefixLM | None = None, lm_weight: float = 0.0,
                    length_bonus: float = 0.0, candidates: int = 16, prune: float = 8.0,
                    blank_skip: float = 0.95) -> list[int]:
    """The most probable transcript of one clip's CTC log-probabilities ``(T, 1 + vocab)`` by prefix beam search
    (Hannun et al., 2014): each prefix sums over all of its paths (ending in a blank or not), and, with a language
    model, scores ``log P_ctc + lm_weight * log P_lm + length_bonus * tokens`` (shallow fusion; the end of the
    sentence is scored by the LM too). Per frame only the ``candidates`` likeliest tokens within ``prune`` nats of
    the frame's best are tried, and none where the blank's probability exceeds ``blank_skip`` (most frames of a
    peaky CTC read-out: it saves most of the LM's calls). Returns LLM token ids. ``beam=1`` without an LM is close to, not always equal to,
    the greedy path (:func:`ctc_greedy_ids`), which takes the best path rather than the best transcript.

    Two frames each half "a", half blank: the greedy path "a a" -> "a" has probability 1/4, but "a" alone has 3/4
    (paths "a a", "a _", "_ a"), and the beam search finds what the paths add up to:

    >>> import math, torch
    >>> half = torch.full((2, 3), -math.inf); half[:, 0] = half[:, 1] = math.log(0.5)
    >>> ctc_beam_search(half, beam=4)
    [0]
    """
    if log_probs.ndim != 2:
        raise ValueError(f"expected (frames, 1 + vocab) log-probabilities, got {tuple(log_probs.shape)}")
    log_probs = log_probs.float().cpu()
    top_values, top_ids = log_probs[:, 1:].topk(min(candidates, log_probs.shape[1] - 1), dim=-1)
    blanks = log_probs[:, CTC_BLANK].tolist()
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}  # prefix -> (ends in blank, not)
    for t, blank in enumerate(blanks):
        frame = log_probs[t]
        best = max(blank, float(top_values[t, 0]))
        tokens = [] if blank > math.log(blank_skip) else [
            (int(c), float(v)) for v, c in zip(top_values[t].tolist(), top_ids[t].tolist()) if v > best - prune]
        grown: dict[tuple[int, ...], list[float]] = {}
        lm_next = dict(zip(beams, lm.next_log_probs_many(list(beams)))) if tokens and lm is not None and lm_weight else {}
        for prefix, (ends_blank, ends_token) in beams.items():
            total = _log_add(ends_blank, ends_token)
            stay = grown.setdefault(prefix, [-math.inf, -math.inf])
            stay[0] = _log_add(stay[0], total + blank)
            if prefix:  # the last token again, with no blank between: the same prefix
                stay[1] = _log_add(stay[1], ends_token + float(frame[prefix[-1] + 1]))
            for token, value in tokens:
                bonus = length_bonus + (lm_weight * float(lm_next[prefix][token]) if lm_next else 0.0)
                # a repeated token needs a blank between the two to count twice
                before = ends_blank if prefix and token == prefix[-1] else total
                entry = grown.setdefault(prefix + (token,), [-math.inf, -math.inf])
                entry[1] = _log_add(entry[1], before + value + bonus)
        ranked = sorted(grown.items(), key=lambda item: -_log_add(*item[1]))[:beam]
        beams = {prefix: (scores[0], scores[1]) for prefix, scores in ranked}

    ends = dict(zip(beams, lm.next_log_probs_many(list(beams)))) if lm is not None and lm_weight else {}

    def final(prefix: tuple[int, ...]) -> float:
        score = _log_add(*beams[prefix])
        if ends:
            score += lm_weight * float(ends[prefix][lm.end_id])
        return score

    return list(max(beams, key=final))
