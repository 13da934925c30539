"""Ship a trained AuRA model: a merged LLM anyone can load with plain transformers, or a peft adapter.

``aura export --merged DIR`` writes::

    DIR/llm/                        the LLM with LoRA merged (safetensors + tokenizer + chat template):
                                    AutoModelForCausalLM.from_pretrained("DIR/llm") loads it
    DIR/patch_embedding.safetensors the audio patch embedding (Conv1d -> LayerNorm -> Linear)
    DIR/patch_embedding.json        its shape and front end: n_mels, stride, pooling, hidden, llm width, mel settings
    DIR/aura.json                   layer map, prompt layout, stop tokens, attention rule, versions, provenance
    DIR/README.md                   how to run it, with and without this package

``aura export --adapter DIR`` writes ``DIR/adapter/`` (``PeftModel.save_pretrained``: adapter_config.json +
adapter_model.safetensors, for the base LLM named in ``aura.json``), ``DIR/tokenizer/``, the patch
embedding, ``aura.json`` and a README. Both can be given in one call.

Usage::

    >>> from pipeline.export import load_merged
    >>> model = load_merged("exports/aura-smollm2")                  # no config, no LLM spec  # doctest: +SKIP
    >>> model.transcribe([audio_16k])[0].text                                                 # doctest: +SKIP
    'hello world'
    >>> export_merged(EncoderFreeModel.from_config(cfg, dtype="float32"), "exports/aura")    # doctest: +SKIP

A folder is written under a hidden temporary name next to ``DIR`` and renamed into place when
complete, so an interrupted export never looks finished.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import logging
import os
import secrets
import shutil
import warnings
from pathlib import Path

import torch

from pipeline.data.mel import MelSettings, frame_rate_hz
from pipeline.decoding import stop_token_ids
from pipeline.infer import EncoderFreeModel
from pipeline.runtime import resolve_device, resolve_dtype
from pipeline.models.patch_embedding import AudioPatchEmbedding
from pipeline.models.student import AuraStudent
from pipeline.prompts import AUDIO_PLACEHOLDER, SYSTEM_PROMPT, TASK_INSTRUCTIONS, prompt_ids

logger = logging.getLogger(__name__)

EXPORT_FORMAT_VERSION = 1
AURA_JSON = "aura.json"
PATCH_WEIGHTS = "patch_embedding.safetensors"
PATCH_CONFIG = "patch_embedding.json"
MASK_RULE = ("query q may attend key k when k is a real (non-padding) token and either k <= q (causal) or q and k "
             "are audio tokens of the same contiguous audio run (bidirectional inside the audio block)")


class ExportError(RuntimeError):
    """An export folder cannot be written or read."""


# --------------------------------------------------------------------------------------------------
# Patch embedding on disk
# --------------------------------------------------------------------------------------------------


def save_patch_embedding(patch: AudioPatchEmbedding, directory: str | Path, bidirectional_audio: bool = True) -> None:
    """Write ``patch_embedding.safetensors`` (keys ``patchify.*``, ``norm.*``, ``proj.*``) and ``patch_embedding.json``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    config = {
        "n_mels": patch.n_mels,
        "stride": patch.stride,  # mel frames per audio token = 2 (Whisper's conv stride) x pooling
        "pooling": patch.pooling,
        "hidden": patch.patchify.out_channels,
        "front_end_channels": patch.front_end[0].out_channels if patch.front_end is not None else 0,
        "front_end_clip_mean": patch.front_end_clip_mean,
        "teacher_stem_width": patch.teacher_stem[0].out_channels if patch.teacher_stem is not None else 0,
        "teacher_blocks": len(patch.teacher_blocks) if patch.teacher_blocks is not None else 0,
        "llm_width": patch.proj.out_features,
        "mel_settings": patch.mel_settings.model_dump(),
        "bidirectional_audio": bidirectional_audio,
        "tokens_per_second": frame_rate_hz(patch.pooling, patch.mel_settings),
        "dtype": str(patch.proj.weight.dtype).removeprefix("torch."),
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in patch.state_dict().items()}
    save_file(tensors, str(directory / PATCH_WEIGHTS), metadata={"aura_patch_embedding": json.dumps(config)})
    (directory / PATCH_CONFIG).write_text(json.dumps(config, indent=2) + "\n")


def load_patch_embedding(directory: str | Path) -> tuple[AudioPatchEmbedding, dict]:
    """Rebuild the patch embedding of an export folder; returns ``(module, its config dict)``."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config = json.loads((directory / PATCH_CONFIG).read_text())
    patch = AudioPatchEmbedding(config["n_mels"], config["llm_width"], config["stride"], hidden=config["hidden"],
                                mel_settings=MelSettings(**config["mel_settings"]),
                                front_end_channels=config.get("front_end_channels", 0),
                                front_end_clip_mean=config.get("front_end_clip_mean", False),
                                teacher_stem_width=config.get("teacher_stem_width", 0),
                                teacher_blocks=config.get("teacher_blocks", 0))
    patch.load_state_dict(load_file(str(directory / PATCH_WEIGHTS)))
    return patch.eval(), config


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("aura-pipeline", "torch", "transformers", "peft", "safetensors"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _aura_json(kind: str, metadata: dict, tokenizer, stops: list[int], bidirectional_audio: bool) -> dict:
    before, after = prompt_ids(tokenizer, TASK_INSTRUCTIONS["transcribe"])
    keep = ("llm_spec", "source_export", "layer_map", "lora_layers", "teacher_layers", "teacher_width", "n_mels",
            "pooling", "llm_layers", "llm_width", "student", "format_version")
    return {
        "format": kind,
        "export_format_version": EXPORT_FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "student": {k: metadata[k] for k in keep if k in metadata},
        "prompt": {
            "layout": f"chat template around a system turn (system_prompt) and a user turn "
                      f"'{AUDIO_PLACEHOLDER}\\n<instruction>' with the generation prompt; {AUDIO_PLACEHOLDER} is "
                      "replaced by the audio tokens",
            "system_prompt": SYSTEM_PROMPT,
            "audio_placeholder": AUDIO_PLACEHOLDER,
            "task_instructions": dict(TASK_INSTRUCTIONS),
            "example": {"instruction": TASK_INSTRUCTIONS["transcribe"], "ids_before_audio": before,
                        "ids_after_audio": after},
        },
        "stop_token_ids": stops,
        "attention": {"bidirectional_audio": bidirectional_audio, "rule": MASK_RULE,
                      "positions": "count real tokens only (0 for left padding)"},
        "versions": _versions(),
    }


class _StagedDir:
    """Write into ``.tmp-<name>-<random>`` beside ``target``; rename into place on success."""

    def __init__(self, target: str | Path, overwrite: bool):
        self.target = Path(target)
        if self.target.exists() and any(self.target.iterdir()) and not overwrite:
            raise ExportError(f"{self.target} exists and is not empty; pass --overwrite to replace it")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.target.parent / f".tmp-{self.target.name}-{secrets.token_hex(4)}"

    def __enter__(self) -> Path:
        self.tmp.mkdir()
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        # Some writers create files 0600 through temp files; a shipped folder should follow the umask.
        umask = os.umask(0)
        os.umask(umask)
        for path in self.tmp.rglob("*"):
            if path.is_file():
                path.chmod(0o666 & ~umask)
        if self.target.exists():
            shutil.rmtree(self.target)
        self.tmp.rename(self.target)


def export_merged(model: EncoderFreeModel, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write a self-contained merged export of ``model`` (LoRA already merged) to ``out_dir``.

    >>> export_merged(EncoderFreeModel.from_config(cfg, dtype="float32"), "exports/aura")   # doctest: +SKIP
    PosixPath('exports/aura')
    """
    if any("lora_" in name for name, _ in model.llm.named_parameters()):
        raise ExportError("the LLM still has LoRA layers; build the model with merge=True")
    with _StagedDir(out_dir, overwrite) as tmp:
        model.llm.save_pretrained(tmp / "llm")
        model.tokenizer.save_pretrained(tmp / "llm")
        save_patch_embedding(model.patch_embedding, tmp, model.bidirectional_audio)
        info = _aura_json("aura-merged", model.metadata, model.tokenizer, model.stop_token_ids,
                          model.bidirectional_audio)
        (tmp / AURA_JSON).write_text(json.dumps(info, indent=2) + "\n")
        (tmp / "README.md").write_text(merged_readme(info))
    logger.info("merged export written to %s", out_dir)
    return Path(out_dir)


def export_adapter(student: AuraStudent, tokenizer, out_dir: str | Path, llm_spec: str | None = None,
                   overwrite: bool = False) -> Path:
    """Write the peft adapter (``DIR/adapter``), tokenizer, patch embedding, ``aura.json`` and README.

    The student must still hold its LoRA layers (not merged).
    """
    if not hasattr(student.llm, "peft_config"):
        raise ExportError("LoRA was merged into this student; export the adapter before merging")
    metadata = {**student.metadata, **({"llm_spec": llm_spec} if llm_spec else {})}
    with _StagedDir(out_dir, overwrite) as tmp:
        # save_embedding_layers=False: "auto" may try to look the base model up on the Hub.
        student.llm.save_pretrained(tmp / "adapter", save_embedding_layers=False)
        tokenizer.save_pretrained(tmp / "tokenizer")
        save_patch_embedding(student.patch_embedding, tmp, student.bidirectional_audio)
        info = _aura_json("aura-adapter", metadata, tokenizer, stop_token_ids(tokenizer, student.base_llm),
                          student.bidirectional_audio)
        (tmp / AURA_JSON).write_text(json.dumps(info, indent=2) + "\n")
        (tmp / "README.md").write_text(adapter_readme(info))
    logger.info("adapter export written to %s", out_dir)
    return Path(out_dir)


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def _read_aura_json(directory: Path, kind: str) -> dict:
    path = directory / AURA_JSON
    if not path.is_file():
        raise ExportError(f"{directory} is not an AuRA export (no {AURA_JSON})")
    info = json.loads(path.read_text())
    if info.get("format") != kind:
        raise ExportError(f"{directory} holds a {info.get('format')!r} export, not {kind!r}")
    if info.get("export_format_version", 0) > EXPORT_FORMAT_VERSION:
        raise ExportError(f"{directory} was written by a newer exporter (format "
                          f"{info['export_format_version']} > {EXPORT_FORMAT_VERSION}); upgrade this package")
    return info


def load_merged(directory: str | Path, device: str | torch.device | None = None,
                dtype: str | torch.dtype | None = None) -> EncoderFreeModel:
    """Rebuild an :class:`~pipeline.infer.EncoderFreeModel` from an ``aura export --merged`` folder alone.

    >>> model = load_merged("exports/aura", device="cuda", dtype="bfloat16")    # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = Path(directory)
    info = _read_aura_json(directory, "aura-merged")
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    llm = AutoModelForCausalLM.from_pretrained(directory / "llm", dtype=dtype, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(directory / "llm")
    patch, patch_config = load_patch_embedding(directory)
    llm.to(device)
    patch.to(device=device, dtype=dtype)
    metadata = {**info.get("student", {}), "export_dir": str(directory)}
    return EncoderFreeModel(llm, tokenizer, patch, patch_config.get("bidirectional_audio", True), metadata)


def load_adapter(directory: str | Path, llm_spec: str | None = None, cache_dir: str | Path | None = None,
                 device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
                 ) -> EncoderFreeModel:
    """Base LLM (``llm_spec``, default the one recorded in ``aura.json``) + an ``aura export --adapter``
    folder, LoRA merged.

    >>> model = load_adapter("exports/aura-adapter", llm_spec="HuggingFaceTB/SmolLM2-135M-Instruct")  # doctest: +SKIP
    """
    from peft import PeftModel

    from transformers import AutoTokenizer

    from pipeline.runtime import ensure_mask_attention
    from pipeline.models.sources import load_llm

    directory = Path(directory)
    info = _read_aura_json(directory, "aura-adapter")
    spec = llm_spec or info.get("student", {}).get("llm_spec")
    if not spec:
        raise ExportError(f"{directory}/aura.json names no base LLM; pass llm_spec")
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    llm, _ = load_llm(spec, cache_dir, dtype=dtype)
    ensure_mask_attention(llm)
    with warnings.catch_warnings():
        # peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing`; the warning is theirs.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        llm = PeftModel.from_pretrained(llm, directory / "adapter").merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(directory / "tokenizer")
    patch, patch_config = load_patch_embedding(directory)
    llm.to(device)
    patch.to(device=device, dtype=dtype)
    metadata = {**info.get("student", {}), "llm_spec": spec, "export_dir": str(directory)}
    return EncoderFreeModel(llm, tokenizer, patch, patch_config.get("bidirectional_audio", True), metadata)


# --------------------------------------------------------------------------------------------------
# README files (the code block under "Without this package" is executed by the tests)
# --------------------------------------------------------------------------------------------------

PLAIN_USAGE = '''\
import json, math
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, WhisperFeatureExtractor

llm = AutoModelForCausalLM.from_pretrained(f"{export_dir}/llm", attn_implementation="sdpa").eval()
tok = AutoTokenizer.from_pretrained(f"{export_dir}/llm")
cfg = json.load(open(f"{export_dir}/patch_embedding.json"))
info = json.load(open(f"{export_dir}/aura.json"))


class WhisperLayer(torch.nn.Module):  # one Whisper encoder layer (pre-norm attention, GELU MLP)
    def __init__(self, w):
        super().__init__()
        self.register_buffer("heads", torch.tensor(0))  # its attention heads, from the file
        self.self_attn_layer_norm, self.final_layer_norm = torch.nn.LayerNorm(w), torch.nn.LayerNorm(w)
        self.self_attn = torch.nn.ModuleDict({"q_proj": torch.nn.Linear(w, w),
                                              "k_proj": torch.nn.Linear(w, w, bias=False),
                                              "v_proj": torch.nn.Linear(w, w), "out_proj": torch.nn.Linear(w, w)})
        self.fc1, self.fc2 = torch.nn.Linear(w, 4 * w), torch.nn.Linear(4 * w, w)

    def forward(self, x, keys):  # keys (B, T): the frames each frame may attend to
        (b, t, w), a = x.shape, self.self_attn
        q, k, v = (a[n](self.self_attn_layer_norm(x)).view(b, t, int(self.heads), -1).transpose(1, 2)
                   for n in ("q_proj", "k_proj", "v_proj"))
        mixed = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keys[:, None, None, :])
        x = x + a["out_proj"](mixed.transpose(1, 2).reshape(b, t, w))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.final_layer_norm(x))))


class PatchEmbedding(torch.nn.Module):  # log-mel (B, n_mels, T * stride) -> (B, T, llm_width)
    def __init__(self, n_mels, hidden, llm_width, stride, front_end_channels=0, front_end_clip_mean=False,
                 teacher_stem_width=0, teacher_blocks=0):
        super().__init__()
        self.patchify = torch.nn.Conv1d(n_mels, hidden, kernel_size=stride, stride=stride)
        self.norm = torch.nn.LayerNorm(hidden)
        self.proj = torch.nn.Linear(hidden, llm_width)
        self.front_end = None  # optional: two 3-frame convolutions refining the mel as a residual
        self.clip_mean = front_end_clip_mean  # ... that also see the clip's mean mel over its frames of sound
        if front_end_channels:
            inputs = 2 * n_mels if front_end_clip_mean else n_mels
            self.front_end = torch.nn.Sequential(torch.nn.Conv1d(inputs, front_end_channels, 3), torch.nn.GELU(),
                                                 torch.nn.Conv1d(front_end_channels, n_mels, 3))
        self.teacher_stem = None  # optional: Whisper's conv stem (weights in the file), its frames projected per token
        if teacher_stem_width:
            w = teacher_stem_width
            self.teacher_stem = torch.nn.Sequential(torch.nn.Conv1d(n_mels, w, 3), torch.nn.GELU(),
                                                    torch.nn.Conv1d(w, w, 3, stride=2), torch.nn.GELU())
            self.stem_proj = torch.nn.Linear(w * stride // 2, hidden)
        self.teacher_blocks = None  # optional: Whisper's first encoder layers after the stem, standardised, projected
        if teacher_blocks:
            self.register_buffer("teacher_positions", torch.zeros(1500, w))
            self.teacher_blocks = torch.nn.ModuleList(WhisperLayer(w) for _ in range(teacher_blocks))
            self.register_buffer("blocks_mean", torch.zeros(w))
            self.register_buffer("blocks_std", torch.ones(w))
            self.blocks_proj = torch.nn.Linear(w * stride // 2, hidden)

    def forward(self, mel):
        floor = (mel.amax(dim=(1, 2), keepdim=True) - 2).clamp(min=-1.5)  # the clip's silence value
        edge = floor.expand(-1, mel.shape[1], 2)
        stem = None
        if self.teacher_stem is not None:
            frames = self.teacher_stem(torch.cat([edge, mel, edge], dim=-1)).transpose(1, 2)
            tokens = mel.shape[-1] // self.patchify.stride[0]
            stem = self.stem_proj(frames.reshape(frames.shape[0], tokens, -1))
            if self.teacher_blocks is not None:  # each frame attends up to the clip's last frame of sound
                sound = (mel > floor).any(1)
                last = torch.where(sound.any(1), sound.shape[1] - 1 - sound.flip(1).int().argmax(1), 0)
                x = frames + self.teacher_positions[: frames.shape[1]]
                keys = torch.arange(frames.shape[1], device=mel.device)[None, :] * 2 <= last[:, None]
                for layer in self.teacher_blocks:
                    x = layer(x, keys)
                x = (x - self.blocks_mean) / self.blocks_std
                stem = stem + self.blocks_proj(x.reshape(x.shape[0], tokens, -1))
        if self.front_end is not None:
            seen = torch.cat([edge, mel, edge], dim=-1)  # two frames of silence each side
            if self.clip_mean:  # the clip's mean mel over its frames of sound, beside every frame
                sound = (mel > floor).any(1, keepdim=True).float()
                mean = (mel * sound).sum(-1, keepdim=True) / sound.sum(-1, keepdim=True).clamp(min=1)
                seen = torch.cat([seen, mean.expand_as(seen)], dim=1)
            mel = mel + self.front_end(seen)
        patches = self.patchify(mel).transpose(1, 2)
        return self.proj(self.norm(patches if stem is None else patches + stem))


patch = PatchEmbedding(cfg["n_mels"], cfg["hidden"], cfg["llm_width"], cfg["stride"], cfg.get("front_end_channels", 0),
                       cfg.get("front_end_clip_mean", False), cfg.get("teacher_stem_width", 0),
                       cfg.get("teacher_blocks", 0))
patch.load_state_dict(load_file(f"{export_dir}/patch_embedding.safetensors"))

# Whisper's log-mel front end (plain DSP, no Whisper weights), cut to whole audio tokens:
# one token per stride mel frames (hop 160 -> 100 frames/s); `audio` is 16 kHz mono float32.
mel_cfg = cfg["mel_settings"]
num_tokens = math.ceil(math.ceil(len(audio) / (mel_cfg["hop_length"] * 2)) / cfg["pooling"])
features = WhisperFeatureExtractor(feature_size=cfg["n_mels"], hop_length=mel_cfg["hop_length"],
                                   n_fft=mel_cfg["n_fft"], sampling_rate=mel_cfg["sampling_rate"])
mel = torch.from_numpy(features(audio, sampling_rate=16000, return_tensors="np").input_features)
mel = mel[:, :, : num_tokens * cfg["stride"]]

# Prompt: the chat template around the system prompt and "<<AUDIO>>\\n<instruction>";
# the audio tokens replace <<AUDIO>>.
text = tok.apply_chat_template([{"role": "system", "content": info["prompt"]["system_prompt"]},
                                {"role": "user", "content": "<<AUDIO>>\\nTranscribe the audio."}],
                               tokenize=False, add_generation_prompt=True)
before, after = (tok(part, add_special_tokens=False)["input_ids"] for part in text.split("<<AUDIO>>"))

with torch.no_grad():
    audio_embeds = patch(mel)[0]
    stops = set(info["stop_token_ids"])
    answer = []
    for _ in range(32):  # greedy; slow but simple: the whole sequence again at every step
        ids = torch.tensor([before + [0] * num_tokens + after + answer])
        is_audio = torch.zeros(ids.shape[1], dtype=torch.bool)
        is_audio[len(before): len(before) + num_tokens] = True
        # The mask rule: causal, plus audio tokens see each other both ways.
        allowed = torch.ones(ids.shape[1], ids.shape[1], dtype=torch.bool).tril()
        allowed |= is_audio[:, None] & is_audio[None, :]
        embeds = llm.get_input_embeddings()(ids)
        embeds[0, is_audio] = audio_embeds.to(embeds.dtype)
        next_id = int(llm(inputs_embeds=embeds, attention_mask=allowed[None, None]).logits[0, -1].argmax())
        if next_id in stops:
            break
        answer.append(next_id)
text = tok.decode(answer, skip_special_tokens=True).strip()
print(text)
'''

_README_HEAD = """\
# AuRA encoder-free speech LLM ({kind})

An LLM that hears through a small audio patch embedding (Conv1d -> LayerNorm -> Linear on
Whisper-style log-mel frames, one token per {ms:g} ms) instead of a speech encoder: the ability
was distilled from a Whisper encoder into LoRA on its first {lora_layers} decoder layers
(AuRA, arXiv 2606.11033). No Whisper model is needed to run it.

Created {created} with {versions}. Details: `aura.json`, `patch_embedding.json`.

**Attention rule.** {rule}. Positions count real tokens only.
"""


def merged_readme(info: dict) -> str:
    student = info.get("student", {})
    tokens_per_second = frame_rate_hz(int(student.get("pooling", 1)))
    head = _README_HEAD.format(
        kind="merged", ms=1000.0 / tokens_per_second, lora_layers=student.get("lora_layers", "?"),
        created=info["created"], versions=", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        rule=info["attention"]["rule"][0].upper() + info["attention"]["rule"][1:],
    )
    return head + f"""
`llm/` is a plain causal LM with LoRA merged into its weights:
`AutoModelForCausalLM.from_pretrained("llm")` loads it.

## With the AuRA package

```python
from pipeline.export import load_merged
model = load_merged("path/to/this/folder")  # batched greedy decoding with a KV cache
print(model.transcribe([audio])[0].text)   # audio: 16 kHz mono float32 numpy array
```

or from the command line: `aura transcribe --merged path/to/this/folder clip.wav`.

## Without this package

```python
export_dir = "path/to/this/folder"
{PLAIN_USAGE}```
"""


def adapter_readme(info: dict) -> str:
    student = info.get("student", {})
    head = _README_HEAD.format(
        kind="peft adapter", ms=1000.0 / (100.0 / (2 * int(student.get("pooling", 1)))),
        lora_layers=student.get("lora_layers", "?"), created=info["created"],
        versions=", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        rule=info["attention"]["rule"][0].upper() + info["attention"]["rule"][1:],
    )
    return head + f"""
`adapter/` is a peft LoRA adapter for the base LLM `{student.get('llm_spec', '?')}`.

```python
from pipeline.export import load_adapter
model = load_adapter("path/to/this/folder")  # loads the base LLM, merges the adapter
print(model.transcribe([audio])[0].text)

# or by hand:
from peft import PeftModel
llm = PeftModel.from_pretrained(base_llm, "path/to/this/folder/adapter").merge_and_unload()
```

Then run it as in the merged export's README (patch embedding + mask rule).
"""
