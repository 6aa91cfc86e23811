"""Helpers shared by the fast sampler and the reference sampler: argument checks and the random draws.

Both samplers MUST draw their randomness through :func:`draw_gumbel` and :func:`draw_uniform` in the same
order (see the docstring of :mod:`spg_lib.decoding.sampler`), which is what makes them give identical
tokens for a fixed generator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import Any, Literal, get_args

import torch

Remasking = Literal["low_confidence", "random"]
REMASKING_MODES: tuple[str, ...] = get_args(Remasking)
#: dtypes of the Gumbel noise ("model": the model's parameter dtype, as the official rollout sampler)
GumbelDtype = Literal["float64", "float32", "bfloat16", "model"]
GUMBEL_DTYPES: tuple[str, ...] = get_args(GumbelDtype)


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
    redecode_earlier_masks: Any = False,
    gumbel_dtype: Any = "float64",
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
    if not isinstance(redecode_earlier_masks, bool):
        raise ValueError(f"redecode_earlier_masks must be True or False, got {redecode_earlier_masks!r}")
    if gumbel_dtype not in GUMBEL_DTYPES:
        raise ValueError(f"gumbel_dtype must be one of {list(GUMBEL_DTYPES)}, got {gumbel_dtype!r}")
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
    return _probe(model).logits_range


def supports_hidden_head(model: Any) -> bool:
    """True when the model exposes ``hidden_states(..., output_range=(s, e))`` and ``logits_from_hidden(h, out=)``
    (the native LLaDAModelLM): the sampler then runs the output head only on the positions it needs."""
    return _probe(model).hidden_head


def _probe(model: Any):
    # the one model probe (spg_lib.models.capabilities), imported on first use: importing spg_lib.models loads
    # transformers, which the decoding package itself does not need
    from spg_lib.models.capabilities import probe

    return probe(model)


@contextlib.contextmanager
def eval_mode(model: Any, keep_mode: bool = False) -> Iterator[None]:
    """Run the body with ``model.eval()`` (unless ``keep_mode``: the caller's train/eval mode, e.g. dropout on as in
    the official trainers' rollouts) and no autograd; restore every submodule's train/eval flag after."""
    modules = list(model.modules()) if isinstance(model, torch.nn.Module) else []
    modes = [m.training for m in modules]
    if modules and not keep_mode:
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


def _draw(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    # draw on the generator's own device (a CPU generator cannot fill a CUDA tensor), then move
    draw_device = generator.device if generator is not None else device
    u = torch.rand(shape, generator=generator, dtype=dtype, device=draw_device)
    return u.to(device)


def resolve_gumbel_dtype(model: Any, name: str) -> torch.dtype:
    """The dtype of the Gumbel noise: ``name`` in :data:`GUMBEL_DTYPES`; "model" = the model's parameter dtype."""
    if name != "model":
        return getattr(torch, name)
    dtype = getattr(model, "dtype", None)
    if isinstance(dtype, torch.dtype):
        return dtype
    params = model.parameters() if isinstance(model, torch.nn.Module) else iter(())
    return next((p.dtype for p in params if p.dtype.is_floating_point), torch.float32)


def draw_gumbel(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Noise for Gumbel-max sampling from one ``torch.rand(shape, dtype=dtype)`` call, u ~ U[0, 1).

    float64 (default): Gumbel(0, 1) noise g = -log(-log u), used as argmax(logits / τ + g).
    Any other dtype: the official form's divisor e = -log u (Exp(1) noise) in that dtype, used as
    argmax(exp(logits) / e^τ) computed in that dtype (:func:`gumbel_max`). Both are the same sampler in exact
    arithmetic; they differ only by rounding. Which precision the official code uses: docs/decoding.md,
    section "Gumbel noise precision" (LLaDA's own sampler fp64, SPG's rollout sampler the model dtype,
    SPG's evaluation sampler fp32).
    """
    u = _draw(shape, generator, device, dtype)
    return -torch.log(-torch.log(u)) if dtype == torch.float64 else -torch.log(u)


def gumbel_max(logits: torch.Tensor, noise: torch.Tensor, temperature: float) -> torch.Tensor:
    """Proposals argmax_v of logits [N, V] perturbed by ``noise`` [N, V] from :func:`draw_gumbel` -> LongTensor [N].

    float64 noise: argmax(logits / τ + g) in fp64. Other dtypes: argmax(exp(logits) / e^τ) in the noise dtype,
    the official code's arithmetic (overflow of exp to inf and ties included; argmax takes the first maximum).
    """
    if noise.dtype == torch.float64:
        return (logits.double() / temperature + noise).argmax(dim=-1)
    return (logits.to(noise.dtype).exp() / noise.pow(temperature)).argmax(dim=-1)


def draw_uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """U[0, 1) float64 confidences for ``remasking="random"`` (one ``torch.rand`` call of ``shape``)."""
    return _draw(shape, generator, device)
