"""What can go wrong in turning a model spec into a local directory (:mod:`pipeline.models.sources`)."""


class ModelSourceError(Exception):
    """A model spec cannot be resolved to a local directory."""


class ModelSpecError(ModelSourceError, ValueError):
    """The spec is malformed or names no known model."""


class ModelNotFoundError(ModelSourceError, FileNotFoundError):
    """The spec is well formed but its files are not available on this machine."""
