"""Target log-probabilities and the likelihood estimators built on them (pure tensor functions: a model's
forward pass is the caller's, see ``spg_lib.training.objective.completion_token_logprobs``).

Implements docs/algorithms.md#likelihood-estimators (one-pass log-probs of the clean completion tokens),
docs/algorithms.md#spg-elbo (SPG ELBO),
docs/algorithms.md#official-eubo-estimator (official EUBO with the drop-zero rule, plus the sum-form variant), Eq. 8
(Mixture),
docs/algorithms.md#d1-one-step-estimator (D1 one-step per-token log-probs), docs/algorithms.md#unigrpo (UniGRPO
masked-token mean) and docs/algorithms.md#espo (ESPO coupled ELBO).

References: SPG (arXiv:2510.09541, Eq. 5–8, Theorem 1, Corollary 1); d1 (arXiv:2504.12216); MMaDA
(arXiv:2505.15809); ESPO (arXiv:2512.03759).

Dimension letters: B sequences, m MC samples, N = B·m rows, L completion length, T = P + L,
D hidden size, V vocabulary.

Numerics (docs/faithful-vs-fixed.md#official-quirks Q19): log-probs are computed in float32 as ``logit[target] −
logsumexp(logits)`` one chunk
of positions at a time, never materialising a [N, L, V] softmax; p = exp(logp) is never formed separately —
the EUBO is evaluated in log space (logsumexp of β·logp − log t̂), so p^β cannot underflow to 0 for p → 0.
Under autograd each chunk is wrapped in ``torch.utils.checkpoint`` so the backward recomputes the chunk
logits instead of storing them.

Test: ``pytest tests/algos/test_likelihood.py tests/algos/test_enumeration.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint

from spg_lib.algos.registry import NEG_ESTIMATORS

_EPS = 1e-8  # the official clamp for |S_τ|, t̂ and |U|

# --------------------------------------------------------------------------------------------------
# target log-probs
# --------------------------------------------------------------------------------------------------


def _hidden_chunk_logp(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                       y: torch.Tensor) -> torch.Tensor:
    """h [n, D], weight [V, D], y [n] -> logp [n] float32."""
    logits = h @ weight.t()  # [n, V] in the model dtype (bf16 on GPU)
    if bias is not None:
        logits = logits + bias
    logits = logits.float()  # fp32 before the log-softmax (docs/faithful-vs-fixed.md#official-quirks Q19)
    return logits.gather(-1, y.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)  # [n]


def _logits_chunk_logp(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """logits [n, V], y [n] -> logp [n] float32."""
    logits = logits.float()
    return logits.gather(-1, y.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def target_logprobs_from_hidden(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *, bias: torch.Tensor | None = None,
    chunk_size: int = 256, needed: torch.Tensor | None = None, use_checkpoint: bool | None = None,
) -> torch.Tensor:
    """log softmax(hidden @ weightᵀ)[target] in float32, chunked over positions.

    Args:
        hidden: FloatTensor [N, L, D], final hidden states (after the final norm) of the completion slice.
        weight: FloatTensor [V, D], output head weight. bias: optional [V].
        targets: LongTensor [N, L], clean target ids.
        chunk_size: positions per chunk (a chunk materialises [chunk_size, V] fp32 logits).
        needed: optional BoolTensor [N, L]; only these positions are computed, the rest are 0 (the bounds only
            read masked completion positions, so this skips about half the head matmul under block masking).
        use_checkpoint: recompute chunk logits in backward (default: whenever autograd is recording).
    Returns:
        FloatTensor [N, L] of log-probs (0 where not ``needed``).
    """
    if hidden.dim() != 3 or targets.shape != hidden.shape[:2]:
        raise ValueError(f"hidden [N, L, D] and targets [N, L] disagree: {tuple(hidden.shape)} vs "
                         f"{tuple(targets.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    N, L, D = hidden.shape
    flat_h = hidden.reshape(N * L, D)  # [N·L, D]
    flat_y = targets.reshape(N * L)  # [N·L]
    if needed is not None:
        idx = needed.reshape(N * L).nonzero().squeeze(-1)  # [n_needed]
        flat_h, flat_y = flat_h.index_select(0, idx), flat_y.index_select(0, idx)
    if use_checkpoint is None:
        use_checkpoint = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    pieces = []
    for start in range(0, flat_h.shape[0], chunk_size):
        h, y = flat_h[start:start + chunk_size], flat_y[start:start + chunk_size]
        if use_checkpoint:
            pieces.append(checkpoint(_hidden_chunk_logp, h, weight, bias, y, use_reentrant=False))
        else:
            pieces.append(_hidden_chunk_logp(h, weight, bias, y))
    flat = torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)
    if needed is None:
        return flat.reshape(N, L)
    out = torch.zeros(N * L, dtype=torch.float32, device=hidden.device)
    return out.index_put((idx,), flat).reshape(N, L)


def target_logprobs_from_logits(logits: torch.Tensor, targets: torch.Tensor, *, chunk_size: int = 256
                                ) -> torch.Tensor:
    """log softmax(logits)[target] in float32 without a full-size fp32 copy of ``logits``.

    Args:
        logits: FloatTensor [N, L, V]; targets: LongTensor [N, L].
    Returns:
        FloatTensor [N, L].
    """
    N, L, V = logits.shape
    flat, y = logits.reshape(N * L, V), targets.reshape(N * L)
    pieces = [_logits_chunk_logp(flat[s:s + chunk_size], y[s:s + chunk_size]) for s in range(0, N * L, chunk_size)]
    return torch.cat(pieces).reshape(N, L)


# --------------------------------------------------------------------------------------------------
# estimators on logp [B, m, L]
# --------------------------------------------------------------------------------------------------


def _bound_inputs(masked: torch.Tensor, completion_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """M = masked ∧ C  [B, m, L] (bool) and L_c [B] (float)."""
    M = masked.bool() & completion_mask.bool().unsqueeze(1)  # [B, m, L]
    return M, completion_mask.float().sum(-1)  # [B]


def empirical_ratio(masked: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """S5: t̂[b,τ] = |S_τ| / L_c (0 for all-padding rows). masked [B, m, L] -> [B, m]."""
    M, L_c = _bound_inputs(masked, completion_mask)
    return M.float().sum(-1) / L_c.clamp(min=1.0).unsqueeze(-1)


def elbo_estimate(logp: torch.Tensor, masked: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """SPG ELBO, per-token form (docs/algorithms.md#spg-elbo): (1/m) Σ_τ Σ_k M·logp / max(Σ_k M, 1e-8).

    Equals (1/L_c)·(1/m)Σ_τ Σ_{k∈S_τ} logp/t̂_τ, the w(t)=1/t ELBO with the empirical ratio divided by L_c.

    Args:
        logp: FloatTensor [B, m, L]; masked: BoolTensor [B, m, L]; completion_mask: BoolTensor [B, L].
    Returns:
        FloatTensor [B].
    """
    M, _ = _bound_inputs(masked, completion_mask)
    Mf = M.to(logp.dtype)
    per_sample = (torch.where(M, logp, 0.0)).sum(-1) / Mf.sum(-1).clamp(min=_EPS)  # [B, m]
    return per_sample.mean(-1)


def eubo_token_terms(logp: torch.Tensor, masked: torch.Tensor, completion_mask: torch.Tensor, *, beta: float,
                     drop_underflow: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """log a[b,k] with a = (1/m) Σ_τ M·p^β / max(t̂_τ, 1e-8) (docs/algorithms.md#official-eubo-estimator), computed in
    log space.

    U = tokens masked in ≥ 1 sample. ``drop_underflow=True`` applies the official code's rule on top: there a is
    formed in float32 as mean_τ(exp(logp)^β·M/t̂) and U = {k : a[k] > 0}, so a token whose p^β underflows to 0
    in every sample that masked it (β = 1.5: logp ≲ −69) leaves U and takes no part in the bound. Only the
    membership is taken from the fp32 form; the kept log a stay the log-space values (equal up to rounding, and
    with a finite backward where the fp32 a is denormal).

    Returns:
        (log_a FloatTensor [B, L] — 0 where U is False, U BoolTensor [B, L] = tokens in the bound).
    """
    M, _ = _bound_inputs(masked, completion_mask)
    m = logp.shape[1]
    t_hat = empirical_ratio(masked, completion_mask).clamp(min=_EPS)  # [B, m]
    x = beta * logp - torch.log(t_hat).unsqueeze(-1)  # [B, m, L] log of p^β / t̂
    U = M.any(dim=1)  # [B, L]
    if drop_underflow:
        with torch.no_grad():
            p_beta = torch.exp(logp.detach().float()) ** beta  # [B, m, L] fp32, 0 on underflow
            U = U & ((torch.where(M, p_beta, 0.0) / t_hat.unsqueeze(-1)).sum(1) > 0)  # [B, L]
    # −inf for unmasked samples; rows with no masked sample get 0s so logsumexp's backward stays finite
    x = torch.where(M, x, float("-inf"))
    x = torch.where(U.unsqueeze(1), x, 0.0)
    log_a = torch.logsumexp(x, dim=1) - torch.log(torch.tensor(float(m), device=logp.device))  # [B, L]
    return torch.where(U, log_a, 0.0), U


def eubo_estimate(
    logp: torch.Tensor, masked: torch.Tensor, completion_mask: torch.Tensor, *, beta: float,
    drop_unmasked_tokens: bool = True, drop_underflow: bool = False,
) -> torch.Tensor:
    """SPG EUBO (docs/algorithms.md#official-eubo-estimator), returned in the same per-token scale as ``elbo_estimate``
    (the loss multiplies by L_c).

    ``drop_unmasked_tokens=True`` (faithful): (1/β)·Σ_{k∈U} log a[k] / max(|U|, 1e-8) — a mean over the tokens
    masked at least once, so after ×L_c the kept tokens are up-weighted by L_c/|U|
    (docs/faithful-vs-fixed.md#official-quirks Q4).
    ``drop_unmasked_tokens=False`` (fixed): (1/β)·Σ_{k∈U} log a[k] / L_c, i.e. after ×L_c the paper's sum form
    (1/β)·Σ_k log a[k] (Eq. 6) over the tokens the m samples observed. Reasoning: tokens never masked have
    a[k] = 0 (plug-in log 0 = −∞) and carry no gradient either way, so they must be dropped, but dropping
    them should not inflate the weight of the rest: with L_c/|U| a sequence whose samples happened to mask
    few tokens gets its few terms scaled up, a sampling artefact that the ELBO (which sums with 1/t̂ weights
    and the same 1/L_c) does not have. The sum form keeps EUBO and ELBO on the same token scale, so the
    Mixture ω·EUBO + (1−ω)·ELBO mixes like with like.

    ``drop_underflow=True`` (faithful): U also loses the tokens whose fp32 p^β underflows to 0, as in the
    official code (see ``eubo_token_terms``); with ``drop_unmasked_tokens`` they leave |U| too.

    Args:
        logp: FloatTensor [B, m, L]; masked: BoolTensor [B, m, L]; completion_mask: BoolTensor [B, L];
        beta: Rényi β > 0 (a valid bound needs β ≥ 1; the paper's ablation also ran 0.5, 0.75).
    Returns:
        FloatTensor [B].
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    log_a, U = eubo_token_terms(logp, masked, completion_mask, beta=beta, drop_underflow=drop_underflow)  # [B, L]
    total = log_a.sum(-1) / beta  # [B]
    if drop_unmasked_tokens:
        return total / U.float().sum(-1).clamp(min=_EPS)
    return total / completion_mask.float().sum(-1).clamp(min=1.0)


def mixture_estimate(elbo: torch.Tensor, eubo: torch.Tensor, *, omega: float) -> torch.Tensor:
    """Eq. 8 / S8 ``mix``: ω·EUBO + (1−ω)·ELBO. elbo, eubo [B] -> [B]."""
    if not 0.0 <= omega <= 1.0:
        raise ValueError(f"omega (mix_weight) must be in [0, 1], got {omega}")
    return omega * eubo + (1.0 - omega) * elbo


def _uses_eubo(uses: bool) -> Callable[[Callable], Callable]:
    """Mark a negative estimator with whether it reads the EUBO (the SPG estimator skips the EUBO otherwise)."""

    def mark(fn: Callable) -> Callable:
        fn.uses_eubo = uses
        return fn

    return mark


def uses_eubo(neg_estimator: str) -> bool:
    """Whether the negative estimator registered under ``neg_estimator`` reads the EUBO (unmarked: True)."""
    return bool(getattr(NEG_ESTIMATORS.get(neg_estimator), "uses_eubo", True))


@NEG_ESTIMATORS.register("eubo")
@_uses_eubo(True)
def neg_eubo(elbo: torch.Tensor, eubo: torch.Tensor, *, omega: float = 0.5) -> torch.Tensor:
    """N = EUBO. [B] -> [B]."""
    return eubo


@NEG_ESTIMATORS.register("mix")
@_uses_eubo(True)
def neg_mix(elbo: torch.Tensor, eubo: torch.Tensor, *, omega: float = 0.5) -> torch.Tensor:
    """N = ω·EUBO + (1−ω)·ELBO. [B] -> [B]."""
    return mixture_estimate(elbo, eubo, omega=omega)


@NEG_ESTIMATORS.register("elbo")
@_uses_eubo(False)
def neg_elbo(elbo: torch.Tensor, eubo: torch.Tensor, *, omega: float = 0.5) -> torch.Tensor:
    """N = ELBO (ablation "SPG w/ ELBO"). [B] -> [B]."""
    return elbo


@NEG_ESTIMATORS.register("zero")
@_uses_eubo(False)
def neg_zero(elbo: torch.Tensor, eubo: torch.Tensor, *, omega: float = 0.5) -> torch.Tensor:
    """N = 0 (ablation "SPG wo/ neg"): negatives give no gradient. [B] -> [B]."""
    return torch.zeros_like(elbo)


def one_step_token_logp(logp: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """D1 one-step estimator (docs/algorithms.md#d1-one-step-estimator): per-token log π(x_k | c̃, all-masked
    completion), 0 outside the completion.

    Args:
        logp: FloatTensor [B, 1, L] (from forward_type ``all``) or [B, L]; completion_mask: BoolTensor [B, L].
    Returns:
        FloatTensor [B, L].
    """
    if logp.dim() == 3:
        if logp.shape[1] != 1:
            raise ValueError(f"one-step estimator expects a single sample, got m={logp.shape[1]}")
        logp = logp[:, 0]
    return torch.where(completion_mask.bool(), logp, 0.0)


def masked_token_mean(logp: torch.Tensor, masked: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """UniGRPO sequence log-likelihood (docs/algorithms.md#unigrpo): mean of log-probs over masked completion tokens.

    Args:
        logp: FloatTensor [B, m, L]; masked: BoolTensor [B, m, L]; completion_mask: BoolTensor [B, L].
    Returns:
        FloatTensor [B, m] (0 where nothing is masked).
    """
    M, _ = _bound_inputs(masked, completion_mask)
    return torch.where(M, logp, 0.0).sum(-1) / M.float().sum(-1).clamp(min=1.0)


def espo_coupled_elbo(logp: torch.Tensor, masked: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """ESPO coupled ELBO (docs/algorithms.md#espo): mean over samples of Σ_{masked k} logp/t, summed over all L
    positions.

    With samples in (draw, complement) pairs this is (1/num_mc)·Σ_mc ½[Σ_masked logp/t + Σ_unmasked logp/t'],
    i.e. −½[Σ CE/t_b + Σ CE/((L−n_b)/(L+1))] averaged over draws (no completion mask: post-EOS included).

    Args:
        logp: FloatTensor [B, m', L]; masked: BoolTensor [B, m', L]; t: FloatTensor [B, m'].
    Returns:
        FloatTensor [B].
    """
    per_sample = torch.where(masked.bool(), logp, 0.0).sum(-1) / t.clamp(min=_EPS)  # [B, m']
    return per_sample.mean(-1)
