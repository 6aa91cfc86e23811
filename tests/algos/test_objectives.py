"""spg_lib.algos.objectives / advantages / registry: hand-computed losses (docs/algorithms.md#spg-loss,
docs/algorithms.md#baselines),
sign/zero properties, and registry errors."""

from __future__ import annotations

import math

import pytest
import torch

from spg_lib.algos.advantages import compute_advantages, group_center, group_zscore, leave_one_out
from spg_lib.algos.likelihood import elbo_estimate, eubo_estimate
from spg_lib.algos.masking import bound_mask, forward_process
from spg_lib.algos.objectives import d1_loss, espo_loss, k3_kl, spg_loss, unigrpo_loss, wd1_loss
from spg_lib.algos.registry import ADVANTAGES, OBJECTIVES, Registry, get_objective

LOG = math.log

# SPG example: B = 3, L = 4, lengths L_c = [2, 3, 1]; A = [1, −.5, −.5]
ELBO = [-1.0, -2.0, -0.5]
EUBO = [-0.8, -1.5, -0.2]
ADV = [1.0, -0.5, -0.5]


def _cmask(lengths, L=4):
    return torch.arange(L).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)


@pytest.mark.parametrize(
    ("neg", "weighted_sum"),
    [
        # Σ A·ℓ̂·L_c: 1·(−1)·2 + (−.5)·N_1·3 + (−.5)·N_2·1
        ("mix", -2 + 0.5 * 1.75 * 3 + 0.5 * 0.35),  # N = ½EUBO + ½ELBO = [−1.75, −0.35] → 0.8
        ("eubo", -2 + 0.5 * 1.5 * 3 + 0.5 * 0.2),  # 0.35
        ("elbo", -2 + 0.5 * 2.0 * 3 + 0.5 * 0.5),  # 1.25
        ("zero", -2.0),
    ],
)
@pytest.mark.parametrize(("norm", "denom"), [("completion_tokens", 6.0), ("max_length", 12.0), ("sequences", 3.0)])
def test_spg_loss_formula_sheet(neg: str, weighted_sum: float, norm: str, denom: float) -> None:
    loss, metrics = spg_loss(torch.tensor(ELBO), torch.tensor(EUBO), torch.tensor(ADV), _cmask([2, 3, 1]),
                             neg_estimator=neg, mix_weight=0.5, loss_norm=norm)
    assert abs(float(loss.detach()) - (-weighted_sum / denom)) < 1e-6
    assert abs(metrics["spg/pos_fraction"] - 1 / 3) < 1e-6
    assert all(k.startswith("spg/") for k in metrics)
    if neg == "mix" and norm == "completion_tokens":
        assert abs(float(loss.detach()) - (-0.8 / 6)) < 1e-6


def test_spg_loss_zero_when_advantages_equal_and_strict_split() -> None:
    elbo = torch.tensor(ELBO, requires_grad=True)
    eubo = torch.tensor(EUBO, requires_grad=True)
    adv = group_center(torch.tensor([0.7, 0.7, 0.7]), group_size=3)
    loss, metrics = spg_loss(elbo, eubo, adv, _cmask([2, 3, 1]))
    assert float(loss.detach()) == 0.0 and metrics["spg/pos_fraction"] == 0.0
    loss.backward()
    assert torch.all(elbo.grad == 0) and torch.all(eubo.grad == 0)


@pytest.mark.parametrize("neg", ["elbo", "mix", "eubo"])
def test_spg_gradient_sign(neg: str) -> None:
    elbo = torch.tensor(ELBO, requires_grad=True)
    eubo = torch.tensor(EUBO, requires_grad=True)
    cm = _cmask([2, 3, 1])
    loss, _ = spg_loss(elbo, eubo, torch.tensor(ADV), cm, neg_estimator=neg)
    g_elbo, g_eubo = torch.autograd.grad(loss, (elbo, eubo), allow_unused=True, materialize_grads=True)
    # positive trace: descending the loss raises its ELBO; negative traces: lowers their bound
    assert g_elbo[0] < 0 and g_eubo[0] == 0
    if neg == "elbo":
        assert torch.all(g_elbo[1:] > 0) and torch.all(g_eubo == 0)
        # linear in A: flipping every advantage (all traces stay on the ELBO) flips the gradient
        loss2, _ = spg_loss(elbo, eubo, -torch.tensor(ADV), cm, neg_estimator=neg)
        (g2,) = torch.autograd.grad(loss2, elbo)
        torch.testing.assert_close(g2, -g_elbo)
    else:
        assert torch.all(g_eubo[1:] > 0)


def test_spg_end_to_end_gradient_flips_with_advantage() -> None:
    """Masks → toy logits → ELBO → loss: gradient wrt the logits flips sign with A (all-ELBO estimator)."""
    g = torch.Generator().manual_seed(0)
    B, P, L, V = 2, 2, 8, 6
    ids = torch.randint(1, V, (B, P + L), generator=g)
    cm = _cmask([8, 5], L=8)
    nb = forward_process("block_random", ids, cm, prompt_len=P, mask_id=0, num_mc=2, block_length=4,
                         generator=torch.Generator().manual_seed(1))
    logits = torch.randn(B, 2, L, V, generator=g, requires_grad=True)
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, P:].unsqueeze(1).expand(-1, 2, -1).unsqueeze(-1))[..., 0]
    masked = bound_mask(nb.noisy, cm, prompt_len=P, mask_id=0)
    elbo = elbo_estimate(logp, masked, cm)
    eubo = eubo_estimate(logp, masked, cm, beta=1.5)
    A = torch.tensor([0.5, 0.25])
    (g1,) = torch.autograd.grad(spg_loss(elbo, eubo, A, cm, neg_estimator="elbo")[0], logits, retain_graph=True)
    (g2,) = torch.autograd.grad(spg_loss(elbo, eubo, -A, cm, neg_estimator="elbo")[0], logits)
    torch.testing.assert_close(g1, -g2)
    assert g1.abs().sum() > 0


def test_d1_loss_hand_values() -> None:
    logp = torch.tensor([[LOG(0.5), LOG(0.25)]], requires_grad=True)
    old = torch.tensor([[LOG(0.4), LOG(0.5)]])
    ref = torch.tensor([[LOG(0.5), LOG(0.5)]])
    cm = torch.ones(1, 2, dtype=torch.bool)
    # r = [1.25, .5], clip(.8, 1.2) → [1.2, .8]; A = 1: min → [1.2, .5]; k3 = [0, 2 − log 2 − 1]
    k3 = 2 - LOG(2) - 1
    loss, m = d1_loss(logp, torch.tensor([1.0]), cm, old_logp=old, ref_logp=ref, clip_eps=0.2, kl_beta=0.1)
    assert abs(float(loss.detach()) - (-1.2 - 0.5 + 0.1 * k3) / 2) < 1e-6
    assert abs(m["d1/kl"] - k3 / 2) < 1e-6 and abs(m["d1/clip_fraction"] - 0.5) < 1e-6
    # A = −1: min(−1.25, −1.2) = −1.25, min(−.5, −.8) = −.8 → per token [1.25, .8] + KL
    loss, _ = d1_loss(logp, torch.tensor([-1.0]), cm, old_logp=old, ref_logp=ref, clip_eps=0.2, kl_beta=0.1)
    assert abs(float(loss.detach()) - (1.25 + 0.8 + 0.1 * k3) / 2) < 1e-6
    with pytest.raises(ValueError, match="ref_logp"):
        d1_loss(logp, torch.tensor([1.0]), cm, kl_beta=0.04)


def test_d1_loss_token_mean_ignores_padding_and_mu1_gradient() -> None:
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]], requires_grad=True)
    cm = torch.tensor([[True, True, False], [True, False, False]])
    A = torch.tensor([2.0, -1.0])
    loss, _ = d1_loss(logp, A, cm, kl_beta=0.0)  # old = detached → r = 1: loss = −Σ C·A / Σ C
    assert abs(float(loss.detach()) - (-(2 + 2 - 1) / 3)) < 1e-6
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-2 / 3, -2 / 3, 0.0], [1 / 3, 0.0, 0.0]]))


def test_wd1_loss_hand_values() -> None:
    logp = torch.tensor([[-1.0, -1.0, -5.0], [-1.0, -2.0, -9.0]])
    cm = torch.tensor([[True, True, False], [True, True, False]])  # S = [−2, −3]
    w = math.e / (math.e + 1 / math.e) - 1 / (math.e**2 + 1)  # softmax(A)_0 − softmax(−A)_0 = 0.7615942
    loss, _ = wd1_loss(logp, torch.tensor([1.0, -1.0]), cm)
    assert abs(float(loss.detach()) - (-(w * -2 + (-w) * -3))) < 1e-6
    assert abs(w - 0.7615942) < 1e-6
    loss0, _ = wd1_loss(logp, torch.tensor([0.3, 0.3]), cm)
    assert float(loss0) == 0.0  # equal advantages: w⁺ = w⁻
    loss_pos, _ = wd1_loss(logp, torch.tensor([0.3, 0.3]), cm, negative=False)
    assert abs(float(loss_pos) - 2.5) < 1e-6


def test_unigrpo_loss_hand_values() -> None:
    logp = torch.tensor([[LOG(0.5), LOG(0.5), -3.0]])
    old = torch.tensor([[LOG(0.25), LOG(0.5), -1.0]])
    masked = torch.tensor([[True, True, False]])
    # r = [2, 1]; clip(.8, 1.2) = [1.2, 1]; A = 2: min → [2.4, 2] → mean 2.2
    loss, m = unigrpo_loss(logp, torch.tensor([2.0]), masked, old_logp=old, clip_eps=0.2)
    assert abs(float(loss.detach()) - (-2.2)) < 1e-6
    k3 = 0.5 + LOG(2) - 1  # k3 with d = old − logp = −log 2 on the first token
    loss, m = unigrpo_loss(logp, torch.tensor([2.0]), masked, old_logp=old, clip_eps=0.2, kl_beta=0.5)
    assert abs(float(loss.detach()) - (-2.2 + 0.5 * k3)) < 1e-6
    assert abs(m["unigrpo/kl"] - k3) < 1e-6
    torch.testing.assert_close(k3_kl(torch.tensor(LOG(0.5)), torch.tensor(LOG(0.25))), torch.tensor(k3))


def test_espo_loss_hand_values() -> None:
    elbo = torch.tensor([-10.0, -20.0])
    old = torch.tensor([-12.0, -20.0])
    ref = torch.tensor([-11.0, -18.0])
    # ρ = [e^{0.5}, 1]; A = [1, −1]: min → [1.2, −1]; loss = −mean = −0.1; k2 = (½·1 + ½·4)/(2·4) = 0.3125
    loss, m = espo_loss(elbo, torch.tensor([1.0, -1.0]), old_elbo=old, ref_elbo=ref, gen_length=4, clip_eps=0.2,
                        kl_beta=0.5)
    assert abs(float(loss.detach()) - (-0.1 + 0.5 * 0.3125)) < 1e-6
    assert abs(m["espo/kl"] - 0.3125) < 1e-6
    # asymmetric clip: ε_high = 1 → ρ = e^{.5} < 2 kept
    loss, _ = espo_loss(elbo, torch.tensor([1.0, -1.0]), old_elbo=old, gen_length=4, clip_eps=0.2, clip_eps_high=1.0)
    assert abs(float(loss.detach()) - (-(math.exp(0.5) - 1) / 2)) < 1e-6


# --------------------------------------------------------------------------------------------------
# advantages
# --------------------------------------------------------------------------------------------------


def test_advantages_hand_values() -> None:
    r = torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 6.0])
    torch.testing.assert_close(group_center(r, group_size=3), torch.tensor([-1.0, 0, 1, -2, -2, 4]))
    torch.testing.assert_close(leave_one_out(r, group_size=3), torch.tensor([-1.5, 0, 1.5, -3, -3, 6]))
    s = math.sqrt(12.0)
    expected = torch.tensor([-1 / (1 + 1e-4), 0, 1 / (1 + 1e-4), -2 / (s + 1e-4), -2 / (s + 1e-4), 4 / (s + 1e-4)])
    torch.testing.assert_close(group_zscore(r, group_size=3), expected)
    torch.testing.assert_close(compute_advantages("group_center", r, group_size=3), group_center(r, group_size=3))


def test_advantage_properties_and_errors() -> None:
    g = torch.Generator().manual_seed(0)
    r = torch.rand(12, generator=g)
    a = group_center(r, group_size=4)
    torch.testing.assert_close(a.reshape(3, 4).sum(-1), torch.zeros(3), atol=1e-6, rtol=0)
    perm = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(group_center(r[:4][perm], group_size=4), a[:4][perm])
    z = group_zscore(r, group_size=4, eps=0.0)
    torch.testing.assert_close(z.reshape(3, 4).std(-1), torch.ones(3))
    with pytest.raises(ValueError, match="group_size"):
        group_center(r, group_size=5)
    with pytest.raises(ValueError, match="group_size"):
        leave_one_out(r[:3], group_size=1)


# --------------------------------------------------------------------------------------------------
# registries
# --------------------------------------------------------------------------------------------------


def test_registries_names_and_errors() -> None:
    assert OBJECTIVES.names() == ["d1", "espo", "spg", "unigrpo", "wd1"]
    assert ADVANTAGES.names() == ["group_center", "group_zscore", "leave_one_out"]
    assert get_objective("spg") is spg_loss
    with pytest.raises(ValueError, match=r"unknown objective 'grpo'; valid names: \['d1', 'espo'"):
        get_objective("grpo")
    with pytest.raises(ValueError, match="already registered"):
        OBJECTIVES.register("spg")(lambda: None)
    reg: Registry = Registry("thing")
    reg.register("a")(len)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(len)
    with pytest.raises(ValueError, match="valid names"):
        reg.get("b")


# --------------------------------------------------------------------------------------------------
# numerical safety of the losses
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["completion_tokens", "max_length", "sequences"])
def test_losses_finite_on_all_padding_batch(norm: str) -> None:
    B, L = 2, 4
    cm = torch.zeros(B, L, dtype=torch.bool)
    logp = torch.full((B, L), -50.0, requires_grad=True)
    A = torch.tensor([1.0, -1.0])
    zeros = torch.zeros(B, L, dtype=torch.bool)
    losses = [
        spg_loss(logp.sum(-1), logp.sum(-1), A, cm, loss_norm=norm)[0],
        d1_loss(logp, A, cm, ref_logp=torch.zeros(B, L), kl_beta=0.04)[0],
        wd1_loss(logp, A, cm)[0],
        unigrpo_loss(logp, A, zeros, kl_beta=0.01)[0],
        espo_loss(logp.sum(-1), A, gen_length=L, ref_elbo=torch.zeros(B), kl_beta=1e-3)[0],
    ]
    for loss in losses:
        (grad,) = torch.autograd.grad(loss, logp, allow_unused=True, materialize_grads=True)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
