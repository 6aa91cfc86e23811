"""Fast, approximate rollout engine: block KV cache (prefix | dual), threshold unmasking, early stop.

The LLaDA block sampler of :mod:`spg_lib.decoding.sampler` with the Fast-dLLM accelerations (arXiv:2505.22618)
as options; docs/decoding.md, "Cache modes, threshold unmasking, early stop". Per block b (canvas positions
[s, e) = [P + bK, P + (b+1)K), T = P + L) and step i of its S_b steps:

  cache none:   every step forwards the whole canvas [B, T] (exact, as the exact sampler);
  cache prefix: step 0 forwards the whole canvas and keeps every layer's keys/values; steps i > 0 forward only
                positions [s, T) (block + suffix) attending to the cached keys/values of [0, s);
  cache dual:   as prefix, but steps i > 0 forward only the block [s, e), attending to the cached prefix AND
                suffix [e, T) keys/values (refreshed at each block boundary);
  unmasking schedule:  the fixed per-step transfer counts (:func:`num_transfer_tokens`), top-k by confidence;
  unmasking threshold: every masked position of the block whose confidence softmax(logits)[x̂] exceeds
                ``threshold``, at least the most confident one per row and step, and all remaining ones at the
                block's last step (the block is always finished within S_b steps); a block all of whose rows are
                finished ends early;
  early stop:   at each block boundary, rows whose committed completion contains ``eos_id`` get EOS in every
                later position and leave the batch (no more forwards for them; LLaDA pads after EOS with EOS).

Token-forwards (rows x positions processed by the network, summed over forwards) are counted into ``stats``:
with no padding, none = NB * S_b * B * T; prefix = sum_b B * (T + (S_b - 1) * (T - s_b)); dual = NB * B *
(T + (S_b - 1) * K). The cached forward of a model is the capability ``probe(model).kv_cache`` (the native
LLaDAModelLM: ``hidden_states_kv`` / ``hidden_states_cached``); a model without it falls back to cache none
with a warning. Random draws: those of the exact sampler (per step, the whole batch's [B, K, V] Gumbel noise and
[B, K] uniforms, indexed by the rows still decoding), so schedule unmasking with a refresh every step gives the
exact sampler's tokens; a threshold block that ends early draws nothing for its skipped steps.

Dimensions: B rows, P (padded) prompt length, L gen_length, K block_length, V vocab, T = P + L.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal, get_args

import torch

from spg_lib.decoding._common import (
    _as_float,
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
from spg_lib.decoding.schedule import num_transfer_tokens

CacheMode = Literal["none", "prefix", "dual"]
CACHE_MODES: tuple[str, ...] = get_args(CacheMode)
Unmasking = Literal["schedule", "threshold"]
UNMASKING_MODES: tuple[str, ...] = get_args(Unmasking)

__all__ = [
    "CACHE_MODES", "UNMASKING_MODES", "CacheMode", "Unmasking", "cache_forwards", "check_engine_config",
    "generate_cached", "supports_kv_cache",
]

# Devices on which the cache modes run the head on every position of the block ([B*K, D] @ [D, V]) and mask the
# confidences, instead of gathering the masked positions first: no host synchronisation per step for their
# indices (on a GPU the sync stalls the launch queue; on CPU the gathered rows are cheaper). Same tokens.
DENSE_HEAD_DEVICES: tuple[str, ...] = ("cuda",)

# torch.compile'd KV-cache forwards, one per model class's function (compiled on first use, reused by later calls)
_COMPILED: dict[Callable[..., Any], Callable[..., Any]] = {}


def supports_kv_cache(model: Any) -> bool:
    """True when the model exposes the block KV-cache forwards (``spg_lib.models.capabilities``, ``kv_cache``)."""
    from spg_lib.models.capabilities import probe

    return probe(model).kv_cache


def cache_forwards(model: Any, compile: bool = False) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The two KV-cache forwards of ``model``: ``fill(x, attention_mask=, output_range=) -> (hidden, cache)`` and
    ``cached(x_slice, cache, slice_range, output_range=) -> hidden``.

    With ``compile`` they are the class's ``hidden_states_kv`` / ``hidden_states_cached`` through
    ``torch.compile(dynamic=True)`` (batch, canvas length and block position vary between calls; the model is an
    argument, so one compilation serves every instance and weight update). Compilation happens on the first call
    (tens of seconds on CPU) and is then reused; the numbers equal the eager forward's up to float rounding.
    """
    fill, cached = model.hidden_states_kv, model.hidden_states_cached  # bound (through a PEFT wrapper too)
    if not compile:
        return fill, cached

    def compiled(method: Any) -> Callable[..., Any]:
        func, owner = method.__func__, method.__self__  # the class's function and the module that owns it
        if func not in _COMPILED:
            _COMPILED[func] = torch.compile(func, dynamic=True)
        fn = _COMPILED[func]
        return lambda *a, **k: fn(owner, *a, **k)

    return compiled(fill), compiled(cached)


def count_forward(stats: dict | None, rows: int, positions: int) -> None:
    """Add one model forward of ``rows`` x ``positions`` tokens to ``stats`` (keys token_forwards, forwards)."""
    if stats is not None:
        stats["token_forwards"] = stats.get("token_forwards", 0) + rows * positions
        stats["forwards"] = stats.get("forwards", 0) + 1


def check_engine_config(section: Any, name: str) -> None:
    """Validate cache / unmasking / threshold / early_stop of a configuration section (train.rollout, evaluate):
    ``name`` prefixes the messages; ValueError on the first bad field."""
    cache, unmasking, threshold = (getattr(section, k) for k in ("cache", "unmasking", "threshold"))
    if cache not in CACHE_MODES:
        raise ValueError(f"{name}.cache must be one of {', '.join(CACHE_MODES)}; got {cache!r}")
    if unmasking not in UNMASKING_MODES:
        raise ValueError(f"{name}.unmasking must be one of {', '.join(UNMASKING_MODES)}; got {unmasking!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise ValueError(f"{name}.threshold must be a number in [0, 1], got {threshold!r}")
    if not isinstance(section.early_stop, bool):
        raise ValueError(f"{name}.early_stop must be true or false, got {section.early_stop!r}")
    if not isinstance(section.compile, bool):
        raise ValueError(f"{name}.compile must be true or false, got {section.compile!r}")
    if section.compile and cache == "none":
        raise ValueError(f"{name}.compile compiles the KV-cache forwards: it needs {name}.cache prefix or dual")
    approximate = cache != "none" or unmasking != "schedule" or section.early_stop
    if approximate and getattr(section, "redecode_earlier_masks", False):
        raise ValueError(f"{name}.cache/unmasking/early_stop need {name}.redecode_earlier_masks false (faithful "
                         "mode sets it true: set it false explicitly)")
    if unmasking == "threshold" and section.remasking != "low_confidence":
        raise ValueError(f"{name}.unmasking threshold needs {name}.remasking low_confidence")


def check_engine_args(
    cache: Any, unmasking: Any, threshold: Any, early_stop: Any, refresh_every_step: Any, compile: Any = False, *,
    cfg_scale: float, redecode_earlier_masks: bool, remasking: str,
) -> None:
    """Validate the engine's options; every error names the argument."""
    if cache not in CACHE_MODES:
        raise ValueError(f"cache must be one of {list(CACHE_MODES)}, got {cache!r}")
    if unmasking not in UNMASKING_MODES:
        raise ValueError(f"unmasking must be one of {list(UNMASKING_MODES)}, got {unmasking!r}")
    _as_float(threshold, "threshold")
    for name, value in (("early_stop", early_stop), ("refresh_every_step", refresh_every_step),
                        ("compile", compile)):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    if compile and cache == "none":
        raise ValueError("compile needs cache prefix or dual (it compiles the KV-cache forwards)")
    if cfg_scale:
        raise ValueError("cfg_scale must be 0 with cache prefix/dual, threshold unmasking or early_stop")
    if redecode_earlier_masks:
        raise ValueError("redecode_earlier_masks must be False with cache prefix/dual, threshold unmasking or "
                         "early_stop (only the exact sampler re-decodes earlier blocks)")
    if unmasking == "threshold" and remasking != "low_confidence":
        raise ValueError("unmasking threshold needs remasking low_confidence (a threshold on softmax confidences)")


def generate_cached(
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
    generator: torch.Generator | None = None,
    gumbel_dtype: str = "float64",
    keep_mode: bool = False,
    cache: str = "prefix",
    unmasking: str = "schedule",
    threshold: float = 0.9,
    early_stop: bool = False,
    eos_id: int | None = None,
    refresh_every_step: bool = False,
    stats: dict | None = None,
    compile: bool = False,
) -> torch.Tensor:
    """Decode like :func:`spg_lib.decoding.generate` with the engine's options (module docstring).

    Args (beyond those of ``generate``; cfg_scale and redecode_earlier_masks are not supported here):
        cache: "none" (full forward every step) | "prefix" | "dual"; prefix/dual need ``probe(model).kv_cache``,
            else a warning and "none".
        unmasking: "schedule" | "threshold" (with ``threshold``, default 0.9).
        early_stop: finished rows (EOS among their committed tokens) leave the batch at the next block boundary.
        eos_id: the EOS id for early_stop (None: ``model.config.eos_token_id``).
        refresh_every_step: testing: rebuild the cache from a full forward at every step and still take the
            logits from the cached forward (the cache then holds what a full forward computes: exact).
        stats: optional dict; receives token_forwards (sum of rows x positions over forwards), forwards, steps
            (denoising steps run) and cache (the mode used after any fallback); counts are added to what it holds.
        compile: run the cache forwards through ``torch.compile`` (:func:`cache_forwards`); prefix/dual only.

    Returns:
        LongTensor [B, P + L]: prompts unchanged, then the generated tokens.
    """
    from spg_lib.decoding.sampler import _block_logits, _row_groups, _Workspace, cpu_rows_per_forward, top_k_per_row
    from spg_lib.models.capabilities import probe

    plan = check_generate_args(
        model, prompt_ids, attention_mask, gen_length=gen_length, block_length=block_length, steps=steps,
        mask_id=mask_id, temperature=temperature, remasking=remasking, cfg_scale=0.0, generator=generator,
        gumbel_dtype=gumbel_dtype,
    )
    check_engine_args(cache, unmasking, threshold, early_stop, refresh_every_step, compile, cfg_scale=0.0,
                      redecode_earlier_masks=False, remasking=remasking)
    if early_stop and eos_id is None:
        eos_id = getattr(getattr(model, "config", None), "eos_token_id", None)
        if not isinstance(eos_id, int):
            raise ValueError("early_stop needs eos_id (the model's config has no integer eos_token_id)")
    caps = probe(model)
    if cache != "none" and not caps.kv_cache:
        warnings.warn(f"cache={cache}: {type(model).__name__} has no KV-cache forward; decoding with cache none",
                      stacklevel=2)
        cache = "none"
    fill, cached = cache_forwards(model, compile) if cache != "none" else (None, None)
    dense = cache != "none" and prompt_ids.device.type in DENSE_HEAD_DEVICES
    thr = float(threshold)
    B, P, L, K = plan.batch_size, plan.prompt_length, plan.gen_length, plan.block_length
    S_b = plan.steps_per_block
    device = prompt_ids.device
    canvas = torch.full((B, P + L), mask_id, dtype=torch.long, device=device)  # [B, T]
    canvas[:, :P] = prompt_ids
    # columns that are padding in every row are dropped once (sync once per call)
    lead, mask = 0, None
    if attention_mask is not None:
        real = attention_mask.to(device).bool()  # [B, P]
        lead = int(real.any(dim=0).long().argmax()) if bool(real.any()) else 0
        if not bool(real[:, lead:].all()):
            mask = torch.cat([attention_mask[:, lead:].to(device),
                              torch.ones((B, L), dtype=attention_mask.dtype, device=device)], dim=1)  # [B, T']
    work = canvas[:, lead:]  # [B, T'] view: writes go into canvas
    P0, T = P - lead, P + L - lead
    # eager CPU: the block-boundary forward in row groups (the exact sampler's rule), into one cache
    grouped_fill = cache != "none" and device.type == "cpu" and not compile and caps.kv_row_chunk
    chunking = {"row_chunk": cpu_rows_per_forward(T)} if grouped_fill else {}
    head = "hidden" if supports_hidden_head(model) else ("range" if supports_logits_range(model) else "full")
    noise_dtype = resolve_gumbel_dtype(model, gumbel_dtype)
    workspace = _Workspace()
    vocab: int | None = None
    active: torch.Tensor | None = None  # LongTensor [B_a] of rows still decoding; None = all
    if stats is not None:
        stats.setdefault("token_forwards", 0)
        stats.setdefault("forwards", 0)
        stats["steps"] = stats.get("steps", 0)
        stats["cache"] = cache

    def draws(width: int, n_rows: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The exact sampler's per-step draws for the whole batch, restricted to the active rows."""
        g = draw_gumbel((B, K, width), generator, device, noise_dtype) if temperature > 0 else None
        u = draw_uniform((B, K), generator, device) if remasking == "random" else None
        if active is not None:
            g = None if g is None else g[active]
            u = None if u is None else u[active]
        return g, u

    with eval_mode(model, keep_mode):
        for b in range(plan.num_blocks):
            start, end = P0 + b * K, P0 + (b + 1) * K
            if early_stop and b > 0:
                done = (work[:, P0:start] == eos_id).any(dim=1)  # [B]
                work[done, start:] = eos_id  # LLaDA's convention: everything after EOS is EOS
                keep = (~done).nonzero(as_tuple=True)[0]  # sync once per block
                if keep.numel() == 0:
                    break
                active = None if keep.numel() == B else keep
            x = work if active is None else work[active]  # [B_a, T] (a copy when rows were dropped)
            m = mask if (mask is None or active is None) else mask[active]
            rows_n = x.shape[0]
            groups = _row_groups(m, rows_n, T, device) if cache == "none" else []
            schedule = num_transfer_tokens((x[:, start:end] == mask_id).sum(dim=1), S_b)  # [B_a, S_b]
            busy = (schedule.sum(dim=0) > 0).tolist() if unmasking == "schedule" else [True] * S_b  # sync
            kv = None
            for i in range(S_b):
                blk = x[:, start:end]  # [B_a, K] view
                masked = blk == mask_id
                if unmasking == "threshold" and i > 0 and not bool(masked.any()):
                    break  # every row's block is finished
                if not busy[i] and vocab is not None:
                    draws(vocab, rows_n)  # nothing to transfer: skip the forward, keep the stream aligned
                    continue
                if not dense:
                    rows, cols = masked.nonzero(as_tuple=True)  # [N] each (a host sync)
                if stats is not None:
                    stats["steps"] += 1
                if cache == "none":
                    logits = _block_logits(model, x, groups, start, end, rows, cols, head=head, workspace=workspace,
                                           cfg_scale=0.0, prompt_length=P0, mask_id=mask_id, stats=stats)
                else:
                    if i == 0 or refresh_every_step:
                        kv = None  # (refresh: free the old cache before the new one is built)
                        hidden, kv = fill(x, attention_mask=m, output_range=(start, end), **chunking)
                        count_forward(stats, rows_n, T)
                    if i > 0 or refresh_every_step:
                        hi = T if cache == "prefix" else end  # prefix: block + suffix; dual: the block only
                        # contiguous: a compiled forward would otherwise guard on the canvas stride
                        hidden = cached(x[:, start:hi].contiguous(), kv, (start, hi), output_range=(start, end))
                        count_forward(stats, rows_n, hi - start)
                    h = hidden.reshape(-1, hidden.shape[-1]) if dense else hidden[rows, cols]  # [B_a*K | N, D]
                    logits = at_least_fp32(workspace.head(model, h))  # [B_a*K | N, V]
                vocab = logits.shape[-1]
                gumbel, uniform = draws(vocab, rows_n)
                if gumbel is not None:
                    gumbel = gumbel.reshape(-1, vocab) if dense else gumbel[rows, cols]
                proposal = logits.argmax(dim=-1) if gumbel is None else gumbel_max(logits, gumbel, temperature)
                if uniform is None:
                    probs = workspace.softmax(logits)  # [B_a*K | N, V]
                    picked = probs.gather(-1, proposal[:, None]).squeeze(-1)
                    if dense:
                        confidence = picked.view(masked.shape).masked_fill(~masked, float("-inf"))  # [B_a, K]
                    else:
                        confidence = torch.full(masked.shape, float("-inf"), dtype=probs.dtype, device=device)
                        confidence[rows, cols] = picked
                else:
                    confidence = uniform.masked_fill(~masked, float("-inf"))  # [B_a, K]
                if unmasking == "schedule":
                    chosen = top_k_per_row(confidence, schedule[:, i]) & masked
                elif i == S_b - 1:
                    chosen = masked  # the block's budget is spent: commit everything left
                else:
                    best = torch.zeros_like(masked).scatter(1, confidence.argmax(dim=1, keepdim=True), True)
                    chosen = ((confidence > thr) | best) & masked
                if dense:
                    proposed = proposal.view(masked.shape)  # [B_a, K]; only chosen (masked) positions are used
                else:
                    proposed = blk.clone()
                    proposed[rows, cols] = proposal
                x[:, start:end] = torch.where(chosen, proposed, blk)
            if active is not None:
                work[active, start:end] = x[:, start:end]
    return canvas
