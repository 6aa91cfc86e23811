"""spg_lib.algos.likelihood: chunked target log-probs (values + gradients) and the estimator formula sheet
(algorithms.md §11 S5–S8, §2.1, §5.3, §5.4) on hand-built tensors, plus numerical safety."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from spg_lib.algos.likelihood import (
    completion_token_logprobs,
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


class _ToyLM(nn.Module):
    """Bidirectional toy: embedding, mean-pooled context, linear head; three API flavours."""

    def __init__(self, flavour: str, V: int = 13, D: int = 8) -> None:
        super().__init__()
        self.flavour = flavour
        gen = torch.Generator().manual_seed(3)
        self.emb = nn.Parameter(torch.randn(V, D, generator=gen))
        self.head = nn.Linear(D, V, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(V, D, generator=gen))

    def _hidden(self, ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        e = self.emb[ids]  # [N, T, D]
        am = torch.ones(ids.shape, dtype=e.dtype) if attention_mask is None else attention_mask.to(e.dtype)
        ctx = (e * am.unsqueeze(-1)).sum(1, keepdim=True) / am.sum(1, keepdim=True).unsqueeze(-1)
        return torch.tanh(e + ctx)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        h = self._hidden(input_ids, attention_mask)
        if "logits_range" in kwargs and kwargs["logits_range"] is not None:
            s, e = kwargs["logits_range"]
            h = h[:, s:e]
        return type("Out", (), {"logits": self.head(h)})()


class _WithHidden(_ToyLM):
    def hidden_states(self, input_ids, attention_mask=None):
        return self._hidden(input_ids, attention_mask)

    def get_output_embeddings(self):
        return self.head


class _WithRange(_ToyLM):
    def forward(self, input_ids, attention_mask=None, logits_range=None):
        return super().forward(input_ids, attention_mask, logits_range=logits_range)


@pytest.mark.parametrize("cls", [_ToyLM, _WithHidden, _WithRange])
def test_completion_token_logprobs_all_model_flavours(cls) -> None:
    model = cls("x")
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(0, 13, (3, 7), generator=g)
    am = torch.ones(3, 7, dtype=torch.long)
    am[0, :2] = 0
    targets = torch.randint(0, 13, (3, 4), generator=g)
    out = completion_token_logprobs(model, ids, am, targets, prompt_len=3, chunk_size=5)
    full = model(ids, attention_mask=am).logits[:, 3:]
    ref = torch.log_softmax(full, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    out.sum().backward()
    assert model.head.weight.grad is not None and torch.isfinite(model.head.weight.grad).all()


class _WrappedHead(nn.Module):
    """Adapter-style head: weight attribute is only part of the projection (like a LoRA-wrapped Linear)."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base_layer, self.weight = base, base.weight
        self.delta = nn.Parameter(torch.full((base.out_features,), 0.5))

    def forward(self, h):
        return self.base_layer(h) + self.delta


class _WithAdapterHead(_WithHidden):
    def __init__(self, flavour: str) -> None:
        super().__init__(flavour)
        self.head = _WrappedHead(self.head)
        with torch.no_grad():
            self.head.delta[0] = 4.0


def test_adapter_wrapped_head_falls_back_to_logits() -> None:
    model = _WithAdapterHead("x")
    ids = torch.randint(0, 13, (2, 6), generator=torch.Generator().manual_seed(0))
    targets = torch.zeros(2, 3, dtype=torch.long)
    out = completion_token_logprobs(model, ids, None, targets, prompt_len=3)
    ref = torch.log_softmax(model(ids).logits[:, 3:], -1)[..., 0]
    torch.testing.assert_close(out, ref)


def test_completion_token_logprobs_rejects_bad_prompt_len() -> None:
    with pytest.raises(ValueError, match="prompt_len"):
        completion_token_logprobs(_ToyLM("x"), torch.zeros(1, 5, dtype=torch.long), None,
                                  torch.zeros(1, 3, dtype=torch.long), prompt_len=1)


def test_completion_token_logprobs_on_tiny_llada() -> None:
    from spg_lib.models import init_tiny_model

    model = init_tiny_model(seed=0)
    V = model.get_output_embeddings().weight.shape[0]
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, V, (2, 10), generator=g)
    targets = torch.randint(0, V, (2, 6), generator=g)
    out = completion_token_logprobs(model, ids, None, targets, prompt_len=4, chunk_size=4)
    ref = torch.log_softmax(model(ids).logits[:, 4:].float(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


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
