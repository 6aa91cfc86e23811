"""The trainer runs whatever the method registry holds: a toy method registered here trains; the faithful
mask-seed policies (per-slot seed arrays, ESPO's per-sample seeds) and train-mode rollouts match the official
trainers; progress lines appear when stderr is not a terminal."""

from __future__ import annotations

import itertools

import torch

from spg_lib.algos import AlgoConfig, Estimate, MethodSpec, register_method
from spg_lib.models import build_tiny_tokenizer, init_tiny_model
from spg_lib.training.run import wrap_lora
from spg_lib.training.trainer import Trainer
from tests.training.helpers import EXAMPLES, METHODS, OnesTask, small_config


def _toy_estimate(logprobs, mb, algo, *, mask_id, generator, inner_iteration=0):
    """Sequence log-likelihood under a fully masked completion (prompt clean): [B]."""
    noisy = mb.ids.unsqueeze(1).clone()  # [B, 1, T]
    noisy[..., mb.prompt_len:] = mask_id
    logp = logprobs(noisy)[:, 0]  # [B, L]
    return Estimate(torch.where(mb.completion_mask, logp, 0.0).sum(-1))


def _toy_loss(est, mb, algo, *, old=None, ref=None):
    loss = -(mb.advantages * est.value).mean() / algo.gen_length
    return loss, {"toy/loss": float(loss.detach())}


register_method(MethodSpec("toy-reinforce", _toy_estimate, _toy_loss,
                           step_metrics=lambda est: {"toy/seq_logp": float(est.value.detach().mean())}))


def _trainer(cfg, seed=0):
    return Trainer(cfg, wrap_lora(init_tiny_model(seed=seed), cfg.lora), build_tiny_tokenizer(), EXAMPLES, OnesTask())


def _algo(**kw) -> AlgoConfig:
    return AlgoConfig(gen_length=16, block_length=8, **kw)


def _fingerprint(gen: torch.Generator) -> tuple[float, ...]:
    return tuple(torch.rand(3, generator=gen).tolist())


def test_a_method_registered_outside_the_package_trains(tmp_path) -> None:
    tr = _trainer(small_config(out_dir=str(tmp_path), max_steps=1, algo=_algo(name="toy-reinforce", num_mc=1,
                                                                               num_iterations=1)))
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters() if p.requires_grad}
    history = tr.train(progress=False)
    assert len(history) == 1 and {"toy/loss", "toy/seq_logp", "reward/mean"} <= set(history[0])
    assert any(not torch.equal(before[n], p) for n, p in tr.model.named_parameters() if p.requires_grad)


def test_faithful_spg_seeds_one_array_per_slot(tmp_path) -> None:
    """G = 4 > μ = 2: the official trainer draws μ seeds per micro-batch slot and reads seed (counter + 1) mod μ,
    so slots j ≡ j′ (mod μ) use the same index but different arrays, hence different masks."""
    mu, G = 2, 4
    tr = _trainer(small_config(out_dir=str(tmp_path), grad_accum=G, algo=_algo(mode="faithful", num_iterations=mu)))
    assert (tr.cfg.algo.mask_seed_layout, tr.cfg.algo.seed_index_mode) == ("slot", "legacy_modulo")
    prints = {}
    for n, j in itertools.product(range(mu), range(G)):
        counter = n * G + j  # micro-batches before this one, consumed in order
        prints[n, j] = _fingerprint(tr._mask_gen(n, j, counter))
    for (n, j), (n2, j2) in itertools.combinations(prints, 2):
        same_index = (n * G + j + 1) % mu == (n2 * G + j2 + 1) % mu  # the official index, after the increment
        assert (prints[n, j] == prints[n2, j2]) == (j == j2 and same_index), ((n, j), (n2, j2))
    # the previous faithful behaviour (one array per rollout) gave slots 0 and 2 identical masks
    shared = _trainer(small_config(out_dir=str(tmp_path / "r"), grad_accum=G,
                                   algo=_algo(mode="faithful", num_iterations=mu, mask_seed_layout="rollout")))
    assert _fingerprint(shared._mask_gen(0, 0, 0)) == _fingerprint(shared._mask_gen(0, 2, 2))


def test_faithful_espo_seeds_per_slot_iteration_and_sample(tmp_path) -> None:
    """The official ESPO trainer: seeds [G, μ, num_mc] per rollout, iteration index ((c − 1) mod μG) div G with
    the micro-step counter c after its increment: every (slot, iteration, MC sample) has its own seed."""
    mu, G, m = 4, 2, 2
    algo = _algo(mode="faithful", num_iterations=mu, num_mc=m, **METHODS["espo"])
    tr = _trainer(small_config("espo", out_dir=str(tmp_path), grad_accum=G, algo=algo))
    seen = {}
    for c in range(1, mu * G + 1):  # counter after the increment, as the official trainer reads it
        j, itr = (c - 1) % G, ((c - 1) % (mu * G)) // G
        gens = tr._mask_gen(itr, j, c - 1)
        assert isinstance(gens, list) and len(gens) == m
        for s, g in enumerate(gens):
            seen[j, itr, s] = _fingerprint(g)
    assert len(set(seen.values())) == mu * G * m  # 16 distinct streams (SPG's aliasing gave each slot 2)


def test_faithful_rollouts_run_in_train_mode_fixed_in_eval_mode(tmp_path) -> None:
    for mode, want in (("faithful", True), ("fixed", False)):
        cfg = small_config("d1", out_dir=str(tmp_path / mode), algo=_algo(mode=mode, num_iterations=2,
                                                                            **METHODS["d1"]))
        tr = _trainer(cfg)
        policy = tr.acc.unwrap_model(tr.model)
        flags: list[bool] = []

        def record(mod, args, flags=flags):
            flags.append(mod.training)

        hooks = [mod.register_forward_pre_hook(record) for mod in policy.modules() if isinstance(mod, torch.nn.Linear)]
        ro = tr.make_rollout()  # generation + old estimates (d1, μ = 2)
        for h in hooks:
            h.remove()
        assert ro.old is not None and flags and set(flags) == {want}, mode
        assert "eval" not in vars(policy)  # the sampler's eval() is restored


def test_progress_lines_when_not_on_a_terminal(tmp_path, capsys) -> None:
    tr = _trainer(small_config(out_dir=str(tmp_path), max_steps=2))
    tr.train(progress=True)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("spg ones: step")]
    assert len(lines) == 2 and lines[-1].startswith("spg ones: step 2/2 (100%) | reward ")
    assert " | loss " in lines[0] and " | elapsed " in lines[0] and " | left " in lines[0]


def test_faithful_runs_train_end_to_end(tmp_path) -> None:
    for method in ("spg-mix", "espo"):
        algo = _algo(mode="faithful", num_iterations=2, **METHODS[method])
        history = _trainer(small_config(method, out_dir=str(tmp_path / method), algo=algo)).train(progress=False)
        name = METHODS[method]["name"]
        assert len(history) == 2 and all(torch.isfinite(torch.tensor(r[f"{name}/loss"])) for r in history)
