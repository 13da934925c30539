"""The config's feature store: its fingerprint, read from the teacher's files, and opening it.

Every stage that reads teacher targets (training, evaluation, the probe) opens the store here, so
none of them depends on the teacher job (:mod:`pipeline.precompute`) that fills it.
"""

from __future__ import annotations

from feature_store import FeatureStore, StoreFingerprint, TargetStats
from pipeline.config import AuraConfig
from pipeline.data.mel import frame_rate_hz, mel_settings_of


def teacher_fingerprint(cfg: AuraConfig) -> StoreFingerprint:
    """The store fingerprint this config asks for, read from the teacher's files (no weights loaded)."""
    from transformers import WhisperConfig, WhisperFeatureExtractor

    from pipeline.models.cache import weights_fingerprint
    from pipeline.models.sources import resolve_model_dir

    model_dir = resolve_model_dir(cfg.models.teacher, cfg.models.cache_dir)
    wcfg = WhisperConfig.from_pretrained(model_dir)
    fe = WhisperFeatureExtractor.from_pretrained(model_dir)
    layers = cfg.store.layers if cfg.store.layers is not None else list(range(1, wcfg.encoder_layers + 1))
    return StoreFingerprint(
        teacher=cfg.models.teacher,
        teacher_weights=weights_fingerprint(model_dir),
        layers=layers,
        pooling=cfg.store.pooling,
        codec=cfg.store.codec,
        width=wcfg.d_model,
        frame_rate_hz=frame_rate_hz(cfg.store.pooling),
        mel=mel_settings_of(fe),
        window=cfg.store.window,
        window_step_s=cfg.store.window_step_s if cfg.store.window == "trim" else None,
        min_window_s=cfg.store.min_window_s if cfg.store.window == "trim" else None,
    )


def open_store_for(cfg: AuraConfig, mode: str = "r") -> FeatureStore:
    """Open the config's store, refusing one whose fingerprint differs (the message names the field)."""
    return FeatureStore.open(cfg.paths.store, teacher_fingerprint(cfg), mode=mode)


def reference_target_stats(cfg: AuraConfig) -> TargetStats | None:
    """The statistics that standardise the targets when they are not the config's store's own
    (``train.target_stats_from``: a feature store, opened read-only with the same fingerprint check, or a
    ``target_stats.npz`` file such as the one beside the released student); ``None`` when unset."""
    path = cfg.train.target_stats_from
    if path is None:
        return None
    if path.is_dir():
        return FeatureStore.open(path, teacher_fingerprint(cfg), mode="r").target_stats()
    if path.is_file():
        return TargetStats.from_npz(path)
    raise FileNotFoundError(f"train.target_stats_from: no feature store or target_stats.npz at {path}")
