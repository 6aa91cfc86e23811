"""Composition of the pure algorithm functions into one method's loss on a rollout micro-batch.

    est = estimate(model, mb, algo, generator=g, inner_iteration=n)       # method's likelihood quantity
    loss, metrics = method_loss(est, mb, algo, old=..., ref=...)

``estimate`` draws the method's forward process from ``generator`` and runs ONE forward pass over all
Monte-Carlo samples; calling it twice with equally seeded generators gives the same masks, which is how
old / reference quantities (D1, UniGRPO, ESPO) are paired with the current ones (§2.4, §5). Shapes:
B rows of the micro-batch, P prompt length (left-padded), L completion length, T = P + L, m MC samples.
"""

from __future__ import annotations

import dataclasses

import torch

from spg_lib.algos import (
    AlgoConfig,
    bound_mask,
    completion_token_logprobs,
    elbo_estimate,
    espo_coupled_elbo,
    eubo_estimate,
    forward_espo,
    forward_process,
    forward_structured,
    get_objective,
    one_step_token_logp,
)


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
    """The method's likelihood quantity: ``value`` is [B] (spg elbo, espo elbo) or [B, L] (token log-probs)."""

    value: torch.Tensor
    eubo: torch.Tensor | None = None  # [B], SPG only
    masked: torch.Tensor | None = None  # [B, L], UniGRPO only


def _token_logprobs(model, noisy: torch.Tensor, mb: MicroBatch, chunk_size: int) -> torch.Tensor:
    """noisy [B, m, T] -> log π(x_k | noisy) [B, m, L] in one forward pass over B·m sequences."""
    B, m, T = noisy.shape
    flat = noisy.reshape(B * m, T)
    att = mb.attention_mask.repeat_interleave(m, dim=0)
    tgt = mb.targets.repeat_interleave(m, dim=0)
    logp = completion_token_logprobs(model, flat, att, tgt, mb.prompt_len, chunk_size=chunk_size)  # [B·m, L]
    return logp.reshape(B, m, -1)


def estimate(model, mb: MicroBatch, algo: AlgoConfig, *, mask_id: int, generator: torch.Generator,
             inner_iteration: int = 0, chunk_size: int = 256) -> Estimate:
    """The likelihood estimate of ``algo.name`` for micro-batch ``mb`` (masks drawn from ``generator``)."""
    common = dict(prompt_len=mb.prompt_len, mask_id=mask_id, generator=generator)
    if algo.name == "spg":
        nb = forward_process(algo.forward_type, mb.ids, mb.completion_mask, num_mc=algo.num_mc,
                             block_length=algo.block_length, min_t=algo.min_t, max_t=algo.max_t,
                             p_mask_prompt=algo.p_mask_prompt, use_mask_prompt=algo.use_mask_prompt, **common)
        logp = _token_logprobs(model, nb.noisy, mb, chunk_size)  # [B, m, L]
        masked = bound_mask(nb.noisy, mb.completion_mask, prompt_len=mb.prompt_len, mask_id=mask_id,
                            block_mask=nb.block_mask, include_later_blocks=algo.include_later_blocks_in_bounds)
        elbo = elbo_estimate(logp, masked, mb.completion_mask)
        need_eubo = algo.neg_estimator in ("eubo", "mix")
        eubo = (eubo_estimate(logp, masked, mb.completion_mask, beta=algo.eubo_beta,
                              drop_unmasked_tokens=algo.eubo_drop_unmasked_tokens)
                if need_eubo else torch.zeros_like(elbo))
        return Estimate(elbo, eubo=eubo)
    if algo.name in ("d1", "wd1"):
        nb = forward_process("all", mb.ids, mb.completion_mask, num_mc=1, p_mask_prompt=algo.p_mask_prompt,
                             use_mask_prompt=True, **common)  # D1 always masks the prompt (§2.1)
        logp = _token_logprobs(model, nb.noisy, mb, chunk_size)  # [B, 1, L]
        return Estimate(one_step_token_logp(logp, mb.completion_mask))  # [B, L]
    if algo.name == "unigrpo":
        nb = forward_structured(mb.ids, mb.completion_mask, start_ratio=mb.start_ratio,
                                inner_iteration=inner_iteration, num_iterations=algo.num_iterations,
                                num_steps=algo.unigrpo_num_steps, **common)
        logp = _token_logprobs(model, nb.noisy, mb, chunk_size)[:, 0]  # [B, L]
        masked = bound_mask(nb.noisy, mb.completion_mask, prompt_len=mb.prompt_len, mask_id=mask_id)[:, 0]
        return Estimate(logp, masked=masked)
    if algo.name == "espo":
        nb, t = forward_espo(mb.ids, num_mc=algo.num_mc, coupled=True, **common)
        logp = _token_logprobs(model, nb.noisy, mb, chunk_size)  # [B, m', L]
        masked = nb.noisy[..., mb.prompt_len:] == mask_id  # ESPO: no completion mask (§10 item 24)
        return Estimate(espo_coupled_elbo(logp, masked, t))
    raise ValueError(f"unknown method {algo.name!r}")


def method_loss(est: Estimate, mb: MicroBatch, algo: AlgoConfig, *, old: Estimate | None = None,
                ref: Estimate | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The registered objective of ``algo.name`` applied to the current (and old / reference) estimates."""
    fn = get_objective(algo.name)
    adv = mb.advantages
    if algo.name == "spg":
        return fn(est.value, est.eubo, adv, mb.completion_mask, neg_estimator=algo.neg_estimator,
                  mix_weight=algo.mix_weight, loss_norm=algo.loss_norm)
    if algo.name == "d1":
        return fn(est.value, adv, mb.completion_mask, old_logp=old.value if old else None,
                  ref_logp=ref.value if ref else None, clip_eps=algo.clip_eps, kl_beta=algo.kl_beta)
    if algo.name == "wd1":
        return fn(est.value, adv, mb.completion_mask)
    if algo.name == "unigrpo":
        return fn(est.value, adv, est.masked, old_logp=old.value if old else None, clip_eps=algo.clip_eps,
                  kl_beta=algo.kl_beta)
    if algo.name == "espo":
        return fn(est.value, adv, old_elbo=old.value if old else None, ref_elbo=ref.value if ref else None,
                  gen_length=algo.gen_length, clip_eps=algo.clip_eps, clip_eps_high=algo.clip_eps_high,
                  kl_beta=algo.kl_beta)
    raise ValueError(f"unknown method {algo.name!r}")


def needs_old(algo: AlgoConfig) -> bool:
    """Methods with an importance ratio need rollout-time log-probs (when μ > 1; μ = 1 uses detached current)."""
    return algo.name in ("d1", "unigrpo", "espo") and algo.num_iterations > 1


def needs_ref(algo: AlgoConfig) -> bool:
    """A KL to the base model needs reference estimates (UniGRPO's KL is against the old policy)."""
    return algo.name in ("d1", "espo") and algo.kl_beta != 0.0
