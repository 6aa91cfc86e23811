"""Helpers shared by the fast sampler and the reference sampler: argument checks and the random draws.

Both samplers MUST draw their randomness through :func:`draw_gumbel` and :func:`draw_uniform` in the same
order (see the docstring of :mod:`spg_lib.decoding.sampler`), which is what makes them give identical
tokens for a fixed generator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import sys
from collections.abc import Iterator
from typing import Any

import torch

REMASKING_MODES: tuple[str, ...] = ("low_confidence", "random")


@dataclasses.dataclass(frozen=True)
class DecodePlan:
    """Validated sizes of one generate call."""

    batch_size: int
    prompt_length: int
    gen_length: int
    block_length: int
    num_blocks: int
    steps_per_block: int


def _as_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _as_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def check_generate_args(
    model: Any,
    prompt_ids: Any,
    attention_mask: Any,
    *,
    gen_length: Any,
    block_length: Any,
    steps: Any,
    mask_id: Any,
    temperature: Any,
    remasking: Any,
    cfg_scale: Any,
    generator: Any,
) -> DecodePlan:
    """Validate the arguments of ``generate``/``generate_reference``; every error names the argument."""
    if not isinstance(prompt_ids, torch.Tensor) or prompt_ids.dim() != 2:
        raise ValueError("prompt_ids must be a 2-D LongTensor [B, P]")
    if prompt_ids.dtype.is_floating_point or prompt_ids.dtype.is_complex or prompt_ids.dtype == torch.bool:
        raise ValueError(f"prompt_ids must be an integer tensor, got dtype {prompt_ids.dtype}")
    batch_size, prompt_length = prompt_ids.shape
    if batch_size == 0:
        raise ValueError("prompt_ids: empty batch (B = 0)")
    if attention_mask is not None:
        if not isinstance(attention_mask, torch.Tensor) or tuple(attention_mask.shape) != tuple(prompt_ids.shape):
            raise ValueError(
                f"attention_mask must be a tensor of the shape of prompt_ids {tuple(prompt_ids.shape)}, got "
                f"{tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask)}"
            )
        if bool(((attention_mask != 0) & (attention_mask != 1)).any()):
            raise ValueError("attention_mask must contain only 0 (padding) and 1 (real token)")
    gen_length = _as_int(gen_length, "gen_length", 1)
    block_length = _as_int(block_length, "block_length", 1)
    steps = _as_int(steps, "steps", 1)
    if gen_length % block_length:
        raise ValueError(f"gen_length ({gen_length}) must be divisible by block_length ({block_length})")
    num_blocks = gen_length // block_length
    if steps < num_blocks:
        raise ValueError(
            f"steps ({steps}) must be >= the number of blocks gen_length/block_length = {num_blocks} "
            "(every block needs at least one step)"
        )
    mask_id = _as_int(mask_id, "mask_id", 0)
    config = getattr(model, "config", None)
    vocab_size = getattr(config, "vocab_size", None)
    if isinstance(vocab_size, int) and mask_id >= vocab_size:
        raise ValueError(f"mask_id ({mask_id}) must be < the model's vocab_size ({vocab_size})")
    max_len = getattr(config, "max_sequence_length", None)
    if isinstance(max_len, int) and prompt_length + gen_length > max_len:
        raise ValueError(
            f"prompt_ids length {prompt_length} + gen_length {gen_length} = {prompt_length + gen_length} exceeds "
            f"the model's max_sequence_length {max_len}"
        )
    _as_float(temperature, "temperature")
    if remasking not in REMASKING_MODES:
        raise ValueError(f"remasking must be one of {list(REMASKING_MODES)}, got {remasking!r}")
    _as_float(cfg_scale, "cfg_scale")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return DecodePlan(
        batch_size=batch_size,
        prompt_length=prompt_length,
        gen_length=gen_length,
        block_length=block_length,
        num_blocks=num_blocks,
        steps_per_block=steps // num_blocks,
    )


def supports_logits_range(model: Any) -> bool:
    """True when ``model.forward`` accepts ``logits_range=(start, end)`` (output head only there)."""
    # a model can only be an LLaDAModelLM if its module is already imported: no heavy import here
    modeling = sys.modules.get("spg_lib.models.modeling_llada")
    if modeling is not None and isinstance(model, modeling.LLaDAModelLM):
        return True
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return False
    return "logits_range" in params


def supports_hidden_head(model: Any) -> bool:
    """True when the model exposes ``hidden_states(..., output_range=(s, e))`` and ``logits_from_hidden(h)``
    (the native LLaDAModelLM): the sampler then runs the output head only on the positions it needs."""
    if not callable(getattr(model, "logits_from_hidden", None)) or not callable(getattr(model, "hidden_states", None)):
        return False
    try:
        hidden_params = inspect.signature(model.hidden_states).parameters
        head_params = inspect.signature(model.logits_from_hidden).parameters
    except (TypeError, ValueError):
        return False
    return "output_range" in hidden_params and "out" in head_params


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Run the body with ``model.eval()`` and no autograd; restore every submodule's train/eval flag after."""
    modules = list(model.modules()) if isinstance(model, torch.nn.Module) else []
    modes = [m.training for m in modules]
    if modules:
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, mode in zip(modules, modes):
            module.training = mode


def at_least_fp32(logits: torch.Tensor) -> torch.Tensor:
    """Promote bf16/fp16 logits to fp32 (softmax and CFG are computed in at least fp32); keep fp64."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def _draw(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    # draw on the generator's own device (a CPU generator cannot fill a CUDA tensor), then move
    draw_device = generator.device if generator is not None else device
    u = torch.rand(shape, generator=generator, dtype=torch.float64, device=draw_device)
    return u.to(device)


def draw_gumbel(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Gumbel(0, 1) noise g = -log(-log u), u ~ U[0, 1) in float64 (one ``torch.rand`` call of ``shape``).

    float64 keeps the Gumbel tail faithful over a 126k vocabulary (the official code also samples in fp64).
    """
    u = _draw(shape, generator, device)
    return -torch.log(-torch.log(u))


def draw_uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """U[0, 1) float64 confidences for ``remasking="random"`` (one ``torch.rand`` call of ``shape``)."""
    return _draw(shape, generator, device)
