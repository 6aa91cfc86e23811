"""Completion mask: which generated tokens belong to the answer (up to and including the first EOS).

docs/decoding.md#completion-mask (identical in the SPG, d1, wd1 and ESPO code):
eos_pos = index of the FIRST EOS in the completion (L if none); mask[k] = 1 for k <= eos_pos.

Dimensions: B = batch rows, L = completion (generation) length.
"""

from __future__ import annotations

from collections.abc import Collection

import torch


def _eos_tensor(eos_id: int | Collection[int], device: torch.device) -> torch.Tensor:
    if isinstance(eos_id, bool):
        raise ValueError(f"eos_id must be an int or a collection of ints, got {eos_id!r}")
    if isinstance(eos_id, int):
        ids = [eos_id]
    elif isinstance(eos_id, torch.Tensor):
        ids = [int(v) for v in eos_id.flatten().tolist()]
    elif isinstance(eos_id, Collection) and not isinstance(eos_id, str | bytes):
        ids = list(eos_id)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ids):
            raise ValueError(f"eos_id must contain only ints, got {eos_id!r}")
    else:
        raise ValueError(f"eos_id must be an int or a collection of ints, got {eos_id!r}")
    if not ids:
        raise ValueError("eos_id: empty collection of EOS ids")
    return torch.tensor(ids, dtype=torch.long, device=device)


def completion_mask(completion_ids: torch.Tensor, eos_id: int | Collection[int]) -> torch.Tensor:
    """Mask of the completion tokens up to and including the first EOS (all ones when there is none).

    Args:
        completion_ids: LongTensor [B, L], the generated tokens (the last L tokens of the canvas).
        eos_id: one EOS token id, or a collection of ids that all count as EOS (e.g. eot and endoftext).

    Returns:
        BoolTensor [B, L].

    Raises:
        ValueError: ``completion_ids`` not a 2-D integer tensor, or an invalid ``eos_id``.
    """
    if not isinstance(completion_ids, torch.Tensor) or completion_ids.dim() != 2:
        raise ValueError("completion_ids must be a 2-D tensor [B, L]")
    if completion_ids.dtype.is_floating_point or completion_ids.dtype == torch.bool:
        raise ValueError(f"completion_ids must be an integer tensor, got dtype {completion_ids.dtype}")
    L = completion_ids.shape[1]
    eos = _eos_tensor(eos_id, completion_ids.device)  # [E]
    is_eos = torch.isin(completion_ids, eos)  # [B, L]
    # argmax of a 0/1 row gives the FIRST maximum; rows without EOS get eos_pos = L
    first = is_eos.int().argmax(dim=1)  # [B]
    eos_pos = torch.where(is_eos.any(dim=1), first, torch.full_like(first, L))  # [B]
    positions = torch.arange(L, device=completion_ids.device)  # [L]
    return positions[None, :] <= eos_pos[:, None]  # [B, L]


def completion_lengths(mask: torch.Tensor) -> torch.Tensor:
    """Completion length L_c per row = number of ones in the completion mask.

    Args:
        mask: BoolTensor (or 0/1 tensor) [B, L] from :func:`completion_mask`.

    Returns:
        LongTensor [B].
    """
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
        raise ValueError("mask must be a 2-D tensor [B, L]")
    return mask.long().sum(dim=1)  # [B]
