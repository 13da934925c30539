"""Greedy decoding with a KV cache, shared by every system: AuRA, the text-only LLM and the baselines.

Every decoder goes through :func:`greedy_decode`, so the systems differ only in what they put in front of
the answer (audio tokens, a projector's tokens, a transcript). The results carry what a benchmark needs:
text, token counts, latency and time to first token (:class:`GenerationResult`).
"""

from __future__ import annotations

import inspect
import time
from dataclasses import asdict, dataclass, field
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache

from pipeline.models.sequence import build_attention_mask, layout_speech_batch, position_ids_from_mask
from pipeline.runtime import synchronize



@dataclass
class GenerationResult:
    """One decoded answer.

    ``latency_s`` runs from the start of the :meth:`EncoderFreeModel.generate` call (mel included) to
    the step at which this answer stopped; ``time_to_first_token_s`` to the first generated token.
    Requests decoded together share the prefix pass, so in a batch these are batch wall times.
    """

    text: str
    num_audio_tokens: int
    prompt_tokens: int  # text + audio tokens in front of the answer (padding excluded)
    new_tokens: int  # generated tokens, the stop token excluded
    latency_s: float
    time_to_first_token_s: float
    finish_reason: Literal["stop", "length"] = "stop"
    token_ids: list[int] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("token_ids")
        return out


@dataclass
class GreedyOutput:
    """What :func:`greedy_decode` returns, one entry per sample; times are seconds since ``start_time``."""

    token_ids: list[list[int]]
    finish_reasons: list[str]
    first_token_s: list[float]
    finished_s: list[float]




def cache_kwarg(llm: nn.Module) -> str:
    """transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name warns until 5.40)."""
    return "cache" if "cache" in inspect.signature(llm.forward).parameters else "past_key_values"


def stop_token_ids(tokenizer, llm: nn.Module | None = None) -> list[int]:
    """Ids that end an answer: the tokenizer's EOS, ``<|im_end|>`` when the vocabulary has it, and the
    generation config's EOS ids.

    >>> stop_token_ids(tokenizer, llm)            # SmolLM2: <|im_end|>              # doctest: +SKIP
    [2]
    """
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != getattr(tokenizer, "unk_token_id", None):
        ids.append(im_end)
    generation = getattr(llm, "generation_config", None) if llm is not None else None
    eos = getattr(generation, "eos_token_id", None)
    for i in ([eos] if isinstance(eos, int) else list(eos or [])):
        ids.append(int(i))
    if not ids:
        raise ValueError("the tokenizer has no EOS token and the generation config names none: nothing stops decoding")
    return sorted(set(ids))


@torch.inference_mode()
def greedy_decode(llm: nn.Module, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                  audio_mask: torch.Tensor | None = None, *, max_new_tokens: int,
                  stop_token_ids: Sequence[int], pad_token_id: int, bidirectional_audio: bool = True,
                  start_time: float | None = None) -> GreedyOutput:
    """Greedy decoding with a KV cache after a left-padded prefix given as embeddings.

    The prefix goes through ``llm`` once with the AuRA 4D mask (audio tokens of one run see each
    other when ``bidirectional_audio``; text is causal; padding is never attended) and positions
    counting real tokens only, filling a ``DynamicCache``. Each further step feeds the previous
    token with the standard 2D padding mask, which transformers turns into the cached causal mask.
    A sample stops at its first token in ``stop_token_ids`` (not included in its output) or after
    ``max_new_tokens``; finished samples are fed ``pad_token_id`` until all are done.

    ``llm`` is any causal LM taking ``inputs_embeds`` (the merged Llama, the unmerged peft model's
    base, or a plain text LLM), loaded with ``attn_implementation`` ``"sdpa"`` or ``"eager"``.

    >>> embeds = llm.get_input_embeddings()(ids)                              # doctest: +SKIP
    >>> out = greedy_decode(llm, embeds, torch.ones_like(ids), max_new_tokens=16,
    ...                     stop_token_ids=[2], pad_token_id=2)               # doctest: +SKIP
    >>> tokenizer.decode(out.token_ids[0])                                     # doctest: +SKIP
    """
    from transformers import DynamicCache

    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if inputs_embeds.ndim != 3 or attention_mask.shape != inputs_embeds.shape[:2]:
        raise ValueError(f"inputs_embeds (B, L, D) {tuple(inputs_embeds.shape)} and attention_mask (B, L) "
                         f"{tuple(attention_mask.shape)} do not match")
    if not bool(attention_mask[:, -1].all()):
        raise ValueError("the prefix must be left-padded: the last position of every sample must be a real token")
    start_time = time.perf_counter() if start_time is None else start_time
    device = inputs_embeds.device
    impl = llm.config._attn_implementation
    batch = inputs_embeds.shape[0]
    attention_mask = attention_mask.to(device=device, dtype=torch.long)

    cache_kw = cache_kwarg(llm)
    cache = DynamicCache(config=llm.config)
    mask = build_attention_mask(attention_mask, audio_mask, bidirectional_audio, inputs_embeds.dtype, impl)
    position_ids = position_ids_from_mask(attention_mask)
    # A 4D mask is passed through unchanged by transformers' mask builder; the cache still fills.
    out = llm(inputs_embeds=inputs_embeds, attention_mask=mask, position_ids=position_ids,
              use_cache=True, logits_to_keep=1, **{cache_kw: cache})
    next_position = position_ids[:, -1:] + 1  # left padding: the last column is real everywhere

    stops = set(int(i) for i in stop_token_ids)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    reasons = ["length"] * batch
    first_token_s = [0.0] * batch
    finished_s = [0.0] * batch
    done = [False] * batch
    for step in range(max_new_tokens):
        next_token = out.logits[:, -1].argmax(dim=-1)
        chosen = next_token.tolist()  # one host sync per step; needed to know who stopped
        now = time.perf_counter() - start_time
        for b, token in enumerate(chosen):
            if done[b]:
                continue
            if step == 0:
                first_token_s[b] = now
            if token in stops:
                done[b], reasons[b], finished_s[b] = True, "stop", now
            else:
                tokens[b].append(token)
        if all(done) or step == max_new_tokens - 1:
            break
        feed = torch.tensor([pad_token_id if d else t for d, t in zip(done, chosen)], device=device)[:, None]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
        out = llm(input_ids=feed, attention_mask=attention_mask, position_ids=next_position,
                  use_cache=True, **{cache_kw: cache})
        next_position = next_position + 1
    synchronize(device)
    end = time.perf_counter() - start_time
    finished_s = [t if d else end for t, d in zip(finished_s, done)]
    return GreedyOutput(tokens, reasons, first_token_s, finished_s)


def generation_results(tokenizer, out: GreedyOutput, prompt_tokens: Sequence[int], audio_tokens: Sequence[int]
             ) -> list[GenerationResult]:
    return [
        GenerationResult(
            text=tokenizer.decode(ids, skip_special_tokens=True).strip(),
            num_audio_tokens=int(audio_tokens[b]), prompt_tokens=int(prompt_tokens[b]), new_tokens=len(ids),
            latency_s=out.finished_s[b], time_to_first_token_s=out.first_token_s[b],
            finish_reason=out.finish_reasons[b], token_ids=list(ids),
        )
        for b, ids in enumerate(out.token_ids)
    ]


def padding_token_id(tokenizer) -> int:
    """The id that pads a batch: the tokenizer's pad token, else its end-of-sequence token, else 0."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


@torch.inference_mode()
def text_only_generate(llm: nn.Module, tokenizer, prompts: Sequence[str], max_new_tokens: int = 48,
                       chat: bool = True) -> list[GenerationResult]:
    """Greedy answers of a text LLM alone (e.g. the "LLM given the reference transcript" baseline).

    With ``chat`` each prompt is one user turn in the tokenizer's chat template (plus the assistant
    header); otherwise it is tokenized as is. Same decoding code as the encoder-free model.

    >>> llm, tok = load_llm("bundled:smollm2-135m-instruct")                               # doctest: +SKIP
    >>> text_only_generate(llm, tok, ["Repeat: hello world"], max_new_tokens=8)[0].text    # doctest: +SKIP
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts:
        return []
    start = time.perf_counter()
    rows = []
    for prompt in prompts:
        if chat and getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                 add_generation_prompt=True)
            rows.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        else:
            rows.append(tokenizer(prompt)["input_ids"])
    device = llm.get_input_embeddings().weight.device
    batch = layout_speech_batch(rows, [0] * len(rows), pad_id=padding_token_id(tokenizer), padding_side="left")
    input_ids, attention_mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    out = greedy_decode(llm, llm.get_input_embeddings()(input_ids), attention_mask, None,
                        max_new_tokens=max_new_tokens, stop_token_ids=stop_token_ids(tokenizer, llm),
                        pad_token_id=padding_token_id(tokenizer), start_time=start)
    return generation_results(tokenizer, out, [len(r) for r in rows], [0] * len(rows))


class LLMPrefixScorer:
    """A causal LM as the language model of :func:`pipeline.models.ctc.ctc_beam_search`: the log-probabilities of
    the token after a prefix of LLM token ids, the text starting after ``start_id`` (the end-of-text token: a
    transcript read as a document of its own). Each prefix's keys and values are kept, so scoring an extension runs
    one token, and :meth:`next_log_probs_many` runs a beam's new prefixes as one batch (their caches left-padded to
    the longest): one token of a 135 M LLM on a CPU is bound by reading its weights, so a batch costs less than its
    tokens one at a time (the fused read-out 1.6x faster per clip, benchmarks/results/ctc_lm_fusion/). Call
    :meth:`reset` between clips.

    >>> scorer = LLMPrefixScorer(llm, start_id=tokenizer.eos_token_id, end_id=tokenizer.eos_token_id)  # doctest: +SKIP
    >>> scorer.next_log_probs((tokenizer.encode("The")[0],)).shape                                   # doctest: +SKIP
    torch.Size([49152])
    """

    def __init__(self, llm: nn.Module, start_id: int, end_id: int):
        self.llm, self.start_id, self.end_id = llm, int(start_id), int(end_id)
        self._cache_arg = cache_kwarg(llm)
        # prefix -> (log-probs of the next token, per layer (keys, values) of shape (heads, tokens, head_dim))
        self._seen: dict[tuple[int, ...], tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]] = {}

    def reset(self) -> None:
        self._seen.clear()

    def next_log_probs(self, prefix: tuple[int, ...]) -> torch.Tensor:
        return self.next_log_probs_many([prefix])[0]

    @torch.inference_mode()
    def next_log_probs_many(self, prefixes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
        """:meth:`next_log_probs` of each prefix; those not scored yet run together (their parents first)."""
        todo = list(dict.fromkeys(p for p in prefixes if p not in self._seen))
        parents = [p[:-1] for p in todo if p and p[:-1] not in self._seen]
        if parents:
            self.next_log_probs_many(parents)
        if () in todo:
            self._run([()])
            todo.remove(())
        if todo:
            self._run(todo)
        return [self._seen[p][0] for p in prefixes]

    def _run(self, prefixes: list[tuple[int, ...]]) -> None:
        device = self.llm.get_input_embeddings().weight.device
        if prefixes == [()]:
            ids, past, mask, positions = torch.tensor([[self.start_id]], device=device), None, None, None
        else:  # each prefix's last token after its parent's cache, the caches left-padded to the longest
            caches = [self._seen[p[:-1]][1] for p in prefixes]
            lengths = [c[0][0].shape[1] for c in caches]
            longest = max(lengths)
            layers = []
            for layer in range(len(caches[0])):
                keys, values = [], []
                for cache, n in zip(caches, lengths):
                    k, v = cache[layer]
                    keys.append(F.pad(k, (0, 0, longest - n, 0)))
                    values.append(F.pad(v, (0, 0, longest - n, 0)))
                layers.append((torch.stack(keys), torch.stack(values)))
            past = DynamicCache(ddp_cache_data=layers)
            mask = torch.zeros(len(prefixes), longest + 1, dtype=torch.long, device=device)
            for i, n in enumerate(lengths):
                mask[i, longest - n:] = 1
            ids = torch.tensor([[p[-1]] for p in prefixes], device=device)
            positions = torch.tensor([[n] for n in lengths], device=device)
        out = self.llm(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                       **{self._cache_arg: past})
        log_probs = torch.log_softmax(out.logits[:, -1].float(), dim=-1).cpu()
        cache = out.past_key_values
        for i, prefix in enumerate(prefixes):
            n = 1 if not prefix else lengths[i] + 1
            kept = [(layer.keys[i, :, -n:], layer.values[i, :, -n:]) for layer in cache.layers]
            self._seen[prefix] = (log_probs[i], kept)
