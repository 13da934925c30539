"""The bridge baseline's model: Whisper's final-layer states -> a small projector -> the frozen LLM's inputs.

:class:`BridgeProjector` stacks ``k`` consecutive teacher frames and maps them with a 2-layer MLP to the LLM
width; :func:`bridge_embeddings` writes its tokens at the audio positions of AuRA's own prompt layout
(:func:`~pipeline.models.sequence.layout_speech_batch`), and :func:`bridge_loss` is the LM loss on the
answers that trains it (:mod:`pipeline.train.bridge`). The system that answers with it is
:class:`pipeline.eval.systems.BridgeSystem`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.decoding import padding_token_id
from pipeline.models.sequence import IGNORE_INDEX, layout_speech_batch
from pipeline.prompts import answer_ids, instruction_for, prompt_ids, target_for

_FORMAT_VERSION = 1


class BridgeProjector(nn.Module):
    """Whisper final-layer frames ``(B, T, Dt)`` -> LLM tokens ``(B, ceil(T / stack), D)``.

    ``stack`` consecutive frames are concatenated (the last group zero-padded), then a 2-layer MLP
    (Linear -> GELU -> Linear) maps ``stack * Dt`` to the LLM width.

    >>> proj = BridgeProjector(teacher_width=8, llm_width=16, stack=4)
    >>> tokens, lengths = proj(torch.randn(2, 10, 8), torch.tensor([10, 5]))
    >>> tuple(tokens.shape), lengths.tolist()
    ((2, 3, 16), [3, 2])
    """

    def __init__(self, teacher_width: int, llm_width: int, stack: int = 4, hidden: int | None = None):
        super().__init__()
        if stack < 1:
            raise ValueError(f"stack must be >= 1, got {stack}")
        self.teacher_width, self.llm_width, self.stack = teacher_width, llm_width, stack
        self.hidden = hidden or llm_width
        self.mlp = nn.Sequential(nn.Linear(teacher_width * stack, self.hidden), nn.GELU(),
                                 nn.Linear(self.hidden, llm_width))

    def num_tokens(self, frames: int) -> int:
        return math.ceil(frames / self.stack)

    def forward(self, states: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, frames, width = states.shape
        if width != self.teacher_width:
            raise ValueError(f"expected teacher width {self.teacher_width}, got {width}")
        if lengths is None:
            lengths = torch.full((batch,), frames, dtype=torch.long)
        lengths = lengths.to(states.device)
        # zero every frame past each sample's length, so a group is padded with zeros in any batch
        valid = torch.arange(frames, device=states.device)[None] < lengths[:, None]
        states = states * valid[..., None].to(states.dtype)
        groups = math.ceil(frames / self.stack)
        states = F.pad(states, (0, 0, 0, groups * self.stack - frames))
        stacked = states.reshape(batch, groups, self.stack * width)
        tokens = self.mlp(stacked.to(self.mlp[0].weight.dtype))
        return tokens, torch.div(lengths + self.stack - 1, self.stack, rounding_mode="floor")

    def config(self) -> dict:
        return {"teacher_width": self.teacher_width, "llm_width": self.llm_width, "stack": self.stack,
                "hidden": self.hidden}


def save_projector(projector: BridgeProjector, path: str | Path, metadata: dict | None = None) -> Path:
    """Write the projector's weights and config (plus ``metadata``) to one safetensors file."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in projector.state_dict().items()}
    meta = {"format_version": _FORMAT_VERSION, "projector": projector.config(), **(metadata or {})}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata={"aura_bridge": json.dumps(meta)})
    tmp.replace(path)
    return path


def load_projector(path: str | Path, device=None, dtype: torch.dtype | None = None) -> tuple[BridgeProjector, dict]:
    """``(projector, metadata)`` from a :func:`save_projector` file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads((handle.metadata() or {}).get("aura_bridge", "null"))
    if not meta:
        raise ValueError(f"{path} is not a bridge projector file (no 'aura_bridge' metadata)")
    projector = BridgeProjector(**meta["projector"])
    projector.load_state_dict(load_file(str(path)))
    projector.to(device=device or "cpu", dtype=dtype or torch.float32)
    return projector.eval(), meta


def bridge_embeddings(llm: nn.Module, input_ids: torch.Tensor, audio_mask: torch.Tensor,
                      tokens: torch.Tensor, token_lengths: torch.Tensor) -> torch.Tensor:
    """Token embeddings with each sample's projector tokens written, in order, at its audio positions."""
    embed = llm.get_input_embeddings()
    valid = torch.arange(tokens.shape[1], device=tokens.device)[None] < token_lengths.to(tokens.device)[:, None]
    embeds = embed(input_ids.masked_fill(audio_mask, 0))
    return embeds.masked_scatter(audio_mask[..., None], tokens[valid].to(embeds.dtype))


def bridge_loss(llm: nn.Module, tokenizer, projector: BridgeProjector, states: torch.Tensor, lengths: torch.Tensor,
                rows: Sequence[dict], prompts: dict[str, tuple[list[int], list[int]]] | None = None) -> torch.Tensor:
    """LM loss (mean cross-entropy) on the answer tokens of ``rows`` given their teacher states ``(B, T, Dt)``."""
    device = llm.get_input_embeddings().weight.device
    tokens, token_lengths = projector(states.to(device), lengths.to(device))
    tasks = [row.get("task") or "transcribe" for row in rows]
    prompts = prompts or {t: prompt_ids(tokenizer, instruction_for(t)) for t in set(tasks)}
    layout = layout_speech_batch([prompts[t][0] for t in tasks], token_lengths.cpu(),
                                 after_audio=[prompts[t][1] for t in tasks],
                                 targets=[answer_ids(tokenizer, target_for(row)) for row in rows],
                                 pad_id=padding_token_id(tokenizer), padding_side="right")
    layout = {k: v.to(device) for k, v in layout.items()}
    embeds = bridge_embeddings(llm, layout["input_ids"], layout["audio_mask"], tokens, token_lengths)
    out = llm(inputs_embeds=embeds, attention_mask=layout["attention_mask"], use_cache=False)
    logits = out.logits[:, :-1].float()
    labels = layout["labels"][:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)
