"""Fast batched LLaDA block sampler: semi-autoregressive decoding with low-confidence (or random) remasking.

References: LLaDA (arXiv:2502.09992) `generate`; SPG (arXiv:2510.09541, Sec. 4.1 and App. G) rollout and
evaluation sampler. The algorithm, the official code's quirks and what is reproduced: docs/decoding.md.

Algorithm (per call):
  canvas x = [prompt | [M] * L]; NB = L / K blocks, S_b = steps // NB steps per block (steps >= NB required).
  For block b (absolute positions [P + bK, P + (b+1)K)) the masks of each row are split over the S_b steps by
  :func:`num_transfer_tokens`; at every step the model sees the whole canvas (later blocks all [M]) and
    x̂ = argmax_v(logits_v / τ + g_v), g ~ Gumbel(0, 1)         (τ = 0: plain argmax, no noise drawn)
    confidence = softmax(logits)[x̂] (low_confidence, not temperature-scaled) or U[0, 1) (random)
  and the k_row most confident still-masked positions of the current block are written (k_row from the
  schedule). The prompt is never touched. A proposal may be [M] itself; the position then stays masked. With
  ``redecode_earlier_masks`` (the official behaviour) such leftover [M] positions of earlier blocks join the
  candidates of every later step and can take one of the current block's transfer slots; without it (default)
  only the current block ever changes (docs/decoding.md, "Leftover mask tokens").
  CFG (cfg_scale s > 0): an unconditional copy (all prompt positions, padding included, set to [M]) runs in the
  same batch; logits = un + (s + 1) * (cond - un).

Efficiency (vs the official code; docs/decoding.md, "Fast path"). Every step still runs the network on the whole
canvas (LLaDA is bidirectional: no KV cache, the tokens equal the reference's), but everything after the network
is restricted to the N still-masked positions of the current block (and the leftovers, when re-decoded):
  - native LLaDAModelLM (``hidden_states(..., output_range)`` + ``logits_from_hidden``): the LAST transformer
    block computes queries/attention output/MLP only on the current block (earlier blocks need every position
    as keys/values), and the output head runs only on the N masked positions ([N, D] @ [D, V]); other models:
    ``model(..., logits_range=(s, e))`` when supported, else slicing the full logits;
  - argmax, softmax and confidence only on those N rows; the [N, V] logits/probability tensors are written
    into buffers reused across the steps of the call (no fresh multi-hundred-MB tensors per step);
  - padding is looked at once per call: on CPU the rows go through the network in groups of about
    ``CPU_TOKENS_PER_THREAD`` canvas tokens per thread (cache-sized; one group = the whole batch elsewhere),
    each group drops the columns that are padding in all of its rows and gets no attention mask when none of
    its rows is padded after that (unmasked attention; a one-row group is exactly the row's unpadded canvas);
  - a step with nothing left to decode in its block (steps_per_block > block_length) skips the forward (it only
    makes its random draws);
  - top-k with a per-row k is a sort + rank mask (no Python loop over rows), no autograd graph is built, and the
    model's train/eval mode is restored afterwards.
The attention mask (prompt mask extended with ones over the generated part) is passed so left-padded batches
decode as each row would alone (the official evaluation sampler passes none; docs/decoding.md). Compute runs in
the model dtype, softmax/CFG in >= fp32, the Gumbel noise in ``gumbel_dtype`` (fp64 by default; docs/decoding.md,
"Gumbel noise precision").

Randomness (exactly this, in this order, from ``generator``; the reference sampler consumes the same):
  for each block b = 0..NB-1, for each step i = 0..S_b-1:
    1. if temperature > 0: one ``torch.rand((B, K, V), dtype=gumbel_dtype)`` -> Gumbel noise of the block;
    2. if remasking == "random": one ``torch.rand((B, K), dtype=float64)`` -> confidences of the block;
    3. only with ``redecode_earlier_masks`` and n_left > 0 leftover [M] positions in earlier blocks (counted over
       all rows, row-major: row, then position): 1. and 2. again for them, shapes (n_left, V) and (n_left,).
  Nothing else is drawn (τ = 0 with low_confidence draws nothing). Draws happen on ``generator.device``
  and are moved to the canvas device. With ``generator=None`` the global torch RNG is used.

Dimensions: B = batch rows, P = (padded) prompt length, L = gen_length, K = block_length, V = vocab size,
T = P + L canvas length.
"""

from __future__ import annotations

import dataclasses
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
    supports_hidden_head,
    supports_logits_range,
)
from spg_lib.decoding.cached import check_engine_args, count_forward, generate_cached
from spg_lib.decoding.schedule import num_transfer_tokens


class _Workspace:
    """[N, V] buffers reused across the steps of one generate call.

    A fresh [N, V] tensor per step costs page faults and the kernel zeroing its pages: with LLaDA's vocabulary
    that is hundreds of MB per step, about as slow as the softmax itself. A buffer is allocated at the first
    step of the call, which needs the largest N (the whole first block is still masked), and sliced [:N] after.
    """

    def __init__(self) -> None:
        self.logits: torch.Tensor | None = None  # [N_max, V] in the model dtype (hidden-state head only)
        self.probs: torch.Tensor | None = None  # [N_max, V] >= fp32

    @staticmethod
    def _slice(buf: torch.Tensor | None, n: int, width: int, like: torch.Tensor) -> torch.Tensor | None:
        """buf[:n] if buf can hold [n, width] tensors of like's dtype/device, else None."""
        if buf is None or buf.shape[0] < n or buf.shape[1] != width:
            return None
        return buf[:n] if (buf.dtype == like.dtype and buf.device == like.device) else None

    def head(self, model: Any, hidden: torch.Tensor) -> torch.Tensor:
        """Output head on hidden states [N, D] -> logits [N, V] (into the reused buffer once it exists)."""
        out = None
        if self.logits is not None:
            out = self._slice(self.logits, hidden.shape[0], self.logits.shape[1], hidden)
        if out is not None:
            return model.logits_from_hidden(hidden, out=out)
        logits = model.logits_from_hidden(hidden)  # [N, V]
        self.logits = logits
        return logits

    def softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """Same values as ``torch.softmax(logits, -1)`` ([N, V], the same kernel), into the reused buffer."""
        n, width = logits.shape
        out = self._slice(self.probs, n, width, logits)
        if out is None:
            self.probs = torch.empty_like(logits)
            out = self.probs
        return torch.ops.aten._softmax.out(logits, -1, False, out=out)


# On CPU the network runs over groups of rows of about this many canvas tokens per torch thread: a [B, T]
# forward whose working set exceeds the core's cache is slower PER ROW than smaller forwards (tiny model, one
# thread: 16 rows x 320 tokens in one call ~20% slower per row than one row per call). Rows are independent, so
# grouping changes no value. Other devices run the whole batch in one call.
CPU_TOKENS_PER_THREAD = 512


def cpu_rows_per_forward(length: int) -> int:
    """Rows of a [rows, length] canvas per forward call on CPU: about CPU_TOKENS_PER_THREAD tokens per thread."""
    return max(1, CPU_TOKENS_PER_THREAD * max(1, torch.get_num_threads()) // max(1, length))


@dataclasses.dataclass(frozen=True)
class _RowGroup:
    """Rows [first, last) of the model batch, run in one forward without their ``lead`` leading columns (padding in
    every row of the group); ``mask`` [last - first, T - lead] is None when no row of the group has padding left."""

    first: int
    last: int
    lead: int
    mask: torch.Tensor | None


def _row_groups(mask: torch.Tensor | None, rows: int, length: int, device: torch.device) -> list[_RowGroup]:
    """Split the [rows, length] model batch into forward calls, once per generate call.

    mask: [rows, length] canvas attention mask (1 real, 0 padding; the generated part is all 1) or None.
    """
    step = cpu_rows_per_forward(length) if device.type == "cpu" else rows
    groups = []
    for first in range(0, rows, step):
        last = min(rows, first + step)
        if mask is None:
            groups.append(_RowGroup(first, last, 0, None))
            continue
        real = mask[first:last].bool()  # [g, T]
        lead = int(real.any(dim=0).long().argmax())  # first column real in some row (the generated part is real)
        padded = not bool(real[:, lead:].all())
        groups.append(_RowGroup(first, last, lead, mask[first:last, lead:] if padded else None))
    return groups


def _block_logits(
    model: Any,
    canvas: torch.Tensor,
    groups: list[_RowGroup],
    start: int,
    end: int,
    rows: torch.Tensor,
    cols: torch.Tensor,
    *,
    head: str,
    workspace: _Workspace,
    cfg_scale: float,
    prompt_length: int,
    mask_id: int,
    stats: dict | None = None,
) -> torch.Tensor:
    """Logits [N, V] (>= fp32, CFG applied when cfg_scale > 0) of the N still-masked block positions.

    ``groups`` split the model batch (B rows, or 2B with CFG) into forward calls (:func:`_row_groups`);
    ``rows``/``cols`` (LongTensor [N] each) index the masked positions inside the block [B, K]; ``head`` is
    "hidden" (LLaDAModelLM: hidden states of the block only, output head on the N positions only), "range"
    (``model(..., logits_range=(start, end))``) or "full" (``model(...)``, then slicing).
    """
    batch = canvas.shape[0]
    inputs = canvas  # [B, T]
    if cfg_scale > 0:
        uncond = canvas.clone()
        uncond[:, :prompt_length] = mask_id
        inputs = torch.cat([canvas, uncond], dim=0)  # [2B, T]
        rows_all = torch.cat([rows, rows + batch])  # [2N]: the conditional rows, then the unconditional ones
        cols_all = torch.cat([cols, cols])
    else:
        rows_all, cols_all = rows, cols

    def run(group: _RowGroup) -> torch.Tensor:  # [g, K, D] hidden states or [g, K, V] logits of the block
        x = inputs[group.first : group.last, group.lead :]  # [g, T - lead]
        s, e = start - group.lead, end - group.lead
        if head == "hidden":
            return model.hidden_states(x, attention_mask=group.mask, output_range=(s, e))
        kwargs: dict[str, Any] = {} if group.mask is None else {"attention_mask": group.mask}
        if head == "range":
            return model(x, logits_range=(s, e), **kwargs).logits
        return model(x, **kwargs).logits[:, s:e]

    if stats is not None:  # token-forwards: rows x columns of every forward call
        for group in groups:
            count_forward(stats, group.last - group.first, inputs.shape[1] - group.lead)
    parts = [run(group) for group in groups]
    out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)  # [B', K, D | V]
    picked = out[rows_all, cols_all]  # [N', D] hidden states or [N', V] logits (a copy)
    logits = workspace.head(model, picked) if head == "hidden" else picked  # [N', V]
    logits = at_least_fp32(logits)
    if cfg_scale > 0:
        n = rows.shape[0]
        cond, un = logits[:n], logits[n:]  # [N, V] each (views of a tensor owned here)
        # in place, same values as un + (s + 1) * (cond - un)
        logits = cond.sub_(un).mul_(cfg_scale + 1.0).add_(un)
    return logits


@dataclasses.dataclass(frozen=True)
class _StepDraws:
    """One step's random draws: the block's Gumbel noise [B, K, V] and confidences [B, K], then those of the
    n_left leftover positions ([n_left, V], [n_left]); None where not drawn."""

    gumbel: torch.Tensor | None
    uniform: torch.Tensor | None
    gumbel_left: torch.Tensor | None
    uniform_left: torch.Tensor | None


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
    redecode_earlier_masks: bool = False,
    gumbel_dtype: str = "float64",
    keep_mode: bool = False,
    cache: str = "none",
    unmasking: str = "schedule",
    threshold: float = 0.9,
    early_stop: bool = False,
    eos_id: int | None = None,
    refresh_every_step: bool = False,
    stats: dict | None = None,
    compile: bool = False,
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
        redecode_earlier_masks: False: only the current block is decoded. True (the official code): generated
            positions of earlier blocks that still hold [M] (a proposal that was the mask token itself) compete
            with the current block for its transfer slots (docs/decoding.md, "Leftover mask tokens").
        gumbel_dtype: precision of the Gumbel noise, "float64" (default) | "float32" (SPG's evaluation sampler)
            | "bfloat16" | "model" (the model's dtype, SPG's rollout sampler); see :func:`draw_gumbel`.
        keep_mode: False: decode in eval mode (no dropout). True: in the model's current train/eval mode (the
            official trainers roll out in train mode, LoRA dropout active); either way it is restored afterwards.
        cache, unmasking, threshold, early_stop, eos_id, refresh_every_step, compile: the approximate engine's options
            (:func:`spg_lib.decoding.cached.generate_cached`); the defaults (none, schedule, no early stop) run
            this exact sampler, anything else that engine.
        stats: optional dict receiving token_forwards (rows x positions summed over model forwards), forwards
            and steps; added to what it holds.

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
        redecode_earlier_masks=redecode_earlier_masks,
        gumbel_dtype=gumbel_dtype,
    )
    if cache != "none" or unmasking != "schedule" or early_stop or refresh_every_step or compile:
        check_engine_args(cache, unmasking, threshold, early_stop, refresh_every_step, compile, cfg_scale=cfg_scale,
                          redecode_earlier_masks=redecode_earlier_masks, remasking=remasking)
        return generate_cached(
            model, prompt_ids, attention_mask, gen_length=gen_length, block_length=block_length, steps=steps,
            mask_id=mask_id, temperature=temperature, remasking=remasking, generator=generator,
            gumbel_dtype=gumbel_dtype, keep_mode=keep_mode, cache=cache, unmasking=unmasking, threshold=threshold,
            early_stop=early_stop, eos_id=eos_id, refresh_every_step=refresh_every_step, stats=stats,
            compile=compile,
        )
    B, P, L, K = plan.batch_size, plan.prompt_length, plan.gen_length, plan.block_length
    device = prompt_ids.device
    canvas = torch.full((B, P + L), mask_id, dtype=torch.long, device=device)  # [B, T]
    canvas[:, :P] = prompt_ids
    if stats is not None:
        stats.setdefault("token_forwards", 0)
        stats.setdefault("forwards", 0)
        stats["steps"] = stats.get("steps", 0)
        stats["cache"] = "none"
    # Padding and forward calls, decided once per call: each group of rows drops the columns that are padding in
    # all of its rows and gets no attention mask when none of its rows is padded (plain unmasked attention).
    canvas_mask = None  # [B', T]
    if attention_mask is not None:
        canvas_mask = torch.cat(
            [attention_mask.to(device), torch.ones((B, L), dtype=attention_mask.dtype, device=device)], dim=1
        )  # [B, T]
        if cfg_scale > 0:
            canvas_mask = torch.cat([canvas_mask, canvas_mask], dim=0)  # [2B, T]: the unconditional copy too
    groups = _row_groups(canvas_mask, 2 * B if cfg_scale > 0 else B, P + L, device)
    # how the block's logits are obtained: hidden states + head on masked rows > logits_range > full logits
    head = "hidden" if supports_hidden_head(model) else ("range" if supports_logits_range(model) else "full")
    cfg = float(cfg_scale)
    noise_dtype = resolve_gumbel_dtype(model, gumbel_dtype)
    workspace = _Workspace()
    vocab: int | None = None  # V, known after the first forward

    def step_draws(n_left: int, width: int) -> _StepDraws:
        """The step's random draws, in the documented order (block noise, block confidences, leftovers')."""
        return _StepDraws(
            gumbel=draw_gumbel((B, K, width), generator, device, noise_dtype) if temperature > 0 else None,
            uniform=draw_uniform((B, K), generator, device) if remasking == "random" else None,
            gumbel_left=draw_gumbel((n_left, width), generator, device, noise_dtype)
            if temperature > 0 and n_left
            else None,
            uniform_left=draw_uniform((n_left,), generator, device) if remasking == "random" and n_left else None,
        )

    with eval_mode(model, keep_mode):
        for b in range(plan.num_blocks):
            start, end = P + b * K, P + (b + 1) * K  # the block in canvas coordinates
            schedule = num_transfer_tokens(
                (canvas[:, start:end] == mask_id).sum(dim=1), plan.steps_per_block
            )  # [B, S_b]
            for i in range(plan.steps_per_block):
                block = canvas[:, start:end]  # [B, K] (view)
                masked = block == mask_id  # [B, K]
                # the decoding window [lo, end): the block, widened to the first earlier generated position still
                # holding [M] when those are re-decoded (off = leftover columns in front of the block)
                lo = start
                if redecode_earlier_masks and b > 0:
                    earlier = (canvas[:, P:start] == mask_id).any(dim=0)  # [start - P]
                    if bool(earlier.any()):
                        lo = P + int(earlier.long().argmax())
                off = start - lo
                window = canvas[:, lo:end]  # [B, W = off + K] (view)
                open_ = window == mask_id  # [B, W]: leftovers (columns < off) and the block's masks
                rows, cols = open_.nonzero(as_tuple=True)  # [N] each, row-major: a row's leftovers, then its block
                left = cols < off  # [N] leftover positions
                n_left = int(left.sum())
                if not bool(masked.any()) and vocab is not None:
                    # nothing left to decode in this block (steps_per_block > masks): every remaining transfer
                    # count is 0, so the step changes nothing; skip the forward, only consume the random draws
                    step_draws(n_left, vocab)
                    continue
                if stats is not None:
                    stats["steps"] += 1
                logits = _block_logits(
                    model,
                    canvas,
                    groups,
                    lo,
                    end,
                    rows,
                    cols,
                    head=head,
                    workspace=workspace,
                    cfg_scale=cfg,
                    prompt_length=P,
                    mask_id=mask_id,
                    stats=stats,
                )  # [N, V]
                vocab = logits.shape[-1]
                draws = step_draws(n_left, vocab)
                if draws.gumbel is not None:
                    # the documented draw is for the whole block [B, K, V]; only masked positions use it
                    if n_left:
                        noise = torch.empty((rows.shape[0], vocab), dtype=draws.gumbel.dtype, device=device)  # [N, V]
                        noise[~left] = draws.gumbel[rows[~left], cols[~left] - off]
                        noise[left] = draws.gumbel_left
                    else:
                        noise = draws.gumbel[rows, cols]  # [N, V]
                    proposal = gumbel_max(logits, noise, temperature)  # [N]
                else:
                    proposal = logits.argmax(dim=-1)  # [N]
                if draws.uniform is None:  # low_confidence
                    probs = workspace.softmax(logits)  # [N, V]
                    confidence = torch.full(open_.shape, float("-inf"), dtype=probs.dtype, device=device)  # [B, W]
                    confidence[rows, cols] = probs.gather(-1, proposal[:, None]).squeeze(-1)
                else:
                    confidence = draws.uniform.masked_fill(~masked, float("-inf"))  # [B, K]
                    if off:
                        wide = torch.full(open_.shape, float("-inf"), dtype=confidence.dtype, device=device)
                        wide[:, off:] = confidence
                        wide[rows[left], cols[left]] = draws.uniform_left
                        confidence = wide  # [B, W]
                chosen = top_k_per_row(confidence, schedule[:, i]) & open_  # [B, W]
                proposed = window.clone()  # [B, W]
                proposed[rows, cols] = proposal
                canvas[:, lo:end] = torch.where(chosen, proposed, window)
    return canvas
