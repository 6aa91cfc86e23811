"""spg_lib.algos.likelihood: chunked target log-probs (values + gradients) and the estimator formula sheet
(docs/algorithms.md#spg-elbo, docs/algorithms.md#official-eubo-estimator, paper Eq. 8,
docs/algorithms.md#d1-one-step-estimator, docs/algorithms.md#unigrpo, docs/algorithms.md#espo) on hand-built tensors,
plus numerical safety."""

from __future__ import annotations

import math

import pytest
import torch

from spg_lib.algos.likelihood import (
    elbo_estimate,
    empirical_ratio,
    espo_coupled_elbo,
    eubo_estimate,
    eubo_token_terms,
    masked_token_mean,
    mixture_estimate,
    one_step_token_logp,
    target_logprobs_from_hidden,
    target_logprobs_from_logits,
)
from spg_lib.algos.registry import NEG_ESTIMATORS

LOG = math.log


# --------------------------------------------------------------------------------------------------
# chunked log-probs
# --------------------------------------------------------------------------------------------------


def _naive(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = hidden @ weight.t()  # [N, L, V]
    return torch.log_softmax(logits.float(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 100])
def test_chunked_hidden_matches_naive_values_and_grads(chunk_size: int) -> None:
    g = torch.Generator().manual_seed(0)
    N, L, D, V = 3, 5, 4, 11
    h0 = torch.randn(N, L, D, generator=g)
    w0 = torch.randn(V, D, generator=g)
    y = torch.randint(0, V, (N, L), generator=g)
    up = torch.randn(N, L, generator=g)  # random upstream gradient

    h1, w1 = h0.clone().requires_grad_(), w0.clone().requires_grad_()
    ref = _naive(h1, w1, y)
    (ref * up).sum().backward()

    h2, w2 = h0.clone().requires_grad_(), w0.clone().requires_grad_()
    out = target_logprobs_from_hidden(h2, w2, y, chunk_size=chunk_size)
    assert out.dtype == torch.float32
    (out * up).sum().backward()
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(h2.grad, h1.grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(w2.grad, w1.grad, atol=1e-6, rtol=1e-5)


def test_chunked_hidden_needed_positions_and_bias() -> None:
    g = torch.Generator().manual_seed(1)
    N, L, D, V = 2, 6, 3, 5
    h = torch.randn(N, L, D, generator=g, requires_grad=True)
    w = torch.randn(V, D, generator=g)
    b = torch.randn(V, generator=g)
    y = torch.randint(0, V, (N, L), generator=g)
    needed = torch.rand(N, L, generator=g) < 0.5
    needed[0, 0] = True
    out = target_logprobs_from_hidden(h, w, y, bias=b, chunk_size=2, needed=needed)
    ref = torch.log_softmax(h @ w.t() + b, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(out[needed], ref[needed], atol=1e-6, rtol=1e-6)
    assert torch.all(out[~needed] == 0)
    out.sum().backward()
    # positions that were not needed receive no gradient
    assert torch.all(h.grad[~needed] == 0)


def test_chunked_uses_checkpoint_under_grad(monkeypatch: pytest.MonkeyPatch) -> None:
    import spg_lib.algos.likelihood as lk

    calls = []
    real = lk.checkpoint

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(lk, "checkpoint", spy)
    h = torch.randn(2, 4, 3, requires_grad=True)
    w = torch.randn(7, 3)
    y = torch.zeros(2, 4, dtype=torch.long)
    lk.target_logprobs_from_hidden(h, w, y, chunk_size=3)
    assert len(calls) == 3  # 8 positions in chunks of 3
    calls.clear()
    with torch.no_grad():
        lk.target_logprobs_from_hidden(h, w, y, chunk_size=3)
    assert not calls


def test_logits_path_matches_log_softmax_in_fp32() -> None:
    g = torch.Generator().manual_seed(2)
    logits = (torch.randn(2, 3, 9, generator=g) * 5).to(torch.bfloat16)
    y = torch.randint(0, 9, (2, 3), generator=g)
    out = target_logprobs_from_logits(logits, y, chunk_size=4)
    ref = torch.log_softmax(logits.float(), -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)


# --------------------------------------------------------------------------------------------------
# formula sheet S5–S8 on a hand-built example
# --------------------------------------------------------------------------------------------------
# B = 1, m = 2, L = 4, C = [1, 1, 1, 0] (L_c = 3; position 3 is after the EOS).
# sample 0 masks k = 0, 1; sample 1 masks k = 1 and the post-EOS k = 3 (excluded by C).
# logp: sample 0: log .5, log .25 ; sample 1: log .5 at k = 1 ; unmasked entries are arbitrary (−9).


def _sheet():
    logp = torch.full((1, 2, 4), -9.0)
    logp[0, 0, 0], logp[0, 0, 1] = LOG(0.5), LOG(0.25)
    logp[0, 1, 1], logp[0, 1, 3] = LOG(0.5), LOG(0.1)
    masked = torch.zeros(1, 2, 4, dtype=torch.bool)
    masked[0, 0, 0] = masked[0, 0, 1] = masked[0, 1, 1] = masked[0, 1, 3] = True
    cmask = torch.tensor([[True, True, True, False]])
    return logp, masked, cmask


def test_sheet_s5_empirical_ratio() -> None:
    _, masked, cmask = _sheet()
    # t̂0 = 2/3, t̂1 = 1/3 (the post-EOS mask does not count)
    torch.testing.assert_close(empirical_ratio(masked, cmask), torch.tensor([[2 / 3, 1 / 3]]))


def test_sheet_s6_elbo() -> None:
    logp, masked, cmask = _sheet()
    # ELBO = ½[(log .5 + log .25)/2 + log .5/1] = ½[−1.0397208 − 0.6931472] = −0.8664340
    expected = 0.5 * ((LOG(0.5) + LOG(0.25)) / 2 + LOG(0.5))
    assert abs(float(elbo_estimate(logp, masked, cmask)[0]) - expected) < 1e-6
    assert abs(expected - (-0.8664340)) < 1e-6
    # sum-form reading: ELBO·L_c = (1/m) Σ_τ Σ_{k∈S_τ} logp / t̂_τ
    sum_form = 0.5 * ((LOG(0.5) + LOG(0.25)) / (2 / 3) + LOG(0.5) / (1 / 3))
    assert abs(expected * 3 - sum_form) < 1e-6


@pytest.mark.parametrize("beta", [1.0, 1.5, 2.0])
def test_sheet_s7_eubo_both_modes(beta: float) -> None:
    logp, masked, cmask = _sheet()
    # a[0] = ½·(.5^β / (2/3)); a[1] = ½·(.25^β/(2/3) + .5^β/(1/3)); a[2] = 0 → dropped (U = {0, 1})
    a0 = 0.5 * (0.5**beta / (2 / 3))
    a1 = 0.5 * (0.25**beta / (2 / 3) + 0.5**beta / (1 / 3))
    faithful = (LOG(a0) + LOG(a1)) / 2 / beta
    fixed = (LOG(a0) + LOG(a1)) / 3 / beta
    got_f = float(eubo_estimate(logp, masked, cmask, beta=beta, drop_unmasked_tokens=True)[0])
    got_x = float(eubo_estimate(logp, masked, cmask, beta=beta, drop_unmasked_tokens=False)[0])
    assert abs(got_f - faithful) < 1e-6
    assert abs(got_x - fixed) < 1e-6
    if beta == 1.0:  # a0 = 0.375, a1 = 0.9375 → (log .375 + log .9375)/2 = −0.5226838
        assert abs(faithful - (-0.5226838)) < 1e-6
    log_a, U = eubo_token_terms(logp, masked, cmask, beta=beta)
    assert U.tolist() == [[True, True, False, False]]
    torch.testing.assert_close(log_a, torch.tensor([[LOG(a0), LOG(a1), 0.0, 0.0]]))


@pytest.mark.parametrize("omega", [0.0, 0.25, 0.5, 1.0])
def test_sheet_s8_mixture_and_registry(omega: float) -> None:
    logp, masked, cmask = _sheet()
    elbo = elbo_estimate(logp, masked, cmask)
    eubo = eubo_estimate(logp, masked, cmask, beta=1.5)
    mix = mixture_estimate(elbo, eubo, omega=omega)
    torch.testing.assert_close(mix, omega * eubo + (1 - omega) * elbo)
    torch.testing.assert_close(NEG_ESTIMATORS.get("mix")(elbo, eubo, omega=omega), mix)
    if omega == 0.0:
        torch.testing.assert_close(mix, elbo)
    if omega == 1.0:
        torch.testing.assert_close(mix, eubo)
    torch.testing.assert_close(NEG_ESTIMATORS.get("eubo")(elbo, eubo, omega=omega), eubo)
    torch.testing.assert_close(NEG_ESTIMATORS.get("elbo")(elbo, eubo, omega=omega), elbo)
    assert float(NEG_ESTIMATORS.get("zero")(elbo, eubo, omega=omega)) == 0.0
    with pytest.raises(ValueError, match="omega"):
        mixture_estimate(elbo, eubo, omega=1.5)


def test_one_step_masked_mean_and_coupled_elbo() -> None:
    logp = torch.tensor([[[-1.0, -2.0, -3.0]]])  # [1, 1, 3]
    cmask = torch.tensor([[True, True, False]])
    torch.testing.assert_close(one_step_token_logp(logp, cmask), torch.tensor([[-1.0, -2.0, 0.0]]))
    masked = torch.tensor([[[True, False, True]]])
    # masked completion tokens: only k = 0 (k = 2 is post-EOS) → mean −1
    torch.testing.assert_close(masked_token_mean(logp, masked, cmask), torch.tensor([[-1.0]]))
    # ESPO: pair (draw masks k = 0; complement masks k = 1, 2), L = 3, n = 1 → t = 1/4, t' = 2/4
    lp = torch.tensor([[[-1.0, -2.0, -3.0], [-0.5, -1.5, -2.5]]])
    mk = torch.tensor([[[True, False, False], [False, True, True]]])
    t = torch.tensor([[0.25, 0.5]])
    expected = 0.5 * (-1.0 / 0.25 + (-1.5 - 2.5) / 0.5)  # = ½(−4 − 8) = −6
    assert abs(float(espo_coupled_elbo(lp, mk, t)[0]) - expected) < 1e-6


# --------------------------------------------------------------------------------------------------
# numerical safety
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0.5, 1.0, 1.5, 2.0])
def test_no_nan_for_tiny_probabilities_padding_rows_and_no_eos(beta: float) -> None:
    B, m, L = 3, 2, 4
    logp = torch.full((B, m, L), -1e4, requires_grad=True)  # p ≈ 0: p^β underflows in the linear domain
    masked = torch.ones(B, m, L, dtype=torch.bool)
    masked[1, :, :2] = False
    cmask = torch.tensor([[True] * 4, [True] * 4, [False] * 4])  # row 0/1 no EOS, row 2 all padding
    for drop in (True, False):
        elbo = elbo_estimate(logp, masked, cmask)
        eubo = eubo_estimate(logp, masked, cmask, beta=beta, drop_unmasked_tokens=drop)
        total = (elbo + eubo).sum() + masked_token_mean(logp, masked, cmask).sum()
        (grad,) = torch.autograd.grad(total, logp)
        assert torch.isfinite(elbo).all() and torch.isfinite(eubo).all()
        assert torch.isfinite(grad).all()
        assert float(eubo[2].detach()) == 0.0 and float(elbo[2].detach()) == 0.0  # padding row contributes nothing
        assert torch.all(grad[2] == 0)
        # tokens never masked (row 1, k < 2) get no gradient
        assert torch.all(grad[1, :, :2] == 0)
    # EUBO stays finite and equals the closed form: log a = β·(−1e4) − log t̂ with t̂ = 1
    eubo0 = eubo_estimate(logp, masked, cmask, beta=beta)
    assert abs(float(eubo0[0].detach()) - (-1e4)) < 1e-2


def test_eubo_rejects_nonpositive_beta() -> None:
    logp, masked, cmask = _sheet()
    with pytest.raises(ValueError, match="beta"):
        eubo_estimate(logp, masked, cmask, beta=0.0)


# --------------------------------------------------------------------------------------------------
# EUBO under fp32 underflow: the official code vs the log-space estimator
# --------------------------------------------------------------------------------------------------


def _official_eubo(logp: torch.Tensor, masked: torch.Tensor, cmask: torch.Tensor, beta: float) -> torch.Tensor:
    """Hand transcription of the official EUBO: p = exp(logp) in fp32, a = (1/m) Σ_τ p^β·M/t̂, U = {a > 0},
    EUBO = (1/β)·Σ_{k∈U} log a / max(|U|, 1e-8)."""
    M = masked & cmask.unsqueeze(1)
    t_hat = (M.float().sum(-1) / cmask.float().sum(-1, keepdim=True)).clamp(min=1e-8)  # [B, m]
    p = torch.exp(logp.float())
    a = (p ** beta * M.float() / t_hat.unsqueeze(-1)).mean(1)  # [B, L]
    U = a > 0
    log_a = torch.log(torch.where(U, a, torch.ones_like(a)))
    return log_a.sum(-1) / beta / U.float().sum(-1).clamp(min=1e-8)


def test_eubo_drop_underflow_reproduces_the_official_fp32_rule() -> None:
    # B = 1, m = 2, L = 3: sample 0 masks every token (t̂ = 1), sample 1 masks k = 0 (t̂ = 1/3); token 2 has
    # logp = −75, so p^1.5 = e^−112.5 underflows to 0 in fp32
    logp = torch.tensor([[[LOG(0.5), LOG(0.25), -75.0], [LOG(0.5), -9.0, -9.0]]], requires_grad=True)
    masked = torch.tensor([[[True, True, True], [True, False, False]]])
    cmask = torch.ones(1, 3, dtype=torch.bool)
    beta = 1.5
    # a0 = (0.5^1.5/1 + 0.5^1.5·3)/2 = 2·0.5^1.5, a1 = 0.25^1.5/2, a2 = 0 -> |U| = 2
    expected = (LOG(2 * 0.5 ** 1.5) + LOG(0.25 ** 1.5 / 2)) / beta / 2  # ≈ −1.040
    official = _official_eubo(logp.detach(), masked, cmask, beta)
    got = eubo_estimate(logp, masked, cmask, beta=beta, drop_unmasked_tokens=True, drop_underflow=True)
    torch.testing.assert_close(got.detach(), official)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # the log-space estimator keeps token 2: log a2 = −112.5 − log 2, |U| = 3
    kept = eubo_estimate(logp, masked, cmask, beta=beta, drop_unmasked_tokens=True, drop_underflow=False)
    assert kept.item() == pytest.approx((LOG(2 * 0.5 ** 1.5) + LOG(0.25 ** 1.5 / 2) - 112.5 - LOG(2)) / beta / 3,
                                        rel=1e-5)  # ≈ −25.85
    got.sum().backward()
    assert torch.isfinite(logp.grad).all() and logp.grad[0, 0, 2] == 0  # the dropped token gets no gradient
    assert logp.grad[0, 0, 1] != 0


def test_eubo_drop_underflow_backward_is_finite_for_beta_below_one() -> None:
    logp = torch.tensor([[[-200.0, LOG(0.5)]]], requires_grad=True)
    masked = torch.ones(1, 1, 2, dtype=torch.bool)
    out = eubo_estimate(logp, masked, torch.ones(1, 2, dtype=torch.bool), beta=0.5, drop_underflow=True)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(logp.grad).all()
