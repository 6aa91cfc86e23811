"""Plain reference LLaDA block sampler: one row at a time, full canvas logits every step, Python top-k.

It is deliberately simple and close to the official SPG/LLaDA `generate` (full logits over the whole canvas
and vocabulary, a softmax over all of it, a per-row Python top-k). It exists to check the fast batched
sampler in :mod:`spg_lib.decoding.sampler`: both give IDENTICAL tokens for τ = 0 and for τ > 0 with the same
generator seed. Each row is decoded as a batch of one with its unpadded prompt (its real tokens only), so
identity with the fast path also checks that left padding + attention mask are handled correctly.

Randomness is consumed exactly as documented in :mod:`spg_lib.decoding.sampler`: per block and step, the
noise for ALL B rows is drawn at once ([B, K, V] Gumbel, then [B, K] uniform for random remasking) and
row r uses slice r (the leftover draws of ``redecode_earlier_masks`` are shared out row-major). The
algorithm is spelled out in docs/decoding.md.

Dimensions: B = rows, P = padded prompt length, P_r = real prompt length of row r, L = gen_length,
K = block_length, V = vocab size.
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
    gumbel_max,
    resolve_gumbel_dtype,
)


def _row_logits(model: Any, canvas: torch.Tensor, prompt_length: int, cfg_scale: float, mask_id: int) -> torch.Tensor:
    """Full logits [P_r + L, V] (>= fp32) of one unpadded row, CFG applied when cfg_scale > 0."""
    logits = at_least_fp32(model(canvas[None, :]).logits[0])  # [P_r + L, V]
    if cfg_scale > 0:
        uncond = canvas.clone()
        uncond[:prompt_length] = mask_id
        un = at_least_fp32(model(uncond[None, :]).logits[0])  # [P_r + L, V]
        logits = un + (cfg_scale + 1.0) * (logits - un)
    return logits


def generate_reference(
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
    redecode_earlier_masks: bool = False,
    gumbel_dtype: str = "float64",
    keep_mode: bool = False,
) -> torch.Tensor:
    """Same contract and same output as :func:`spg_lib.decoding.generate`, computed the slow, obvious way.

    Args: see :func:`spg_lib.decoding.sampler.generate`.

    Returns:
        LongTensor [B, P + L]: the padded prompt followed by the generated tokens.

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
        redecode_earlier_masks=redecode_earlier_masks,
        gumbel_dtype=gumbel_dtype,
    )
    B, P, L, K = plan.batch_size, plan.prompt_length, plan.gen_length, plan.block_length
    device = prompt_ids.device
    noise_dtype = resolve_gumbel_dtype(model, gumbel_dtype)
    prompts = [
        prompt_ids[r] if attention_mask is None else prompt_ids[r][attention_mask[r].to(device) == 1] for r in range(B)
    ]  # row r: [P_r]
    canvases = [
        torch.cat([p, torch.full((L,), mask_id, dtype=torch.long, device=device)]).long() for p in prompts
    ]  # row r: [P_r + L]

    with eval_mode(model, keep_mode):
        for b in range(plan.num_blocks):
            # transfer schedule of each row, computed once at the block start (plain Python)
            todo = []
            for r in range(B):
                start = len(prompts[r]) + b * K
                n_masked = int((canvases[r][start : start + K] == mask_id).sum())
                base, extra = divmod(n_masked, plan.steps_per_block)
                todo.append([base + (1 if i < extra else 0) for i in range(plan.steps_per_block)])
            for i in range(plan.steps_per_block):
                # 1) every row alone: full logits over the whole canvas and vocabulary, full softmax
                row_logits, row_probs = [], []
                for r in range(B):
                    logits = _row_logits(model, canvases[r], len(prompts[r]), float(cfg_scale), mask_id)
                    row_logits.append(logits)  # [P_r + L, V]
                    row_probs.append(torch.softmax(logits, dim=-1))  # [P_r + L, V]
                # leftovers: generated positions of earlier blocks still holding [M] (absolute, increasing)
                leftovers = [
                    [
                        q
                        for q in range(len(prompts[r]), len(prompts[r]) + b * K)
                        if redecode_earlier_masks and int(canvases[r][q]) == mask_id
                    ]
                    for r in range(B)
                ]
                n_left = sum(len(q) for q in leftovers)
                # 2) the step's noise for all rows at once, in the documented order
                V = row_logits[0].shape[-1]
                gumbel = draw_gumbel((B, K, V), generator, device, noise_dtype) if temperature > 0 else None
                uniform = draw_uniform((B, K), generator, device) if remasking == "random" else None
                gumbel_left = uniform_left = None
                if n_left and gumbel is not None:
                    gumbel_left = draw_gumbel((n_left, V), generator, device, noise_dtype)  # [n_left, V]
                if n_left and uniform is not None:
                    uniform_left = draw_uniform((n_left,), generator, device)  # [n_left]
                # 3) every row: proposal and confidence of each candidate, Python top-k among them
                taken = 0  # leftovers of earlier rows (row-major order of the leftover draws)
                for r in range(B):
                    start = len(prompts[r]) + b * K
                    block = [start + j for j in range(K) if int(canvases[r][start + j]) == mask_id]
                    candidates = leftovers[r] + block  # absolute positions, increasing
                    proposal, confidence = {}, {}
                    for n, q in enumerate(leftovers[r]):
                        noise = None if gumbel_left is None else gumbel_left[taken + n]
                        proposal[q] = _propose(row_logits[r][q], noise, temperature)
                        confidence[q] = (
                            float(uniform_left[taken + n]) if uniform_left is not None
                            else float(row_probs[r][q, proposal[q]])
                        )
                    taken += len(leftovers[r])
                    for q in block:
                        noise = None if gumbel is None else gumbel[r, q - start]
                        proposal[q] = _propose(row_logits[r][q], noise, temperature)
                        confidence[q] = (
                            float(uniform[r, q - start]) if uniform is not None
                            else float(row_probs[r][q, proposal[q]])
                        )
                    ranked = sorted(candidates, key=lambda q, c=confidence: (-c[q], q))
                    for q in ranked[: todo[r][i]]:
                        canvases[r][q] = proposal[q]

    out = torch.empty((B, P + L), dtype=torch.long, device=device)
    out[:, :P] = prompt_ids
    for r in range(B):
        out[r, P:] = canvases[r][len(prompts[r]) :]
    return out


def _propose(logits: torch.Tensor, noise: torch.Tensor | None, temperature: float) -> int:
    """Proposal of one position from its logits [V] and its noise [V] (None: greedy argmax)."""
    if noise is None:
        return int(logits.argmax())
    return int(gumbel_max(logits[None, :], noise[None, :], temperature)[0])
