"""Fast batched LLaDA block sampler: semi-autoregressive decoding with low-confidence (or random) remasking.

References: LLaDA (arXiv:2502.09992) `generate`; SPG (arXiv:2510.09541) rollout sampler; spec
/work/shared/reference/algorithms.md §1.3 and §10 items 13, 20, 23.

Algorithm (per call):
  canvas x = [prompt | [M] * L]; NB = L / K blocks, S_b = steps // NB steps per block (steps >= NB required).
  For block b (absolute positions [P + bK, P + (b+1)K)) the masks of each row are split over the S_b steps by
  :func:`num_transfer_tokens`; at every step the model sees the whole canvas (later blocks all [M]) and
    x̂ = argmax_v(logits_v / τ + g_v), g ~ Gumbel(0, 1)         (τ = 0: plain argmax, no noise drawn)
    confidence = softmax(logits)[x̂] (low_confidence, not temperature-scaled) or U[0, 1) (random)
  and the k_row most confident still-masked positions of the current block are written (k_row from the
  schedule). Only masked positions of the current block ever change; the prompt is never touched.
  CFG (cfg_scale s > 0): an unconditional copy (all prompt positions, padding included, set to [M]) runs in the
  same batch; logits = un + (s + 1) * (cond - un).

Efficiency (vs the official code, §10 item 20): the output head, noise, softmax and confidence are computed
only on the current block (``model(..., logits_range=(s, e))`` when the model supports it, else slicing the
full logits), top-k with a per-row k is a sort + rank mask (no Python loop over rows), no autograd graph is
built, and the model's train/eval mode is restored afterwards. The attention mask (prompt mask extended with
ones over the generated part) is passed so left-padded batches decode as each row would alone (§10 item 13).
Compute runs in the model dtype (§10 item 23); softmax/CFG in >= fp32, Gumbel noise in fp64.

Randomness (exactly this, in this order, from ``generator``; the reference sampler consumes the same):
  for each block b = 0..NB-1, for each step i = 0..S_b-1:
    1. if temperature > 0: one ``torch.rand((B, K, V), dtype=float64)`` -> Gumbel noise of the block;
    2. if remasking == "random": one ``torch.rand((B, K), dtype=float64)`` -> confidences of the block.
  Nothing else is drawn (τ = 0 with low_confidence draws nothing). Draws happen on ``generator.device``
  and are moved to the canvas device. With ``generator=None`` the global torch RNG is used.

Dimensions: B = batch rows, P = (padded) prompt length, L = gen_length, K = block_length, V = vocab size,
T = P + L canvas length.
"""

from __future__ import annotations

from typing import Any

import torch

from spg_lib.decoding._common import (
    at_least_fp32,
    check_generate_args,
    draw_gumbel,
    draw_uniform,
    eval_mode,
    supports_logits_range,
)
from spg_lib.decoding.schedule import num_transfer_tokens


def _block_logits(
    model: Any,
    canvas: torch.Tensor,
    attention_mask: torch.Tensor | None,
    start: int,
    end: int,
    *,
    use_range: bool,
    cfg_scale: float,
    prompt_length: int,
    mask_id: int,
) -> torch.Tensor:
    """Logits of the current block, [B, K, V] in >= fp32, with CFG applied when cfg_scale > 0."""
    batch = canvas.shape[0]
    inputs = canvas  # [B, T]
    mask = attention_mask  # [B, T] | None
    if cfg_scale > 0:
        uncond = canvas.clone()
        uncond[:, :prompt_length] = mask_id
        inputs = torch.cat([canvas, uncond], dim=0)  # [2B, T]
        mask = None if attention_mask is None else torch.cat([attention_mask, attention_mask], dim=0)
    kwargs: dict[str, Any] = {}
    if mask is not None:
        kwargs["attention_mask"] = mask
    if use_range:
        logits = model(inputs, logits_range=(start, end), **kwargs).logits  # [B', K, V]
    else:
        logits = model(inputs, **kwargs).logits[:, start:end]  # [B', K, V]
    logits = at_least_fp32(logits)
    if cfg_scale > 0:
        cond, un = logits[:batch], logits[batch:]  # [B, K, V] each
        logits = un + (cfg_scale + 1.0) * (cond - un)
    return logits


def top_k_per_row(confidence: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Select the k[row] highest-confidence positions of each row, vectorised (sort + rank mask).

    Ties are broken towards the lower position (stable sort), like the reference's Python sort.

    Args:
        confidence: FloatTensor [B, K] (-inf where a position must not be chosen).
        k: LongTensor [B], 0 <= k <= K.

    Returns:
        BoolTensor [B, K], exactly k[row] True per row.
    """
    K = confidence.shape[1]
    order = torch.sort(confidence, dim=1, descending=True, stable=True).indices  # [B, K]
    take = torch.arange(K, device=confidence.device)[None, :] < k[:, None]  # [B, K] rank < k
    return torch.zeros_like(take).scatter(1, order, take)  # [B, K]


def generate(
    model: Any,
    prompt_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    gen_length: int,
    block_length: int,
    steps: int,
    mask_id: int,
    temperature: float = 0.0,
    remasking: str = "low_confidence",
    cfg_scale: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Decode ``gen_length`` tokens after left-padded prompts with the LLaDA block sampler (batched).

    Args:
        model: masked diffusion LM with ``forward(input_ids, attention_mask=None[, logits_range]) -> .logits``.
        prompt_ids: LongTensor [B, P], left-padded prompts.
        attention_mask: [B, P] 1 for real tokens, 0 for padding; None = no padding.
        gen_length: L, tokens to generate (multiple of ``block_length``).
        block_length: K, tokens per semi-autoregressive block.
        steps: total denoising steps; each of the L/K blocks gets ``steps // (L/K)`` (needs steps >= L/K).
        mask_id: the [M] token id.
        temperature: τ >= 0 of the Gumbel-max sampling (0 = greedy, no randomness).
        remasking: "low_confidence" (softmax probability of the proposal) or "random" (uniform confidences).
        cfg_scale: classifier-free guidance scale s >= 0 (0 = off).
        generator: explicit torch.Generator; the module docstring lists exactly what is drawn from it.

    Returns:
        LongTensor [B, P + L]: the prompt (unchanged, padding included) followed by the generated tokens.

    Raises:
        ValueError: on an invalid argument; the message names it.
    """
    plan = check_generate_args(
        model,
        prompt_ids,
        attention_mask,
        gen_length=gen_length,
        block_length=block_length,
        steps=steps,
        mask_id=mask_id,
        temperature=temperature,
        remasking=remasking,
        cfg_scale=cfg_scale,
        generator=generator,
    )
    B, P, L, K = plan.batch_size, plan.prompt_length, plan.gen_length, plan.block_length
    device = prompt_ids.device
    canvas = torch.full((B, P + L), mask_id, dtype=torch.long, device=device)  # [B, T]
    canvas[:, :P] = prompt_ids
    full_mask = None
    if attention_mask is not None:
        full_mask = torch.cat(
            [attention_mask.to(device), torch.ones((B, L), dtype=attention_mask.dtype, device=device)], dim=1
        )  # [B, T]
    use_range = supports_logits_range(model)

    with eval_mode(model):
        for b in range(plan.num_blocks):
            start, end = P + b * K, P + (b + 1) * K
            schedule = num_transfer_tokens(
                (canvas[:, start:end] == mask_id).sum(dim=1), plan.steps_per_block
            )  # [B, S_b]
            for i in range(plan.steps_per_block):
                logits = _block_logits(
                    model,
                    canvas,
                    full_mask,
                    start,
                    end,
                    use_range=use_range,
                    cfg_scale=float(cfg_scale),
                    prompt_length=P,
                    mask_id=mask_id,
                )  # [B, K, V]
                if temperature > 0:
                    gumbel = draw_gumbel(tuple(logits.shape), generator, device)  # [B, K, V] fp64
                    proposal = (logits.double() / temperature + gumbel).argmax(dim=-1)  # [B, K]
                else:
                    proposal = logits.argmax(dim=-1)  # [B, K]
                if remasking == "low_confidence":
                    probs = torch.softmax(logits, dim=-1)  # [B, K, V]
                    confidence = probs.gather(-1, proposal[..., None]).squeeze(-1)  # [B, K]
                else:
                    confidence = draw_uniform((B, K), generator, device)  # [B, K]
                block = canvas[:, start:end]  # [B, K] (view)
                masked = block == mask_id  # [B, K]
                confidence = confidence.masked_fill(~masked, float("-inf"))
                chosen = top_k_per_row(confidence, schedule[:, i]) & masked  # [B, K]
                canvas[:, start:end] = torch.where(chosen, proposal, block)
    return canvas
