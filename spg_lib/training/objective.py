"""A registered method's estimate and loss on a rollout micro-batch, with the model's log-probs plugged in.

    est = estimate(model, mb, algo, mask_id=m, generator=g, inner_iteration=n)   # the method's likelihood quantity
    loss, metrics = method_loss(est, mb, algo, old=..., ref=...)

Which method runs is ``algo.name``, looked up in ``spg_lib.algos.registry.METHODS``; this module only turns the
model into the ``logprobs`` callable the method specs take (one forward pass over all Monte-Carlo samples).
Calling ``estimate`` twice with equally seeded generators gives the same masks, which is how old / reference
quantities (D1, UniGRPO, ESPO) are paired with the current ones. Shapes: B rows of the micro-batch, P prompt
length (left padded), L completion length, T = P + L, m MC samples, N = B·m.
"""

from __future__ import annotations

import torch

from spg_lib.algos import AlgoConfig, Estimate, MicroBatch, get_method, target_logprobs_from_hidden
from spg_lib.algos.likelihood import target_logprobs_from_logits
from spg_lib.algos.methods import Generators, LogProbs
from spg_lib.models.capabilities import probe

__all__ = ["Estimate", "MicroBatch", "completion_token_logprobs", "estimate", "method_loss", "model_logprobs",
           "needs_old", "needs_ref"]


def completion_token_logprobs(
    model: torch.nn.Module, noisy_ids: torch.Tensor, attention_mask: torch.Tensor | None, targets: torch.Tensor,
    prompt_len: int, chunk_size: int = 256, needed: torch.Tensor | None = None,
) -> torch.Tensor:
    """One forward pass on the noisy batch → log π(x_k | noisy) for the completion slice.

    Uses the model's trunk + plain linear head when ``probe`` finds one (chunked head, no [N, T, V] logits);
    else ``model(..., logits_range=(P, T))`` when the forward accepts it; else full ``model(...).logits`` sliced
    to the completion.

    Args:
        model: a masked diffusion LM. noisy_ids: LongTensor [N, T]; attention_mask: [N, T] (1 real, 0 padding)
        or None. targets: LongTensor [N, L], clean completion ids. prompt_len: P = T − L.
        chunk_size: positions per head chunk. needed: optional BoolTensor [N, L] (see
            ``target_logprobs_from_hidden``; ignored on the logits paths).
    Returns:
        FloatTensor [N, L].
    """
    T = noisy_ids.shape[1]
    if prompt_len + targets.shape[1] != T:
        raise ValueError(f"prompt_len ({prompt_len}) + targets length ({targets.shape[1]}) != T ({T})")
    caps = probe(model)
    head = caps.linear_head
    if head is not None:
        hidden = model.hidden_states(noisy_ids, attention_mask=attention_mask)[:, prompt_len:]  # [N, L, D]
        return target_logprobs_from_hidden(hidden, head.weight, targets, bias=head.bias, chunk_size=chunk_size,
                                           needed=needed)
    if caps.logits_range:
        logits = model(noisy_ids, attention_mask=attention_mask, logits_range=(prompt_len, T)).logits  # [N, L, V]
    else:
        logits = model(noisy_ids, attention_mask=attention_mask).logits[:, prompt_len:]  # [N, L, V]
    return target_logprobs_from_logits(logits, targets, chunk_size=chunk_size)


def model_logprobs(model: torch.nn.Module, mb: MicroBatch, chunk_size: int = 256) -> LogProbs:
    """The ``logprobs`` callable of the method specs: noisy [B, m, T] -> log π(x_k | noisy) [B, m, L]."""

    def logprobs(noisy: torch.Tensor) -> torch.Tensor:
        B, m, T = noisy.shape
        att = mb.attention_mask.repeat_interleave(m, dim=0)  # [N, T]
        tgt = mb.targets.repeat_interleave(m, dim=0)  # [N, L]
        logp = completion_token_logprobs(model, noisy.reshape(B * m, T), att, tgt, mb.prompt_len,
                                         chunk_size=chunk_size)  # [N, L]
        return logp.reshape(B, m, -1)

    return logprobs


def estimate(model: torch.nn.Module, mb: MicroBatch, algo: AlgoConfig, *, mask_id: int, generator: Generators,
             inner_iteration: int = 0, chunk_size: int = 256) -> Estimate:
    """The likelihood estimate of method ``algo.name`` for ``mb`` (masks drawn from ``generator``)."""
    return get_method(algo.name).estimate(model_logprobs(model, mb, chunk_size), mb, algo, mask_id=mask_id,
                                          generator=generator, inner_iteration=inner_iteration)


def method_loss(est: Estimate, mb: MicroBatch, algo: AlgoConfig, *, old: Estimate | None = None,
                ref: Estimate | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of method ``algo.name`` on the current (and old / reference) estimates, plus its metrics."""
    spec = get_method(algo.name)
    loss, metrics = spec.loss(est, mb, algo, old=old, ref=ref)
    return loss, {**metrics, **spec.step_metrics(est)}


def needs_old(algo: AlgoConfig) -> bool:
    """Whether the method's loss reads rollout-time estimates."""
    return get_method(algo.name).needs_old(algo)


def needs_ref(algo: AlgoConfig) -> bool:
    """Whether the method's loss reads reference-model estimates."""
    return get_method(algo.name).needs_ref(algo)
