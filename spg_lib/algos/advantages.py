"""Group advantages, registered by name.

References: SPG / d1 (arXiv:2510.09541, Sec. 3.1, A = R − group mean, no std: ``group_center``);
ESPO (arXiv:2512.03759, ``leave_one_out``: A_j = R_j − mean_{i≠j} R_i); GRPO (DeepSeekMath,
``group_zscore``: (R − mean)/(std + ε)).

Dimension letters: N completions = G groups × g completions per group, stored contiguously
(group j owns rows j·g … j·g + g − 1, as the repeat sampler lays them out).

Test: ``pytest tests/algos/test_objectives.py -k advantage``.
"""

from __future__ import annotations

import torch

from spg_lib.algos.registry import ADVANTAGES


def _grouped(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [N], got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"group_size ({group_size}) must be >= 1 and divide the number of rewards "
                         f"({rewards.numel()})")
    return rewards.float().reshape(-1, group_size)  # [G, g]


@ADVANTAGES.register("group_center")
def group_center(rewards: torch.Tensor, *, group_size: int) -> torch.Tensor:
    """A = R − mean_group(R) (SPG/D1/WD1). rewards [N] -> [N]."""
    r = _grouped(rewards, group_size)  # [G, g]
    return (r - r.mean(-1, keepdim=True)).reshape(-1)


@ADVANTAGES.register("leave_one_out")
def leave_one_out(rewards: torch.Tensor, *, group_size: int) -> torch.Tensor:
    """A_j = R_j − mean_{i≠j} R_i = g/(g−1)·(R_j − mean) (ESPO, RLOO). rewards [N] -> [N]; needs g ≥ 2."""
    if group_size < 2:
        raise ValueError(f"leave_one_out needs group_size >= 2, got {group_size}")
    r = _grouped(rewards, group_size)  # [G, g]
    others = (r.sum(-1, keepdim=True) - r) / (group_size - 1)  # [G, g]
    return (r - others).reshape(-1)


@ADVANTAGES.register("group_zscore")
def group_zscore(rewards: torch.Tensor, *, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """A = (R − mean)/(std + eps), unbiased std as in TRL's GRPO (std 0 for g = 1). rewards [N] -> [N]."""
    r = _grouped(rewards, group_size)  # [G, g]
    std = r.std(-1, keepdim=True) if group_size > 1 else torch.zeros_like(r[:, :1])
    return ((r - r.mean(-1, keepdim=True)) / (std + eps)).reshape(-1)


def compute_advantages(name: str, rewards: torch.Tensor, *, group_size: int) -> torch.Tensor:
    """Dispatch to the advantage registered under ``name``. rewards [N] -> [N]."""
    return ADVANTAGES.get(name)(rewards, group_size=group_size)
