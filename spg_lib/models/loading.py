"""`load_model` / `load_tokenizer`: one entry point for the tiny built-in model, local checkpoints and hub ids.

Accepted sources:
  - "builtin:tiny": a freshly initialised tiny LLaDA (seed 0) / the tiny character tokenizer;
  - a local directory or "file://" URI: native `LLaDAModelLM` when config.json has model_type "llada" (the official
    LLaDA layout: config.json + model.safetensors or sharded safetensors with model.safetensors.index.json);
    any other model_type only with trust_remote_code=True, through `AutoModel`;
  - anything else that looks like a hub id ("org/name") is handed to `from_pretrained` (network; not tested).

Test: `python -m pytest -q tests/models/test_loading.py`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from spg_lib.models.configuration_llada import LLaDAConfig
from spg_lib.models.modeling_llada import LLaDAModelLM
from spg_lib.models.tiny import build_tiny_tokenizer, init_tiny_model

BUILTIN_TINY = "builtin:tiny"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | str | None:
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"dtype={dtype!r} is not a torch dtype name (e.g. 'bfloat16', 'float32') or 'auto'")
    return resolved


def _local_path(path_or_uri: str) -> Path | None:
    """A local path for directories and file:// URIs; None for hub ids. Raises for missing local paths."""
    if path_or_uri.startswith("file://"):
        parsed = urlparse(path_or_uri)
        path = Path(unquote(parsed.netloc + parsed.path))
        if not path.exists():
            raise FileNotFoundError(f"{path_or_uri!r}: local path {path} does not exist")
        return path
    path = Path(path_or_uri).expanduser()
    if path.exists():
        return path
    if _HUB_ID.match(path_or_uri) and not path_or_uri.startswith((".", "/", "~")):
        return None
    raise FileNotFoundError(
        f"{path_or_uri!r} is neither an existing local directory, a file:// URI, {BUILTIN_TINY!r}, nor a hub id"
    )


def _read_config_json(directory: Path) -> dict[str, Any]:
    if not directory.is_dir():
        raise ValueError(f"{directory}: expected a checkpoint directory, got a file")
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{directory}: no config.json (not a Hugging Face checkpoint directory)")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_file}: invalid JSON at line {err.lineno}: {err.msg}") from err
    if not isinstance(config, dict):
        raise ValueError(f"{config_file}: expected a JSON object")
    return config


def load_model(
    path_or_uri: str,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    trust_remote_code: bool = False,
    quantization_config: Any | None = None,
) -> PreTrainedModel:
    """Load a masked diffusion LM in eval mode.

    Args:
        path_or_uri: "builtin:tiny", a local checkpoint directory, a "file://" URI, or a hub id.
        dtype: torch dtype (or its name, or "auto") for the weights; None keeps float32 / the loader default.
        device: where to move the model; None leaves it on CPU.
        trust_remote_code: allow executing a checkpoint's own modelling code for model types other than "llada"
            ("llada" always uses the native implementation, whatever the config's auto_map says).
        quantization_config: e.g. a ``transformers.BitsAndBytesConfig`` (4-bit NF4 base for QLoRA): weights are
            quantized while loading, directly onto ``device`` (default "cuda"); checkpoints only, not builtin:tiny.
    Returns:
        The model (`LLaDAModelLM` for LLaDA checkpoints), `.eval()`.
    Raises:
        FileNotFoundError: missing path or config.json; ValueError: bad dtype, bad config, or a non-LLaDA model_type
            without trust_remote_code=True.
    """
    torch_dtype = _resolve_dtype(dtype)
    if quantization_config is not None and path_or_uri == BUILTIN_TINY:
        raise ValueError(f"{BUILTIN_TINY!r} is built in memory and cannot be loaded quantized")
    if path_or_uri == BUILTIN_TINY:
        model: PreTrainedModel = init_tiny_model()
        if isinstance(torch_dtype, torch.dtype):
            model = model.to(torch_dtype)
    else:
        local = _local_path(path_or_uri)
        source = str(local) if local is not None else path_or_uri
        if local is not None:
            model_type = _read_config_json(local).get("model_type")
        else:  # hub id: let transformers fetch the config (network)
            model_type = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code).model_type
        kwargs: dict[str, Any] = {} if torch_dtype is None else {"dtype": torch_dtype}
        if quantization_config is not None:  # quantized on the way to the device; such a model cannot be moved
            kwargs.update(quantization_config=quantization_config, device_map={"": device or "cuda"})
            device = None
        if model_type == LLaDAConfig.model_type:
            model = LLaDAModelLM.from_pretrained(source, **kwargs)
        elif trust_remote_code:
            model = AutoModel.from_pretrained(source, trust_remote_code=True, **kwargs)
        else:
            raise ValueError(
                f"{path_or_uri!r}: model_type={model_type!r} is not 'llada' and has no native implementation here; "
                "pass trust_remote_code=True to load it with its own code through transformers.AutoModel"
            )
    if device is not None:
        model = model.to(device)
    return model.eval()


def load_tokenizer(path: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """Load the tokenizer for `path` ("builtin:tiny", a local directory / file:// URI, or a hub id).

    If the tokenizer defines no mask token, the model's `mask_token_id` from config.json (local directories) is
    used to set it, so `tokenizer.mask_token_id` is available for LLaDA checkpoints.
    """
    if path == BUILTIN_TINY:
        return build_tiny_tokenizer()
    local = _local_path(path)
    source = str(local) if local is not None else path
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    if tokenizer.mask_token is None and local is not None and (local / "config.json").is_file():
        mask_id = _read_config_json(local).get("mask_token_id")
        if isinstance(mask_id, int) and 0 <= mask_id < len(tokenizer):
            tokenizer.mask_token = tokenizer.convert_ids_to_tokens(mask_id)
    return tokenizer
