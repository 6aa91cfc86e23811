"""spg_lib.algos.methods: the registered method specs drive AlgoConfig validation, mode resolution and the
estimate/loss composition; a spec registered from outside the package is accepted like a built-in one."""

from __future__ import annotations

import pytest
import torch

from spg_lib.algos import METHODS, AlgoConfig, Estimate, MethodSpec, MicroBatch, get_method, register_method
from spg_lib.algos.masking import forward_espo
from spg_lib.algos.methods import ESPO_REPO_SEEDS, SPG_REPO_SEEDS, SeedPolicy


def _toy_estimate(logprobs, mb, algo, *, mask_id, generator, inner_iteration=0):
    noisy = mb.ids.unsqueeze(1).clone()  # [B, 1, T]
    noisy[..., mb.prompt_len:] = mask_id
    return Estimate(logprobs(noisy)[:, 0].sum(-1))  # [B]


def _toy_loss(est, mb, algo, *, old=None, ref=None):
    loss = -(mb.advantages * est.value).mean()
    return loss, {"toy/loss": float(loss.detach())}


def _toy_check(algo):
    if algo.num_mc != 1:
        yield "num_mc", "the toy method reads one sample"


TOY = register_method(MethodSpec("toy-config", _toy_estimate, _toy_loss, neg_estimators=("elbo",),
                                 faithful_seeds=SeedPolicy("per_iteration", "slot"), check=_toy_check,
                                 step_metrics=lambda est: {"toy/value": float(est.value.mean())}))


def test_builtin_methods_are_registered_with_their_official_seed_policies() -> None:
    assert {"spg", "d1", "wd1", "unigrpo", "espo"} <= set(METHODS.names())
    for name in ("spg", "d1", "wd1", "unigrpo"):
        assert get_method(name).faithful_seeds == SPG_REPO_SEEDS
    assert get_method("espo").faithful_seeds == ESPO_REPO_SEEDS and get_method("espo").per_sample_seeds


def test_config_validation_reads_the_registry() -> None:
    cfg = AlgoConfig(name="toy-config", neg_estimator="elbo", num_mc=1)
    assert cfg.name == "toy-config"
    with pytest.raises(ValueError, match=r"algo\.neg_estimator: .*'toy-config'.*\['elbo'\]"):
        AlgoConfig(name="toy-config", neg_estimator="mix", num_mc=1)
    with pytest.raises(ValueError, match=r"algo\.num_mc: the toy method reads one sample"):
        AlgoConfig(name="toy-config", neg_estimator="elbo", num_mc=2)
    with pytest.raises(ValueError, match=r"algo\.name: unknown method; valid: \[.*'toy-config'.*\]"):
        AlgoConfig(name="grpo")
    with pytest.raises(ValueError, match="already registered"):
        register_method(TOY)


def test_faithful_seed_flags_come_from_the_method_and_explicit_values_win() -> None:
    spg = AlgoConfig(mode="faithful")
    assert (spg.seed_index_mode, spg.mask_seed_layout) == ("legacy_modulo", "slot")
    espo = AlgoConfig(mode="faithful", name="espo", advantage="leave_one_out", clip_eps=0.2)
    assert (espo.seed_index_mode, espo.mask_seed_layout) == ("per_iteration", "slot_sample")
    toy = AlgoConfig(mode="faithful", name="toy-config", neg_estimator="elbo", num_mc=1)
    assert (toy.seed_index_mode, toy.mask_seed_layout) == ("per_iteration", "slot")
    fixed = AlgoConfig(name="espo", advantage="leave_one_out")
    assert (fixed.seed_index_mode, fixed.mask_seed_layout, fixed.rollout_train_mode, fixed.eubo_drop_underflow) == (
        "per_iteration", "rollout", False, False)
    assert AlgoConfig(mode="faithful", name="espo", mask_seed_layout="rollout").mask_seed_layout == "rollout"
    with pytest.raises(ValueError, match=r"algo\.mask_seed_layout: method 'spg' draws every MC sample"):
        AlgoConfig(mask_seed_layout="slot_sample")


@pytest.mark.parametrize(
    ("overrides", "old", "ref"),
    [
        ({"name": "spg"}, False, False),
        ({"name": "wd1", "forward_type": "all", "num_mc": 1}, False, False),
        ({"name": "d1", "forward_type": "all", "num_mc": 1, "kl_beta": 0.04}, True, True),
        ({"name": "d1", "forward_type": "all", "num_mc": 1, "kl_beta": 0.04, "num_iterations": 1}, False, True),
        ({"name": "unigrpo", "forward_type": "all", "num_mc": 1, "kl_beta": 0.01}, True, False),
        ({"name": "espo", "kl_beta": 0.0}, True, False),
        ({"name": "espo", "kl_beta": 1e-3}, True, True),
    ],
)
def test_needs_old_and_ref(overrides: dict, old: bool, ref: bool) -> None:
    algo = AlgoConfig(**overrides)
    spec = get_method(algo.name)
    assert (spec.needs_old(algo), spec.needs_ref(algo)) == (old, ref)


def _batch(B: int = 2, P: int = 3, L: int = 4) -> MicroBatch:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 9, (B, P + L), generator=g)
    return MicroBatch(ids, torch.ones(B, P + L, dtype=torch.long), P, torch.ones(B, L, dtype=torch.bool),
                      torch.tensor([1.0, -1.0]), torch.rand(B, generator=g))


def _fake_logprobs(noisy: torch.Tensor) -> torch.Tensor:
    """A model-free stand-in: log-probs that depend on which positions are masked. [B, m, T] -> [B, m, L]."""
    return -1.0 - (noisy[..., 3:] == 99).float() * 0.5


def test_espo_estimate_draws_each_mc_sample_from_its_own_generator() -> None:
    mb, algo = _batch(), AlgoConfig(name="espo", advantage="leave_one_out", num_mc=2, gen_length=4, block_length=2)
    gens = [torch.Generator().manual_seed(s) for s in (11, 22)]
    nb, _ = forward_espo(mb.ids, prompt_len=3, mask_id=99, num_mc=2, generator=gens)
    parts = [forward_espo(mb.ids, prompt_len=3, mask_id=99, num_mc=1, generator=torch.Generator().manual_seed(s))[0]
             for s in (11, 22)]
    assert torch.equal(nb.noisy, torch.cat([p.noisy for p in parts], dim=1))  # [draw0, compl0, draw1, compl1]
    spec = get_method("espo")
    est = spec.estimate(_fake_logprobs, mb, algo, mask_id=99, generator=[torch.Generator().manual_seed(s)
                                                                         for s in (11, 22)])
    again = spec.estimate(_fake_logprobs, mb, algo, mask_id=99,
                          generator=[torch.Generator().manual_seed(s) for s in (11, 22)])
    assert est.value.shape == (2,) and torch.equal(est.value, again.value)
    assert set(spec.step_metrics(est)) == {"espo/elbo"}
    with pytest.raises(ValueError, match="2 generators"):
        forward_espo(mb.ids, prompt_len=3, mask_id=99, num_mc=3, generator=gens)


def test_single_generator_methods_refuse_several() -> None:
    mb, algo = _batch(), AlgoConfig(gen_length=4, block_length=2)
    with pytest.raises(ValueError, match="one generator, got 2"):
        get_method("spg").estimate(_fake_logprobs, mb, algo, mask_id=99,
                                   generator=[torch.Generator(), torch.Generator()])
