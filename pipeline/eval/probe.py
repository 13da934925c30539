"""Judge a student's distillation in words: Whisper's own decoder reads the student's prediction.

A student export's head for the teacher's last layer predicts Whisper's encoder output. Put back in
the teacher's space (:meth:`~pipeline.train.targets.TargetPreparer.to_teacher_space`: the free scale
fixed, the standardisation undone, the pooling repeated out), it goes to Whisper's decoder, and the
transcript's WER says whether the student's audio states carry the words, before stage 2 ever runs.

Beside the student, on the same clips and through the same path:

* ``teacher``: the stored teacher states themselves, prepared like the student's targets (the best
  the probe can read: what pooling and the fixed scale leave of Whisper's own transcript);
* ``position_mean``: the mean training target per frame position (a predictor that does not listen);
* ``ctc`` (students with a CTC head, :mod:`pipeline.models.ctc`): the head's own greedy transcript, in the
  LLM's tokens, with no Whisper decoder at all;

The decoder reads greedily, at most ``6 tokens/s x clip + 8`` tokens, never repeating a 3-gram (it loops
without the window's padding after the speech); the same for all three.

and the per-layer cosine of every head to its targets beside the constant and position-mean predictors.

    >>> result = probe_export(cfg, "runs/speech/checkpoints/distill/export/student.safetensors")  # doctest: +SKIP
    >>> result["wer"]["student"], result["wer"]["teacher"], result["wer"]["position_mean"]       # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.config import AuraConfig, StudentConfig
from pipeline.data.mel import WHISPER_SAMPLE_RATE
from pipeline.prompts import spoken_text


# Whisper's decoder reading only the kept frames (no 30 s of padding after them) tends to loop; a loop
# is the same failure for every system probed, and it would swamp the WER with insertions. So the probe
# caps the answer at what the clip could hold and forbids repeating a 3-gram, for all systems alike.
PROBE_TOKENS_PER_SECOND = 6.0
PROBE_NO_REPEAT_NGRAM = 3


def _decode(whisper, tokenizer, states: torch.Tensor, max_new_tokens: int, seconds: float) -> str:
    from transformers.modeling_outputs import BaseModelOutput

    dtype = next(whisper.parameters()).dtype
    encoded = BaseModelOutput(last_hidden_state=states[None].to(whisper.device, dtype))
    limit = max(4, min(max_new_tokens, int(PROBE_TOKENS_PER_SECOND * seconds) + 8))
    ids = whisper.generate(encoder_outputs=encoded, max_new_tokens=limit, do_sample=False, num_beams=1,
                           no_repeat_ngram_size=PROBE_NO_REPEAT_NGRAM)
    return tokenizer.batch_decode(ids, skip_special_tokens=True)[0].strip()


def probe_rows(cfg: AuraConfig, store, split: str, max_samples: int | None):
    """``(data, keys)``: the split's utterances with a transcript (transcriptions and spoken questions),
    spread evenly over the split when ``max_samples`` is below its size."""
    from pipeline.data.shards import ShardSet
    from pipeline.train.data import TrainingData, spread_evenly

    data = TrainingData(ShardSet(cfg.paths.shards), store, split=split, tasks=None)
    keys = [k for k in data.keys() if spoken_text(data.rows[k])]
    return data, spread_evenly(keys, max_samples)


@torch.inference_mode()
def probe_export(cfg: AuraConfig, export_path: str | Path, split: str = "dev", max_samples: int | None = 200,
                 batch_size: int = 8, max_new_tokens: int = 64, progress: bool = True,
                 reference_samples: int | None = None, label: str | None = None) -> dict[str, Any]:
    """Probe WER (student, teacher, position mean) and per-layer cosine (student, constant, position mean)
    of one student export on ``split``; see the module docstring. ``label`` names the export on the
    progress bar."""
    from safetensors import safe_open
    from tqdm import tqdm

    from pipeline.eval.metrics import collapse_repeats, word_error_rate
    from pipeline.cluster import quiet_transformers
    from pipeline.models.sources import load_llm, load_whisper
    from pipeline.models.distillation import distillation_loss
    from pipeline.models.student import AuraStudent
    from pipeline.store import open_store_for
    from pipeline.prompts import audio_prefix_ids
    from pipeline.train.reference import ReferencePredictors
    from pipeline.train.targets import TargetPreparer

    export_path = Path(export_path)
    store = open_store_for(cfg, mode="r")
    if store is None:
        raise FileNotFoundError(f"no feature store at {cfg.paths.store}: the probe compares with the cached teacher")
    with safe_open(str(export_path), framework="pt") as handle:
        import json

        meta = json.loads((handle.metadata() or {}).get("aura_student", "null"))
    if not meta:
        raise ValueError(f"{export_path} is not an AuRA student file")
    student_cfg = StudentConfig.model_validate(meta["student"])
    prepare = TargetPreparer(store, student_cfg)
    last = max(int(j) for j in meta["layer_map"])

    llm, tokenizer = load_llm(cfg.models.llm, cfg.models.cache_dir, trust_remote_code=cfg.models.trust_remote_code)
    student = AuraStudent.load(llm, export_path).eval()
    prefix = audio_prefix_ids(tokenizer)
    with quiet_transformers():
        whisper, _, whisper_tokenizer = load_whisper(cfg.models.teacher, cfg.models.cache_dir,
                                                     trust_remote_code=cfg.models.trust_remote_code)
    whisper.eval()

    from pipeline.data.shards import ShardSet
    from pipeline.train.data import TrainingData

    train = TrainingData(ShardSet(cfg.paths.shards), store, split="train", tasks=None)
    reference = ReferencePredictors.fit_on_data(prepare, train, reference_samples or cfg.train.reference_samples)
    data, keys = probe_rows(cfg, store, split, max_samples)
    if not keys:
        raise ValueError(f"no {split} utterances with a transcript to probe")

    systems = ("student", "teacher", "position_mean")
    if student.ctc_head is not None:
        from pipeline.models.ctc import ctc_greedy_ids

        systems += ("ctc",)
    hypotheses: dict[str, list[str]] = {name: [] for name in systems}
    references: list[str] = []
    cos_sums = {f"{p}cos_L{j}": 0.0 for j in student.layer_map for p in ("", "const_", "posmean_")}
    examples = []
    bar = tqdm(total=len(keys), desc=f"probe ({split}{', ' + label if label else ''})", disable=not progress)
    for start in range(0, len(keys), batch_size):
        chunk = keys[start:start + batch_size]
        batch = data.load(chunk, with_targets=True)
        mel, token_lengths = student.patch_embedding.mel_batch(batch.audio)
        out = student.forward_distill(mel, token_lengths, prefix_ids=prefix)
        targets, _ = prepare(batch.targets, batch.target_lengths)
        mask = out["token_mask"]
        _, per_layer = distillation_loss(out["layer_states"], targets, mask)
        for j, v in per_layer.items():
            cos_sums[f"cos_L{j}"] += float(v["cosine"]) * len(chunk)
        predictions = {"student": out["layer_states"][last], "teacher": targets[last]}
        for kind, p in (("constant", "const_"), ("position_mean", "posmean_")):
            guess = reference.predict(kind, mask)
            _, ref = distillation_loss({j: guess[j] for j in student.layer_map}, targets, mask)
            for j, v in ref.items():
                cos_sums[f"{p}cos_L{j}"] += float(v["cosine"]) * len(chunk)
            if kind == "position_mean":
                predictions[kind] = guess[last]
        ctc_ids = ctc_greedy_ids(out["ctc_log_probs"], out["ctc_lengths"]) if "ctc" in systems else None
        for b, key in enumerate(chunk):
            row = batch.rows[b]
            references.append(spoken_text(row))
            n_tokens, n_frames = int(token_lengths[b]), int(batch.target_lengths[b])
            if ctc_ids is not None:
                hypotheses["ctc"].append(student.ctc_head.text(ctc_ids[b], tokenizer))
            for name in systems[:3]:
                states = prepare.to_teacher_space(last, predictions[name][b, :n_tokens], reference.frame_norm[last],
                                                  n_frames)
                with quiet_transformers():
                    text = _decode(whisper, whisper_tokenizer, states, max_new_tokens, len(batch.audio[b]) / WHISPER_SAMPLE_RATE)
                    hypotheses[name].append(collapse_repeats(text))
            if len(examples) < 8:
                examples.append({"key": key, "reference": references[-1],
                                 **{name: hypotheses[name][-1] for name in systems}})
        bar.update(len(chunk))
    bar.close()
    wer = {name: word_error_rate(references, hyps).wer for name, hyps in hypotheses.items()}
    cosine = {name: value / len(keys) for name, value in cos_sums.items()}
    return {
        "export": str(export_path), "split": split, "utterances": len(keys), "teacher_layer": last,
        "layer_map": meta["layer_map"],
        "pooling": prepare.pool * store.fingerprint.pooling, "standardized": prepare.standardize,
        "wer": wer, "cosine": cosine, "examples": examples,
        **({"ctc_vocabulary": student.ctc_head.vocabulary} if student.ctc_head is not None else {}),
        "distinct_student_outputs": len(set(hypotheses["student"])),
        "hypotheses": {"keys": keys, "references": references, **hypotheses},
    }


def distillation_summary(result: dict[str, Any]) -> dict[str, Any]:
    """:func:`probe_export`'s result in the report's shape: per-layer cosine, its mean, the baselines' and the probe."""
    cos = result["cosine"]
    layers = sorted({int(k.split("_L")[1]) for k in cos if k.startswith("cos_L")})

    def per(prefix: str) -> dict[str, float]:
        return {str(j): cos[f"{prefix}cos_L{j}"] for j in layers}

    summary = {"export": result["export"], "utterances": result["utterances"], "split": result["split"],
               "layers": per(""), "baselines": {"constant": per("const_"), "position_mean": per("posmean_")},
               "layer_map": result.get("layer_map", {}),
               "probe": {"wer": result["wer"], "teacher_layer": result["teacher_layer"],
                         "examples": result["examples"][:4]}}
    summary["mean"] = float(np.mean(list(summary["layers"].values()))) if layers else None
    return summary


def format_probe(result: dict[str, Any]) -> str:
    """A few lines for the terminal: probe WER and cosine, each beside its baselines."""
    wer, cos = result["wer"], result["cosine"]
    layers = sorted({int(k.split("_L")[1]) for k in cos if k.startswith("cos_L")})
    lines = [f"probe on {result['utterances']} {result['split']} utterances ({Path(result['export']).name}; "
             f"teacher layer {result['teacher_layer']}, pooling {result['pooling']})",
             f"  Whisper decoder WER: student {100 * wer['student']:.1f}%  |  teacher states {100 * wer['teacher']:.1f}%"
             f"  |  position mean {100 * wer['position_mean']:.1f}%   "
             f"({result['distinct_student_outputs']} distinct student transcripts)",
             *([f"  CTC head WER (greedy, {result.get('ctc_vocabulary', 'llm_tokens')}): {100 * wer['ctc']:.1f}%  |  "
                "an empty transcript 100.0%"]
               if "ctc" in wer else []),
             "  cosine per layer (student / constant / position mean): " + "  ".join(
                 f"L{j} {cos[f'cos_L{j}']:.3f}/{cos[f'const_cos_L{j}']:.3f}/{cos[f'posmean_cos_L{j}']:.3f}"
                 for j in layers)]
    for ex in result["examples"][:3]:
        lines.append(f"  ref: {ex['reference']}\n      student: {ex['student']}\n      teacher: {ex['teacher']}"
                     + (f"\n      ctc: {ex['ctc']}" if "ctc" in ex else ""))
    return "\n".join(lines)


@torch.inference_mode()
def listening_test(student, tokenizer, audios, tasks, answers, batch_size: int = 8) -> dict[str, Any]:
    """The answers' loss (nats/token) with each clip's own audio and with another clip's (the list rolled
    by one): a student that listens scores its own audio better. ``listen_rate`` is the share of clips
    where it does (0.5 is chance); the same test stage 2 runs on the dev split.

    ``student`` is an :class:`~pipeline.models.student.AuraStudent` (LoRA not merged)."""
    from pipeline.models.sequence import layout_speech_batch
    from pipeline.prompts import answer_ids, instruction_for, prompt_ids

    prompts = {t: prompt_ids(tokenizer, instruction_for(t)) for t in set(tasks)}
    donors = list(audios[1:]) + list(audios[:1])

    def losses(clips) -> torch.Tensor:
        out = []
        for start in range(0, len(clips), batch_size):
            chunk = range(start, min(start + batch_size, len(clips)))
            mel, lengths = student.patch_embedding.mel_batch([clips[i] for i in chunk])
            layout = layout_speech_batch([prompts[tasks[i]][0] for i in chunk], lengths,
                                         after_audio=[prompts[tasks[i]][1] for i in chunk],
                                         targets=[answer_ids(tokenizer, answers[i]) for i in chunk],
                                         pad_id=tokenizer.pad_token_id or 0)
            result = student(**layout, mel=mel, token_lengths=lengths, return_layer_states=False, logits="labels")
            out.append(result["sample_loss"])
        return torch.cat(out)

    own, other = losses(list(audios)), losses(donors)
    return {"clips": len(own), "own_audio_loss": float(own.mean()), "other_audio_loss": float(other.mean()),
            "listen_rate": float((own < other).float().mean()), "own": own.tolist(), "other": other.tolist()}
