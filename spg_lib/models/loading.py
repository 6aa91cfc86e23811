"""`load_model` / `load_tokenizer`: one entry point for the tiny built-in model, local checkpoints and hub ids.

Accepted sources:
  - "builtin:tiny": a freshly initialised tiny LLaDA (seed 0) / the tiny character tokenizer;
  - a local directory or file URI (file:///abs, file://localhost/abs; see `spg_lib.io.parse_uri`): native
    `LLaDAModelLM` when config.json has model_type "llada" (the official LLaDA layout: config.json +
    model.safetensors, or shards with model.safetensors.index.json); any other model_type only with
    trust_remote_code=True, through `AutoModel`;
  - "hf://org/name[@revision]", or a missing local path that looks like a hub id ("org/name"), is handed to
    `from_pretrained` (network; not tested); s3:// checkpoints are fetched first (`spg fetch-checkpoint`).

Test: `python -m pytest -q tests/models/test_model_loading.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from spg_lib.io import BUILTIN_TINY, MissingInputError, URIError, is_hub_id, parse_uri, read_json
from spg_lib.models.configuration_llada import LLaDAConfig
from spg_lib.models.modeling_llada import LLaDAModelLM
from spg_lib.models.tiny import build_tiny_tokenizer, init_tiny_model

__all__ = ["BUILTIN_TINY", "load_model", "load_tokenizer", "save_model_dir"]


def _resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | str | None:
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"dtype={dtype!r} is not a torch dtype name (e.g. 'bfloat16', 'float32') or 'auto'")
    return resolved


def _source(path_or_uri: str) -> tuple[Path | None, str, dict[str, Any]]:
    """(local directory or None, what to hand `from_pretrained`, its extra kwargs) for a checkpoint reference.

    Raises:
        FileNotFoundError (`MissingInputError`): a local path or file URI that does not exist; `URIError`: an s3://
        URI (fetch it first with `spg fetch-checkpoint`) or a malformed one.
    """
    uri = parse_uri(path_or_uri)
    if uri.scheme == "hf":
        return None, uri.repo_id, {} if uri.revision is None else {"revision": uri.revision}
    if uri.scheme == "s3":
        raise URIError(f"{path_or_uri!r}: load_model reads local checkpoints and hub ids; fetch an s3:// "
                       "checkpoint first (spg fetch-checkpoint --uri ... --out DIR)")
    assert uri.path is not None  # file (builtin is handled by the callers)
    if uri.path.exists():
        return uri.path, str(uri.path), {}
    if uri.is_plain_path and path_or_uri.count("/") == 1 and is_hub_id(path_or_uri):
        return None, path_or_uri, {}
    raise MissingInputError(
        f"{path_or_uri!r}: local path {uri.path} does not exist (and it is neither a file:// URI of an existing "
        f"directory, {BUILTIN_TINY!r}, nor a hub id)"
    )


def _read_config_json(directory: Path) -> dict[str, Any]:
    if not directory.is_dir():
        raise ValueError(f"{directory}: expected a checkpoint directory, got a file")
    return read_json(directory / "config.json", what="checkpoint config",
                     hint="not a Hugging Face checkpoint directory")


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
        local, source, kwargs = _source(path_or_uri)
        if local is not None:
            model_type = _read_config_json(local).get("model_type")
        else:  # hub id: let transformers fetch the config (network)
            model_type = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **kwargs).model_type
        if torch_dtype is not None:
            kwargs["dtype"] = torch_dtype
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
    local, source, kwargs = _source(path)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, **kwargs)
    if tokenizer.mask_token is None and local is not None and (local / "config.json").is_file():
        mask_id = _read_config_json(local).get("mask_token_id")
        if isinstance(mask_id, int) and 0 <= mask_id < len(tokenizer):
            tokenizer.mask_token = tokenizer.convert_ids_to_tokens(mask_id)
    return tokenizer


def save_model_dir(path_or_uri: str, directory: str | Path) -> None:
    """Write the model and tokenizer of `path_or_uri` (e.g. builtin:tiny) into `directory` in the Hugging Face
    checkpoint layout (config.json, model.safetensors, tokenizer files)."""
    load_model(path_or_uri).save_pretrained(directory)
    load_tokenizer(path_or_uri).save_pretrained(directory)
