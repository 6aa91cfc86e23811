"""Transfer schedule of the LLaDA block sampler: how many masked tokens to reveal at each step.

Reference: LLaDA (arXiv:2502.09992) `get_num_transfer_tokens`, as used by SPG (arXiv:2510.09541) and d1;
docs/decoding.md#algorithm.

Dimensions: B = batch rows, S = steps (per block).
"""

from __future__ import annotations

import torch


def num_transfer_tokens(mask_counts: torch.Tensor, steps: int) -> torch.Tensor:
    """Split each row's mask count M over `steps` steps as evenly as possible, larger counts first.

    Step i reveals ``M // S + 1`` tokens if ``i < M % S`` and ``M // S`` otherwise, so each row sums to M
    and any two steps differ by at most one.

    Args:
        mask_counts: LongTensor [B], number of masked tokens per row (>= 0).
        steps: S >= 1, number of denoising steps.

    Returns:
        LongTensor [B, S] on the device of ``mask_counts``.

    Raises:
        ValueError: ``steps`` < 1, ``mask_counts`` not a 1-D integer tensor, or a negative count.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not isinstance(mask_counts, torch.Tensor) or mask_counts.dim() != 1:
        raise ValueError("mask_counts must be a 1-D tensor [B]")
    if mask_counts.dtype.is_floating_point or mask_counts.dtype.is_complex or mask_counts.dtype == torch.bool:
        raise ValueError(f"mask_counts must be an integer tensor, got dtype {mask_counts.dtype}")
    counts = mask_counts.long()  # [B]
    if bool((counts < 0).any()):
        raise ValueError("mask_counts must be >= 0")
    base = counts // steps  # [B]
    remainder = counts % steps  # [B]
    step_index = torch.arange(steps, device=counts.device)  # [S]
    return base[:, None] + (step_index[None, :] < remainder[:, None]).long()  # [B, S]
