"""Policy objectives registered by name: ``spg``, ``d1``, ``wd1``, ``unigrpo``, ``espo``.

Each is a pure function (tensors..., *, scalars...) -> (loss, metrics) with namespaced metric keys; no
trainer state. Implements docs/algorithms.md#spg-loss (SPG), docs/algorithms.md#d1-diffu-grpo (D1 / diffu-GRPO),
docs/algorithms.md#wd1 (WD1),
docs/algorithms.md#unigrpo (UniGRPO) and docs/algorithms.md#espo (ESPO).

References: SPG (arXiv:2510.09541, Algorithm 1, Eq. 8); d1 (arXiv:2504.12216); wd1 (arXiv:2507.08838);
MMaDA / UniGRPO (arXiv:2505.15809); ESPO (arXiv:2512.03759). KL estimators: k2/k3 of Schulman, "Approximating
KL divergence" (2020).

Dimension letters: B sequences in the micro-batch, L completion length.

Test: ``pytest tests/algos/test_objectives.py``.
"""

from __future__ import annotations

import typing
from typing import Literal

import torch

from spg_lib.algos.registry import NEG_ESTIMATORS, OBJECTIVES

LossNorm = Literal["completion_tokens", "max_length", "sequences"]
LOSS_NORMS: tuple[str, ...] = typing.get_args(LossNorm)


def _metric(x: torch.Tensor) -> float:
    return float(x.detach().float().mean()) if x.numel() else 0.0


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(π_θ ‖ π_ref): exp(ref − logp) − (ref − logp) − 1 (≥ 0). Same shape as input."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def _normaliser(lengths: torch.Tensor, gen_length: int, loss_norm: str) -> torch.Tensor:
    if loss_norm == "completion_tokens":
        return lengths.sum().clamp(min=1.0)
    if loss_norm == "max_length":
        return torch.tensor(float(lengths.numel() * gen_length), device=lengths.device)
    if loss_norm == "sequences":
        return torch.tensor(float(max(lengths.numel(), 1)), device=lengths.device)
    raise ValueError(f"unknown loss_norm {loss_norm!r}; valid: {list(LOSS_NORMS)}")


@OBJECTIVES.register("spg")
def spg_loss(
    elbo: torch.Tensor, eubo: torch.Tensor, advantages: torch.Tensor, completion_mask: torch.Tensor, *,
    neg_estimator: str = "mix", mix_weight: float = 0.5, loss_norm: str = "completion_tokens",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sandwiched policy gradient loss (docs/algorithms.md#spg-loss).

    ℓ̂_b = ELBO_b if A_b > 0 else N_b (N from ``neg_estimator`` ∈ {eubo, mix, elbo, zero});
    loss = −Σ_b A_b·ℓ̂_b·L_c,b / Z with Z = Σ_b L_c,b (``completion_tokens``, official), B·L (``max_length``:
    the paper's (1/g)Σ A·bound up to the constant 1/L, independent of the micro-batch's lengths) or B
    (``sequences``: exactly the paper's (1/g) Σ_j A_j·bound_j).

    Args:
        elbo: FloatTensor [B], per-token ELBO (``elbo_estimate``); eubo: FloatTensor [B] (``eubo_estimate``,
            may be zeros when unused); advantages: FloatTensor [B]; completion_mask: BoolTensor [B, L].
    Returns:
        (scalar loss, metrics with ``spg/`` keys).
    """
    neg = NEG_ESTIMATORS.get(neg_estimator)(elbo, eubo, omega=mix_weight)  # [B]
    pos = advantages > 0  # strict split (docs/faithful-vs-fixed.md#official-quirks Q6)
    ell = torch.where(pos, elbo, neg)  # [B]
    lengths = completion_mask.float().sum(-1)  # [B]
    loss = -(advantages.to(ell.dtype) * ell * lengths).sum() / _normaliser(lengths, completion_mask.shape[-1],
                                                                          loss_norm)
    metrics = {
        "spg/loss": float(loss.detach()),
        "spg/elbo": _metric(elbo),
        "spg/eubo": _metric(eubo),
        "spg/neg_estimate": _metric(neg[~pos]),
        "spg/pos_fraction": _metric(pos.float()),
        "spg/completion_length": _metric(lengths),
    }
    return loss, metrics


def _clipped_surrogate(ratio: torch.Tensor, adv: torch.Tensor, low: float, high: float) -> tuple[torch.Tensor,
                                                                                                 torch.Tensor]:
    """−min(r·A, clip(r, 1−low, 1+high)·A) and the clipped indicator."""
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - low, 1.0 + high) * adv
    return -torch.minimum(unclipped, clipped), (clipped < unclipped)


@OBJECTIVES.register("d1")
def d1_loss(
    logp: torch.Tensor, advantages: torch.Tensor, completion_mask: torch.Tensor, *,
    old_logp: torch.Tensor | None = None, ref_logp: torch.Tensor | None = None, clip_eps: float = 0.5,
    kl_beta: float = 0.04,
) -> tuple[torch.Tensor, dict[str, float]]:
    """diffu-GRPO (docs/algorithms.md#d1-diffu-grpo): token ratio r = exp(ℓ − ℓ_old), clipped surrogate, k3 KL, token
    mean over the batch.

    Args:
        logp: FloatTensor [B, L], one-step per-token log-probs; advantages: FloatTensor [B];
        completion_mask: BoolTensor [B, L]; old_logp: [B, L] (None → detached ``logp``, i.e. μ = 1);
        ref_logp: [B, L] (required when kl_beta ≠ 0).
    Returns:
        (loss, metrics with ``d1/`` keys).
    """
    C = completion_mask.float()  # [B, L]
    old = logp.detach() if old_logp is None else old_logp
    ratio = torch.exp(logp - old)  # [B, L]
    per_token, clipped = _clipped_surrogate(ratio, advantages.unsqueeze(-1), clip_eps, clip_eps)  # [B, L]
    kl = torch.zeros_like(logp)
    if kl_beta != 0.0:
        if ref_logp is None:
            raise ValueError("d1_loss: ref_logp is required when kl_beta != 0")
        kl = k3_kl(logp, ref_logp)
        per_token = per_token + kl_beta * kl
    denom = C.sum().clamp(min=1.0)
    loss = (per_token * C).sum() / denom
    metrics = {
        "d1/loss": float(loss.detach()),
        "d1/kl": float((kl.detach() * C).sum() / denom),
        "d1/clip_fraction": float((clipped.float() * C).sum() / denom),
        "d1/ratio": float((ratio.detach() * C).sum() / denom),
    }
    return loss, metrics


@OBJECTIVES.register("wd1")
def wd1_loss(
    logp: torch.Tensor, advantages: torch.Tensor, completion_mask: torch.Tensor, *, negative: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """WD1 weighted likelihood (docs/algorithms.md#wd1): −Σ_b (softmax_b(A) − softmax_b(−A))·S_b, S_b = Σ_k C·ℓ (no
    length norm).

    The softmax runs along the batch dimension (one group per micro-batch in the official setting).
    ``negative=False`` is ``wll_d1_pos_only`` (drops the softmax(−A) term).

    Args:
        logp: FloatTensor [B, L]; advantages: FloatTensor [B]; completion_mask: BoolTensor [B, L].
    Returns:
        (loss, metrics with ``wd1/`` keys).
    """
    S = torch.where(completion_mask.bool(), logp, 0.0).sum(-1)  # [B]
    w_pos = torch.softmax(advantages.float(), dim=0)  # [B]
    w_neg = torch.softmax(-advantages.float(), dim=0) if negative else torch.zeros_like(w_pos)
    loss = -((w_pos - w_neg) * S).sum()
    metrics = {"wd1/loss": float(loss.detach()), "wd1/seq_logp": _metric(S),
               "wd1/max_weight": float(w_pos.detach().max())}
    return loss, metrics


@OBJECTIVES.register("unigrpo")
def unigrpo_loss(
    logp: torch.Tensor, advantages: torch.Tensor, masked: torch.Tensor, *, old_logp: torch.Tensor | None = None,
    clip_eps: float = 0.2, kl_beta: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """UniGRPO (docs/algorithms.md#unigrpo, dLLM-RL reference form): per masked token r = exp(ℓ − ℓ_old); per-sequence
    surrogate =
    mean over masked k of min(r·A, clip(r)·A); loss = −mean_b; KL = β·(1/B)·Σ_b Σ_{masked k} k3(ℓ, ℓ_old)
    (against the rollout-time log-probs, as in that framework).

    Args:
        logp: FloatTensor [B, L] under structured noising; advantages: FloatTensor [B];
        masked: BoolTensor [B, L] (masked completion tokens); old_logp: [B, L] (None → detached logp).
    Returns:
        (loss, metrics with ``unigrpo/`` keys).
    """
    M = masked.bool()
    Mf = M.float()
    old = logp.detach() if old_logp is None else old_logp
    ratio = torch.exp(torch.where(M, logp - old, 0.0))  # [B, L]
    per_token, clipped = _clipped_surrogate(ratio, advantages.unsqueeze(-1), clip_eps, clip_eps)  # [B, L]
    count = Mf.sum(-1).clamp(min=1.0)  # [B]
    per_seq = (per_token * Mf).sum(-1) / count  # [B]
    loss = per_seq.mean()
    kl = torch.where(M, k3_kl(logp, old), 0.0).sum(-1)  # [B]
    if kl_beta != 0.0:
        loss = loss + kl_beta * kl.mean()
    metrics = {"unigrpo/loss": float(loss.detach()), "unigrpo/kl": _metric(kl),
               "unigrpo/clip_fraction": float((clipped.float() * Mf).sum() / Mf.sum().clamp(min=1.0)),
               "unigrpo/masked_tokens": _metric(Mf.sum(-1))}
    return loss, metrics


@OBJECTIVES.register("espo")
def espo_loss(
    elbo: torch.Tensor, advantages: torch.Tensor, *, old_elbo: torch.Tensor | None = None,
    ref_elbo: torch.Tensor | None = None, gen_length: int, clip_eps: float = 0.2,
    clip_eps_high: float | None = None, kl_beta: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """ESPO (docs/algorithms.md#espo): ρ = exp((E − E_old)/L); loss = −(1/B)Σ min(ρA, clip(ρ, 1−ε_low, 1+ε_high)A)
    + β/(B·L)·Σ ½(E − E_ref)² (k2 on the sequence ELBO).

    Args:
        elbo: FloatTensor [B] (``espo_coupled_elbo``); advantages: FloatTensor [B] (leave-one-out);
        old_elbo: [B] (None → detached elbo); ref_elbo: [B] (required when kl_beta ≠ 0); gen_length: L.
    Returns:
        (loss, metrics with ``espo/`` keys).
    """
    if gen_length < 1:
        raise ValueError(f"gen_length must be >= 1, got {gen_length}")
    high = clip_eps if clip_eps_high is None else clip_eps_high
    old = elbo.detach() if old_elbo is None else old_elbo
    ratio = torch.exp((elbo - old) / gen_length)  # [B]
    per_seq, clipped = _clipped_surrogate(ratio, advantages.to(ratio.dtype), clip_eps, high)  # [B]
    B = elbo.shape[0]
    loss = per_seq.mean()
    kl = torch.zeros((), device=elbo.device)
    if kl_beta != 0.0:
        if ref_elbo is None:
            raise ValueError("espo_loss: ref_elbo is required when kl_beta != 0")
        kl = (0.5 * (elbo - ref_elbo) ** 2).sum() / (B * gen_length)
        loss = loss + kl_beta * kl
    metrics = {"espo/loss": float(loss.detach()), "espo/kl": float(kl.detach()),
               "espo/ratio": _metric(ratio), "espo/clip_fraction": _metric(clipped.float())}
    return loss, metrics
