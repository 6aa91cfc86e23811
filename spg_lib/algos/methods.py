"""RL methods as registered specs: everything the trainer and the config need to know about one method.

    spec = METHODS.get(algo.name)
    est = spec.estimate(logprobs, mb, algo, mask_id=mask_id, generator=g, inner_iteration=n)
    loss, metrics = spec.loss(est, mb, algo, old=old_est, ref=ref_est)

A ``MethodSpec`` holds the method's likelihood estimator (draw its forward process, one call of ``logprobs``
over all Monte-Carlo samples, reduce to the quantity its loss reads), its loss (a pure objective of
``objectives`` fed with the config's scalars), whether it needs old / reference estimates, the negative
estimators it accepts, the official trainer's mask-seed policy (what ``mode: faithful`` resolves), the figures
it logs per micro-batch and its own config rules. Adding a method = building one spec and calling
``register_method(spec)`` (from any module, e.g. a ``train.plugins`` module): the trainer, the estimate/loss
composition and ``AlgoConfig`` validation read the registry and name no method.

Model-free: ``logprobs`` is a callable noisy [B, m, T] -> log π(x_k | noisy) [B, m, L] built by the caller
from its model (``spg_lib.training.objective``); estimates made twice from equally seeded generators use the
same masks, which is how old / reference quantities pair with the current ones.

References: SPG (arXiv:2510.09541, Algorithm 1, Eq. 5–8); d1 (arXiv:2504.12216); wd1 (arXiv:2507.08838);
MMaDA / UniGRPO (arXiv:2505.15809); ESPO (arXiv:2512.03759). Dimension letters: B rows of the micro-batch,
P prompt length (left padded), L completion length, T = P + L, m MC samples.

Test: ``pytest tests/algos/test_methods.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import torch

from spg_lib.algos.likelihood import (
    elbo_estimate,
    espo_coupled_elbo,
    eubo_estimate,
    one_step_token_logp,
    uses_eubo,
)
from spg_lib.algos.masking import (
    SeedIndexMode,
    SeedLayout,
    bound_mask,
    forward_espo,
    forward_process,
    forward_structured,
)
from spg_lib.algos.objectives import d1_loss, espo_loss, spg_loss, unigrpo_loss, wd1_loss
from spg_lib.algos.registry import METHODS

if TYPE_CHECKING:
    from spg_lib.algos.config import AlgoConfig

LogProbs = Callable[[torch.Tensor], torch.Tensor]  # noisy [B, m, T] -> log π(x_k | noisy) [B, m, L]
Generators = torch.Generator | Sequence[torch.Generator]  # one generator, or one per Monte-Carlo draw


@dataclasses.dataclass
class MicroBatch:
    """One micro-batch of a rollout.

    Attributes:
        ids: LongTensor [B, T] = [left-padded prompt | completion]; attention_mask: LongTensor [B, T];
        prompt_len: P; completion_mask: BoolTensor [B, L]; advantages: FloatTensor [B];
        start_ratio: FloatTensor [B] (UniGRPO r₁, drawn once per rollout).
    """

    ids: torch.Tensor
    attention_mask: torch.Tensor
    prompt_len: int
    completion_mask: torch.Tensor
    advantages: torch.Tensor
    start_ratio: torch.Tensor

    @property
    def targets(self) -> torch.Tensor:
        return self.ids[:, self.prompt_len:]


@dataclasses.dataclass
class Estimate:
    """A method's likelihood quantity: ``value`` is [B] (SPG ELBO, ESPO coupled ELBO) or [B, L] (token log-probs)."""

    value: torch.Tensor
    eubo: torch.Tensor | None = None  # [B], SPG only
    masked: torch.Tensor | None = None  # [B, L], UniGRPO only


@dataclasses.dataclass(frozen=True)
class SeedPolicy:
    """How the official trainer of a method picks mask seeds (what ``mode: faithful`` resolves).

    ``index_mode``: which of the μ seeds micro-batch j of inner iteration n uses (``masking.mask_seed_index``).
    ``layout``: how many seed arrays a rollout draws (``masking.SeedLayout``).
    """

    index_mode: SeedIndexMode
    layout: SeedLayout


#: the SPG repository's trainer (SPG, D1, WD1 and the UniGRPO re-implementation): (counter + 1) mod μ into one
#: μ-seed array per micro-batch slot, all MC samples from one seed
SPG_REPO_SEEDS = SeedPolicy("legacy_modulo", "slot")
#: the ESPO trainer: inner iteration n uses seed n, an independent seed per (slot, iteration, MC sample)
ESPO_REPO_SEEDS = SeedPolicy("per_iteration", "slot_sample")


def _never(algo: AlgoConfig) -> bool:
    return False


def _no_metrics(est: Estimate) -> dict[str, float]:
    return {}


def _no_problems(algo: AlgoConfig) -> Iterable[tuple[str, str]]:
    return ()


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """One RL method, as the trainer and ``AlgoConfig`` see it.

    Attributes:
        name: the ``algo.name`` that selects it.
        estimate: ``(logprobs, mb, algo, *, mask_id, generator, inner_iteration) -> Estimate``; draws every mask
            from ``generator`` (a torch.Generator, or one per MC draw when ``per_sample_seeds``).
        loss: ``(est, mb, algo, *, old, ref) -> (scalar loss, metrics)``; old / ref are Estimates or None.
        needs_old: ``algo -> bool``: the loss reads rollout-time estimates (``old``).
        needs_ref: ``algo -> bool``: the loss reads reference-model estimates (``ref``, LoRA adapter disabled).
        neg_estimators: the ``algo.neg_estimator`` values it accepts (None: every registered one).
        faithful_seeds: its official trainer's mask-seed policy, resolved under ``mode: faithful``.
        per_sample_seeds: ``estimate`` accepts one generator per MC draw (seed layout ``slot_sample``).
        step_metrics: ``est -> {key: float}``, extra figures logged per step (averaged over micro-batches).
        check: ``algo -> [(field, why), ...]``, the method's own config rules (e.g. SPG has no KL term).
    """

    name: str
    estimate: Callable[..., Estimate]
    loss: Callable[..., tuple[torch.Tensor, dict[str, float]]]
    needs_old: Callable[[AlgoConfig], bool] = _never
    needs_ref: Callable[[AlgoConfig], bool] = _never
    neg_estimators: tuple[str, ...] | None = None
    faithful_seeds: SeedPolicy = SPG_REPO_SEEDS
    per_sample_seeds: bool = False
    step_metrics: Callable[[Estimate], dict[str, float]] = _no_metrics
    check: Callable[[AlgoConfig], Iterable[tuple[str, str]]] = _no_problems


def register_method(spec: MethodSpec) -> MethodSpec:
    """Register ``spec`` under ``spec.name`` (a second registration of the name raises ValueError)."""
    return METHODS.register(spec.name)(spec)


def get_method(name: str) -> MethodSpec:
    """The spec registered under ``name``; unknown names raise ValueError listing the valid ones."""
    return METHODS.get(name)


def _one_generator(generator: Generators) -> torch.Generator:
    """The single generator of a method that draws all its MC samples at once."""
    if isinstance(generator, torch.Generator):
        return generator
    gens = list(generator)
    if len(gens) != 1:
        raise ValueError(f"this method draws every MC sample from one generator, got {len(gens)}")
    return gens[0]


# --------------------------------------------------------------------------------------------------
# SPG (sandwiched ELBO / EUBO)
# --------------------------------------------------------------------------------------------------


def _spg_estimate(logprobs: LogProbs, mb: MicroBatch, algo: AlgoConfig, *, mask_id: int, generator: Generators,
                  inner_iteration: int = 0) -> Estimate:
    nb = forward_process(algo.forward_type, mb.ids, mb.completion_mask, num_mc=algo.num_mc,
                         block_length=algo.block_length, min_t=algo.min_t, max_t=algo.max_t,
                         p_mask_prompt=algo.p_mask_prompt, use_mask_prompt=algo.use_mask_prompt,
                         prompt_len=mb.prompt_len, mask_id=mask_id, generator=_one_generator(generator))
    logp = logprobs(nb.noisy)  # [B, m, L]
    masked = bound_mask(nb.noisy, mb.completion_mask, prompt_len=mb.prompt_len, mask_id=mask_id,
                        block_mask=nb.block_mask, include_later_blocks=algo.include_later_blocks_in_bounds)
    elbo = elbo_estimate(logp, masked, mb.completion_mask)  # [B]
    eubo = (eubo_estimate(logp, masked, mb.completion_mask, beta=algo.eubo_beta,
                          drop_unmasked_tokens=algo.eubo_drop_unmasked_tokens,
                          drop_underflow=algo.eubo_drop_underflow)
            if uses_eubo(algo.neg_estimator) else torch.zeros_like(elbo))  # [B]
    return Estimate(elbo, eubo=eubo)


def _spg_loss(est: Estimate, mb: MicroBatch, algo: AlgoConfig, *, old: Estimate | None = None,
              ref: Estimate | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    return spg_loss(est.value, est.eubo, mb.advantages, mb.completion_mask, neg_estimator=algo.neg_estimator,
                    mix_weight=algo.mix_weight, loss_norm=algo.loss_norm)


def _spg_check(algo: AlgoConfig) -> Iterable[tuple[str, str]]:
    if algo.kl_beta != 0.0:
        yield "kl_beta", "SPG has no KL term and no reference model; set kl_beta 0.0"


# --------------------------------------------------------------------------------------------------
# D1 / WD1 (one-step estimator), UniGRPO (structured noising), ESPO (coupled ELBO)
# --------------------------------------------------------------------------------------------------


def _one_step_estimate(logprobs: LogProbs, mb: MicroBatch, algo: AlgoConfig, *, mask_id: int,
                       generator: Generators, inner_iteration: int = 0) -> Estimate:
    nb = forward_process("all", mb.ids, mb.completion_mask, num_mc=1, p_mask_prompt=algo.p_mask_prompt,
                         use_mask_prompt=True, prompt_len=mb.prompt_len, mask_id=mask_id,
                         generator=_one_generator(generator))  # D1 always masks the prompt
    return Estimate(one_step_token_logp(logprobs(nb.noisy), mb.completion_mask))  # [B, L]


def _d1_loss(est: Estimate, mb: MicroBatch, algo: AlgoConfig, *, old: Estimate | None = None,
             ref: Estimate | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    return d1_loss(est.value, mb.advantages, mb.completion_mask, old_logp=old.value if old else None,
                   ref_logp=ref.value if ref else None, clip_eps=algo.clip_eps, kl_beta=algo.kl_beta)


def _wd1_loss(est: Estimate, mb: MicroBatch, algo: AlgoConfig, *, old: Estimate | None = None,
              ref: Estimate | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    return wd1_loss(est.value, mb.advantages, mb.completion_mask)


def _unigrpo_estimate(logprobs: LogProbs, mb: MicroBatch, algo: AlgoConfig, *, mask_id: int,
                      generator: Generators, inner_iteration: int = 0) -> Estimate:
    nb = forward_structured(mb.ids, mb.completion_mask, start_ratio=mb.start_ratio, inner_iteration=inner_iteration,
                            num_iterations=algo.num_iterations, num_steps=algo.unigrpo_num_steps,
                            prompt_len=mb.prompt_len, mask_id=mask_id, generator=_one_generator(generator))
    logp = logprobs(nb.noisy)[:, 0]  # [B, L]
    masked = bound_mask(nb.noisy, mb.completion_mask, prompt_len=mb.prompt_len, mask_id=mask_id)[:, 0]  # [B, L]
    return Estimate(logp, masked=masked)


def _unigrpo_loss(est: Estimate, mb: MicroBatch, algo: AlgoConfig, *, old: Estimate | None = None,
                  ref: Estimate | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    return unigrpo_loss(est.value, mb.advantages, est.masked, old_logp=old.value if old else None,
                        clip_eps=algo.clip_eps, kl_beta=algo.kl_beta)


def _espo_estimate(logprobs: LogProbs, mb: MicroBatch, algo: AlgoConfig, *, mask_id: int, generator: Generators,
                   inner_iteration: int = 0) -> Estimate:
    nb, t = forward_espo(mb.ids, num_mc=algo.num_mc, coupled=True, prompt_len=mb.prompt_len, mask_id=mask_id,
                         generator=generator)  # t [B, m']
    logp = logprobs(nb.noisy)  # [B, m', L]
    masked = nb.noisy[..., mb.prompt_len:] == mask_id  # [B, m', L]; ESPO reads no completion mask
    return Estimate(espo_coupled_elbo(logp, masked, t))  # [B]


def _espo_loss(est: Estimate, mb: MicroBatch, algo: AlgoConfig, *, old: Estimate | None = None,
               ref: Estimate | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    return espo_loss(est.value, mb.advantages, old_elbo=old.value if old else None,
                     ref_elbo=ref.value if ref else None, gen_length=algo.gen_length, clip_eps=algo.clip_eps,
                     clip_eps_high=algo.clip_eps_high, kl_beta=algo.kl_beta)


def _ratio_needs_old(algo: AlgoConfig) -> bool:
    """An importance ratio reads rollout-time estimates when μ > 1 (μ = 1 uses the detached current ones)."""
    return algo.num_iterations > 1


def _kl_needs_ref(algo: AlgoConfig) -> bool:
    return algo.kl_beta != 0.0


def _espo_metrics(est: Estimate) -> dict[str, float]:
    return {"espo/elbo": float(est.value.detach().float().mean())}


register_method(MethodSpec("spg", _spg_estimate, _spg_loss, check=_spg_check))
register_method(MethodSpec("d1", _one_step_estimate, _d1_loss, needs_old=_ratio_needs_old, needs_ref=_kl_needs_ref))
register_method(MethodSpec("wd1", _one_step_estimate, _wd1_loss))
# UniGRPO's KL is against the old policy (rollout-time log-probs), not a reference model
register_method(MethodSpec("unigrpo", _unigrpo_estimate, _unigrpo_loss, needs_old=_ratio_needs_old))
register_method(MethodSpec("espo", _espo_estimate, _espo_loss, needs_old=_ratio_needs_old, needs_ref=_kl_needs_ref,
                           faithful_seeds=ESPO_REPO_SEEDS, per_sample_seeds=True, step_metrics=_espo_metrics))
