"""Forward (noising) processes that build the noisy inputs of the likelihood bounds.

Implements docs/algorithms.md#likelihood-estimators (SPG ``forward_type`` ∈ {all, random, block_all, block_random}),
docs/algorithms.md#unigrpo (UniGRPO / MMaDA structured noising) and docs/algorithms.md#espo (ESPO stratified +
complementary masking), plus the
mask-seed bookkeeping of docs/algorithms.md#mask-seeds / docs/faithful-vs-fixed.md#official-quirks Q1–Q2.

References: SPG (Wang et al., arXiv:2510.09541, Sec. 3.3 "block-wise masking", official ``forward_process``);
d1 / diffu-GRPO (Zhao et al., arXiv:2504.12216, one-step estimator); MMaDA (arXiv:2505.15809, UniGRPO
structured noising); ESPO (arXiv:2512.03759, stratified coupled ELBO).

Dimension letters (used in every shape comment):
    B  sequences, m  Monte-Carlo samples per sequence, P  prompt length (left padded),
    L  completion length (canvas), T = P + L, K  block length, NB = L / K blocks.

All functions are pure: randomness comes only from the explicit ``generator`` argument (never the global
RNG). Exact bit-level RNG streams of the official code (which globally re-seeds Python/NumPy/torch inside
``forward_process``) are NOT reproduced; "faithful" RNG mode only reproduces its *structure*: the masks are
a deterministic function of the 12-bit mask seed alone (see ``mask_generator``).

Test: ``pytest tests/algos/test_masking.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import typing
from collections.abc import Sequence
from typing import Literal

import torch

from spg_lib.algos.registry import FORWARD_PROCESSES

ForwardType = Literal["all", "random", "block_all", "block_random"]  # the SPG forward processes registered below
SeedIndexMode = Literal["legacy_modulo", "per_iteration"]
RngMode = Literal["global_reseed", "local_generator"]
#: how many mask-seed arrays a rollout draws: one shared by its micro-batches (``rollout``), one per micro-batch
#: slot (``slot``: seeds [μ]) or one per slot and Monte-Carlo sample (``slot_sample``: seeds [μ, m])
SeedLayout = Literal["rollout", "slot", "slot_sample"]
SEED_INDEX_MODES: tuple[str, ...] = typing.get_args(SeedIndexMode)
RNG_MODES: tuple[str, ...] = typing.get_args(RngMode)
SEED_LAYOUTS: tuple[str, ...] = typing.get_args(SeedLayout)
MASK_SEED_RANGE = 4096  # mask seeds are drawn from {0..4095}, as the official trainers do


@dataclasses.dataclass(frozen=True)
class NoisyBatch:
    """Output of a forward process.

    Attributes:
        noisy: LongTensor [B, m, T], clean ids with some positions replaced by ``mask_id``.
        block_mask: BoolTensor [B, m, T]; True on the prompt, earlier blocks and the chosen block, False on
            later blocks (official ``block_mask``; all True for non-block processes).
        chosen_block: LongTensor [B, m], the chosen block index (-1 for non-block processes).
    """

    noisy: torch.Tensor
    block_mask: torch.Tensor
    chosen_block: torch.Tensor


# --------------------------------------------------------------------------------------------------
# seeds
# --------------------------------------------------------------------------------------------------


def mask_seed_index(
    micro_step_counter: int, inner_iteration: int, num_iterations: int, grad_accum: int, mode: str
) -> int:
    """Index into the μ mask seeds of a rollout for one micro-batch (docs/algorithms.md#mask-seeds,
    docs/faithful-vs-fixed.md#official-quirks Q1).

    Args:
        micro_step_counter: number of micro-batches processed before this one (0-based, counts across
            rollouts, incremented once per micro-batch as in the official trainer).
        inner_iteration: inner iteration n ∈ [0, μ) this micro-batch belongs to.
        num_iterations: μ.
        grad_accum: gradient-accumulation steps G (micro-batches per optimizer step).
        mode: ``legacy_modulo`` → (counter + 1) mod μ, the official code (counter read after its increment);
            with G = 2, μ = 4 buffer slot 0 gets 1,3,1,3 and slot 1 gets 2,0,2,0; with G = μ = 4 a slot reuses
            one seed for all inner iterations. ``per_iteration`` → n (each inner iteration its own seed; equals
            ESPO's ((counter) mod (μ·G)) div G when micro-batches are consumed in order).

    Returns:
        int in [0, μ).
    """
    if num_iterations < 1:
        raise ValueError(f"num_iterations must be >= 1, got {num_iterations}")
    if grad_accum < 1:
        raise ValueError(f"grad_accum must be >= 1, got {grad_accum}")
    if micro_step_counter < 0:
        raise ValueError(f"micro_step_counter must be >= 0, got {micro_step_counter}")
    if not 0 <= inner_iteration < num_iterations:
        raise ValueError(f"inner_iteration must be in [0, {num_iterations}), got {inner_iteration}")
    if mode == "legacy_modulo":
        return (micro_step_counter + 1) % num_iterations
    if mode == "per_iteration":
        return inner_iteration
    raise ValueError(f"unknown seed_index_mode {mode!r}; valid: {list(SEED_INDEX_MODES)}")


def mask_generator(
    seed: int, *, mode: str, rollout_index: int = 0, rank: int = 0, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A local ``torch.Generator`` for one forward process call (docs/faithful-vs-fixed.md#official-quirks Q2).

    ``global_reseed`` emulates the official structure (masks are a function of the mask seed only, shared by
    all ranks and rollouts that draw the same 12-bit seed) without touching global RNG state; the bit-level
    stream of the official ``set_seed`` + ``torch.randperm``/``torch.rand`` calls is not reproduced.
    ``local_generator`` (fixed) seeds from a hash of (seed, rollout_index, rank) so that distinct ranks and
    rollouts never share mask streams.
    """
    seed = int(seed)  # official code passed a tensor to random.seed (TypeError on 3.11); always an int here
    if mode == "global_reseed":
        value = seed
    elif mode == "local_generator":
        digest = hashlib.blake2b(f"{seed}:{int(rollout_index)}:{int(rank)}".encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little") & ((1 << 63) - 1)
    else:
        raise ValueError(f"unknown rng_mode {mode!r}; valid: {list(RNG_MODES)}")
    gen = torch.Generator(device=device)
    gen.manual_seed(value)
    return gen


def draw_mask_seeds(layout: str, *, num_iterations: int, num_mc: int, generator: torch.Generator) -> torch.Tensor:
    """The mask seeds of one seed array: LongTensor [μ] (``rollout``, ``slot``) or [μ, m] (``slot_sample``).

    The caller draws one array per rollout (``rollout``) or one per micro-batch slot (``slot``, ``slot_sample``),
    each from its own ``generator``; ``seeds[mask_seed_index(...)]`` is then one seed, or one per MC sample.
    """
    if layout not in SEED_LAYOUTS:
        raise ValueError(f"unknown mask seed layout {layout!r}; valid: {list(SEED_LAYOUTS)}")
    shape = (num_iterations, num_mc) if layout == "slot_sample" else (num_iterations,)
    return torch.randint(0, MASK_SEED_RANGE, shape, generator=generator)


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _uniform_int(low: torch.Tensor, high: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Integer uniformly drawn from {low..high} elementwise (high clamped to ≥ low)."""
    high = torch.maximum(high, low)
    u = torch.rand(low.shape, generator=generator, device=low.device)
    return (low + torch.floor(u * (high - low + 1).to(u.dtype)).long()).clamp(max=high)


def _random_subset(eligible: torch.Tensor, n: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Uniformly random n-subset of the eligible positions, per row.

    Args:
        eligible: BoolTensor [..., L].
        n: LongTensor [...], clamped to [0, #eligible].
    Returns:
        BoolTensor [..., L].
    """
    scores = torch.rand(eligible.shape, generator=generator, device=eligible.device)  # [..., L]
    scores = scores.masked_fill(~eligible, 2.0)  # ineligible sort last
    rank = scores.argsort(dim=-1).argsort(dim=-1)  # [..., L] rank of each position
    n = torch.minimum(n, eligible.sum(-1))
    return (rank < n.unsqueeze(-1)) & eligible


def _check_inputs(ids: torch.Tensor, completion_mask: torch.Tensor, prompt_len: int, num_mc: int) -> None:
    if ids.dim() != 2:
        raise ValueError(f"ids must be [B, P+L], got shape {tuple(ids.shape)}")
    if completion_mask.dim() != 2 or completion_mask.shape[0] != ids.shape[0]:
        raise ValueError(f"completion_mask must be [B, L], got {tuple(completion_mask.shape)}")
    if prompt_len < 0 or prompt_len + completion_mask.shape[1] != ids.shape[1]:
        raise ValueError(
            f"prompt_len ({prompt_len}) + L ({completion_mask.shape[1]}) must equal ids length ({ids.shape[1]})"
        )
    if num_mc < 1:
        raise ValueError(f"num_mc must be >= 1, got {num_mc}")


def _ratio_bounds(count: torch.Tensor, min_t: float, max_t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """{max(⌊c·min_t⌋, 1), …, min(⌊c·max_t⌋, c)} as (low, high) tensors."""
    low = torch.floor(count.double() * min_t).long().clamp(min=1)
    high = torch.minimum(torch.floor(count.double() * max_t).long(), count)
    return low, high


def _prompt_perturbation(
    shape: tuple[int, ...], p: float, use: bool, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """BoolTensor `shape`, each entry True w.p. p (all False when not `use`). Always consumes the RNG."""
    u = torch.rand(shape, generator=generator, device=device)
    return (u < p) if use else torch.zeros(shape, dtype=torch.bool, device=device)


def _assemble(
    ids: torch.Tensor, prompt_len: int, num_mc: int, mask_id: int, masked_prompt: torch.Tensor,
    masked_completion: torch.Tensor, block_mask: torch.Tensor, chosen_block: torch.Tensor,
) -> NoisyBatch:
    masked = torch.cat([masked_prompt, masked_completion], dim=-1)  # [B, m, T]
    noisy = ids.unsqueeze(1).expand(-1, num_mc, -1).masked_fill(masked, mask_id)  # [B, m, T]
    return NoisyBatch(noisy=noisy, block_mask=block_mask, chosen_block=chosen_block)


# --------------------------------------------------------------------------------------------------
# SPG forward processes (docs/algorithms.md#spg-forward-processes)
# --------------------------------------------------------------------------------------------------


@FORWARD_PROCESSES.register("all")
def forward_all(
    ids: torch.Tensor, completion_mask: torch.Tensor, *, prompt_len: int, mask_id: int, num_mc: int = 1,
    block_length: int = 32, min_t: float = 0.0, max_t: float = 1.0, p_mask_prompt: float = 0.15,
    use_mask_prompt: bool = True, generator: torch.Generator,
) -> NoisyBatch:
    """docs/algorithms.md#spg-forward-processes (`all`) / D1 one-step input: completion fully masked, prompt tokens
    masked w.p. p.

    D1/WD1 always apply the prompt mask (their trainer ignores ``use_mask_prompt``): call with
    ``use_mask_prompt=True`` for them.

    Args:
        ids: LongTensor [B, T]; completion_mask: BoolTensor [B, L]. Other arguments as ``forward_block_random``
        (block_length, min_t, max_t unused). num_mc must be 1.
    Returns:
        NoisyBatch with noisy [B, 1, T].
    """
    _check_inputs(ids, completion_mask, prompt_len, num_mc)
    if num_mc != 1:
        raise ValueError(f"forward_type 'all' requires num_mc == 1, got {num_mc}")
    B, T = ids.shape
    L = T - prompt_len
    masked_prompt = _prompt_perturbation((B, 1, prompt_len), p_mask_prompt, use_mask_prompt, generator, ids.device)
    masked_completion = torch.ones(B, 1, L, dtype=torch.bool, device=ids.device)  # [B, 1, L]
    block_mask = torch.ones(B, 1, T, dtype=torch.bool, device=ids.device)
    chosen = torch.full((B, 1), -1, dtype=torch.long, device=ids.device)
    return _assemble(ids, prompt_len, 1, mask_id, masked_prompt, masked_completion, block_mask, chosen)


@FORWARD_PROCESSES.register("random")
def forward_random(
    ids: torch.Tensor, completion_mask: torch.Tensor, *, prompt_len: int, mask_id: int, num_mc: int = 2,
    block_length: int = 32, min_t: float = 0.0, max_t: float = 1.0, p_mask_prompt: float = 0.15,
    use_mask_prompt: bool = True, generator: torch.Generator,
) -> NoisyBatch:
    """docs/algorithms.md#spg-forward-processes (`random`): per sample n ~ U{max(⌊L_c·min_t⌋,1)..min(⌊L_c·max_t⌋,L_c)}
    random completion tokens masked,
    post-EOS positions masked, prompt tokens masked w.p. p (if use_mask_prompt).

    Returns:
        NoisyBatch with noisy [B, m, T].
    """
    _check_inputs(ids, completion_mask, prompt_len, num_mc)
    B, T = ids.shape
    cmask = completion_mask.bool().unsqueeze(1).expand(-1, num_mc, -1)  # [B, m, L]
    L_c = cmask.sum(-1)  # [B, m]
    low, high = _ratio_bounds(L_c, min_t, max_t)
    n = torch.minimum(_uniform_int(low, high, generator), L_c)  # [B, m]
    chosen_tokens = _random_subset(cmask, n, generator)  # [B, m, L]
    masked_completion = chosen_tokens | ~cmask  # post-EOS always masked
    masked_prompt = _prompt_perturbation((B, num_mc, prompt_len), p_mask_prompt, use_mask_prompt, generator,
                                         ids.device)
    block_mask = torch.ones(B, num_mc, T, dtype=torch.bool, device=ids.device)
    chosen = torch.full((B, num_mc), -1, dtype=torch.long, device=ids.device)
    return _assemble(ids, prompt_len, num_mc, mask_id, masked_prompt, masked_completion, block_mask, chosen)


def _choose_blocks(
    completion_mask: torch.Tensor, block_length: int, num_mc: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chosen block per MC sample: first m entries of randperm(NB) mod n_blk (docs/algorithms.md#spg-forward-processes
    (`block_all`), docs/faithful-vs-fixed.md#official-quirks Q5).

    Returns:
        chosen: LongTensor [B, m]; n_blk: LongTensor [B]; L_c: LongTensor [B].
    """
    B, L = completion_mask.shape
    if L % block_length:
        raise ValueError(f"block_length ({block_length}) must divide the completion length ({L})")
    NB = L // block_length
    if num_mc > NB:
        raise ValueError(f"num_mc ({num_mc}) must be <= number of blocks ({NB}) for block masking")
    L_c = completion_mask.bool().sum(-1)  # [B]
    n_blk = (torch.div(L_c - 1, block_length, rounding_mode="floor") + 1).clamp(min=1)  # [B]
    perm = torch.rand(B, NB, generator=generator, device=completion_mask.device).argsort(-1)  # [B, NB]
    chosen = perm[:, :num_mc] % n_blk.unsqueeze(-1)  # [B, m]
    return chosen, n_blk, L_c


def _block_geometry(chosen: torch.Tensor, L: int, block_length: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                             torch.Tensor]:
    """(earlier, in_chosen, later) BoolTensors [B, m, L] for the chosen blocks."""
    k = torch.arange(L, device=chosen.device)  # [L]
    start = (chosen * block_length).unsqueeze(-1)  # [B, m, 1]
    earlier = k < start
    later = k >= start + block_length
    return earlier, ~earlier & ~later, later


def _block_mask(prompt_len: int, later: torch.Tensor) -> torch.Tensor:
    B, m, _ = later.shape
    prompt = torch.ones(B, m, prompt_len, dtype=torch.bool, device=later.device)
    return torch.cat([prompt, ~later], dim=-1)  # [B, m, T]


@FORWARD_PROCESSES.register("block_all")
def forward_block_all(
    ids: torch.Tensor, completion_mask: torch.Tensor, *, prompt_len: int, mask_id: int, num_mc: int = 2,
    block_length: int = 32, min_t: float = 0.0, max_t: float = 1.0, p_mask_prompt: float = 0.15,
    use_mask_prompt: bool = True, generator: torch.Generator,
) -> NoisyBatch:
    """docs/algorithms.md#spg-forward-processes (`block_all`): the chosen block and every later block fully masked;
    prompt and earlier (clean) blocks
    masked independently w.p. p (if use_mask_prompt).

    Returns:
        NoisyBatch with noisy [B, m, T].
    """
    _check_inputs(ids, completion_mask, prompt_len, num_mc)
    B, T = ids.shape
    L = T - prompt_len
    chosen, _, _ = _choose_blocks(completion_mask, block_length, num_mc, generator)  # [B, m]
    earlier, _, later = _block_geometry(chosen, L, block_length)  # [B, m, L]
    perturb = _prompt_perturbation((B, num_mc, T), p_mask_prompt, use_mask_prompt, generator, ids.device)
    masked_completion = ~earlier | (earlier & perturb[..., prompt_len:])  # [B, m, L]
    masked_prompt = perturb[..., :prompt_len]  # [B, m, P]
    return _assemble(ids, prompt_len, num_mc, mask_id, masked_prompt, masked_completion,
                     _block_mask(prompt_len, later), chosen)


@FORWARD_PROCESSES.register("block_random")
def forward_block_random(
    ids: torch.Tensor, completion_mask: torch.Tensor, *, prompt_len: int, mask_id: int, num_mc: int = 2,
    block_length: int = 32, min_t: float = 0.0, max_t: float = 1.0, p_mask_prompt: float = 0.15,
    use_mask_prompt: bool = True, generator: torch.Generator,
) -> NoisyBatch:
    """docs/algorithms.md#spg-forward-processes (`block_random`), the process of every SPG run.

    Per sample: chosen block b (``randperm(NB) mod n_blk``); mask_len = min(K, L_c − K·b) completion tokens in
    it; a uniformly random n-subset of them masked with n ~ U{max(⌊mask_len·min_t⌋,1)..min(⌊mask_len·max_t⌋,
    mask_len)}; every later-block and post-EOS position masked; prompt and earlier-block tokens masked
    independently w.p. p (if use_mask_prompt); the chosen block is never touched by the p-mask.

    Args:
        ids: LongTensor [B, T] clean [prompt | completion].
        completion_mask: BoolTensor [B, L], True up to and including the first EOS.
        prompt_len: P. mask_id: the [M] token id. num_mc: m (≤ NB). block_length: K (divides L).
        min_t, max_t: ratio bounds. p_mask_prompt: p. use_mask_prompt: enable the p-perturbation.
        generator: the only source of randomness.
    Returns:
        NoisyBatch: noisy [B, m, T], block_mask [B, m, T], chosen_block [B, m].
    """
    _check_inputs(ids, completion_mask, prompt_len, num_mc)
    B, T = ids.shape
    L = T - prompt_len
    chosen, _, L_c = _choose_blocks(completion_mask, block_length, num_mc, generator)  # [B, m], [B]
    earlier, in_chosen, later = _block_geometry(chosen, L, block_length)  # [B, m, L]
    cmask = completion_mask.bool().unsqueeze(1)  # [B, 1, L]
    mask_len = (L_c.unsqueeze(-1) - block_length * chosen).clamp(min=0, max=block_length)  # [B, m]
    low, high = _ratio_bounds(mask_len, min_t, max_t)
    n = torch.minimum(_uniform_int(low, high, generator), mask_len)  # [B, m]
    in_block = _random_subset(in_chosen & cmask, n, generator)  # [B, m, L]
    perturb = _prompt_perturbation((B, num_mc, T), p_mask_prompt, use_mask_prompt, generator, ids.device)
    masked_completion = in_block | later | ~cmask | (earlier & perturb[..., prompt_len:])  # [B, m, L]
    masked_prompt = perturb[..., :prompt_len]  # [B, m, P]
    return _assemble(ids, prompt_len, num_mc, mask_id, masked_prompt, masked_completion,
                     _block_mask(prompt_len, later), chosen)


def forward_process(name: str, ids: torch.Tensor, completion_mask: torch.Tensor, **kwargs) -> NoisyBatch:
    """Dispatch to the forward process registered under ``name`` (all, random, block_all, block_random)."""
    return FORWARD_PROCESSES.get(name)(ids, completion_mask, **kwargs)


# --------------------------------------------------------------------------------------------------
# UniGRPO structured noising (docs/algorithms.md#unigrpo)
# --------------------------------------------------------------------------------------------------


def structured_mask_ratio(start_ratio: torch.Tensor, inner_iteration: int, num_iterations: int,
                          num_steps: int = 1000) -> torch.Tensor:
    """MMaDA Algorithm 1: t₁ = ⌊r₁·T⌋, t_n = ⌊(n−1)/(μ−1)·(T − t₁) + t₁⌋ (n 1-based), ratio = t_n / T.

    Args:
        start_ratio: FloatTensor [B], r₁ ∈ [0, 1] per response.
        inner_iteration: n − 1 ∈ [0, μ) (0-based). num_iterations: μ. num_steps: T (discretisation).
    Returns:
        FloatTensor [B], the mask ratio of this inner iteration (increases linearly to 1 at the last one).
    """
    if not 0 <= inner_iteration < num_iterations:
        raise ValueError(f"inner_iteration must be in [0, {num_iterations}), got {inner_iteration}")
    t1 = torch.floor(start_ratio.double() * num_steps)  # [B]
    frac = inner_iteration / (num_iterations - 1) if num_iterations > 1 else 0.0
    t_n = torch.floor(frac * (num_steps - t1) + t1)  # [B]
    return (t_n / num_steps).to(torch.float32)


def forward_structured(
    ids: torch.Tensor, completion_mask: torch.Tensor, *, prompt_len: int, mask_id: int, start_ratio: torch.Tensor,
    inner_iteration: int, num_iterations: int, num_steps: int = 1000, generator: torch.Generator,
) -> NoisyBatch:
    """UniGRPO structured noising (docs/algorithms.md#unigrpo): prompt clean; n = clamp(round(ratio_n·L_c), 1, L_c)
    uniformly random
    completion tokens masked at this iteration's ratio; post-EOS positions masked (as in SPG ``random``).

    Args:
        ids: LongTensor [B, T]; completion_mask: BoolTensor [B, L]; start_ratio: FloatTensor [B] (r₁, drawn once
        per rollout, e.g. ``torch.rand(B, generator=g)``); inner_iteration, num_iterations, num_steps: see
        ``structured_mask_ratio``.
    Returns:
        NoisyBatch with noisy [B, 1, T].
    """
    _check_inputs(ids, completion_mask, prompt_len, 1)
    B, T = ids.shape
    ratio = structured_mask_ratio(start_ratio, inner_iteration, num_iterations, num_steps)  # [B]
    cmask = completion_mask.bool().unsqueeze(1)  # [B, 1, L]
    L_c = cmask.sum(-1)  # [B, 1]
    n = torch.minimum(torch.round(ratio.unsqueeze(-1) * L_c).long().clamp(min=1), L_c)  # [B, 1]
    masked_completion = _random_subset(cmask, n, generator) | ~cmask  # [B, 1, L]
    masked_prompt = torch.zeros(B, 1, prompt_len, dtype=torch.bool, device=ids.device)
    block_mask = torch.ones(B, 1, T, dtype=torch.bool, device=ids.device)
    chosen = torch.full((B, 1), -1, dtype=torch.long, device=ids.device)
    return _assemble(ids, prompt_len, 1, mask_id, masked_prompt, masked_completion, block_mask, chosen)


# --------------------------------------------------------------------------------------------------
# ESPO stratified coupled masking (docs/algorithms.md#espo)
# --------------------------------------------------------------------------------------------------


def espo_stratified_counts(batch_size: int, gen_length: int, generator: torch.Generator,
                           device: torch.device | str = "cpu") -> torch.Tensor:
    """n_b = round(k + b·(L+1)/B) mod (L+1), k ~ U{0..L}, b = 0..B−1.

    Returns:
        LongTensor [B] of masked counts in {0..L}.
    """
    L = gen_length
    k = torch.randint(0, L + 1, (1,), generator=generator, device=device).double()  # [1]
    b = torch.arange(batch_size, device=device, dtype=torch.float64)  # [B]
    return torch.round(k + b * (L + 1) / batch_size).long() % (L + 1)


def forward_espo(
    ids: torch.Tensor, *, prompt_len: int, mask_id: int, num_mc: int = 2, coupled: bool = True,
    generator: torch.Generator | Sequence[torch.Generator],
) -> tuple[NoisyBatch, torch.Tensor]:
    """ESPO forward process: for each of ``num_mc`` draws, stratified counts n_b over the batch, a uniformly
    random n_b-subset of ALL L completion positions masked (post-EOS included, prompt clean) and, when
    ``coupled``, the complementary mask as a second sample.

    Args:
        ids: LongTensor [B, T].
        generator: one generator for every draw, or ``num_mc`` generators (draw i reads only the i-th; the
            official ESPO trainer seeds each Monte-Carlo draw separately).
    Returns:
        (NoisyBatch with noisy [B, m', T], t [B, m']) with m' = num_mc·(2 if coupled else 1); samples are
        ordered [draw0, complement0, draw1, complement1, …]; t = n/(L+1) (draw) or (L−n)/(L+1) (complement).
    """
    if ids.dim() != 2:
        raise ValueError(f"ids must be [B, P+L], got shape {tuple(ids.shape)}")
    if num_mc < 1:
        raise ValueError(f"num_mc must be >= 1, got {num_mc}")
    gens = [generator] * num_mc if isinstance(generator, torch.Generator) else list(generator)
    if len(gens) != num_mc:
        raise ValueError(f"forward_espo: got {len(gens)} generators for num_mc = {num_mc}")
    B, T = ids.shape
    L = T - prompt_len
    masks, ts = [], []
    for gen in gens:
        n = espo_stratified_counts(B, L, gen, ids.device)  # [B]
        full = torch.ones(B, L, dtype=torch.bool, device=ids.device)
        sel = _random_subset(full, n, gen)  # [B, L]
        masks.append(sel)
        ts.append(n.double() / (L + 1))
        if coupled:
            masks.append(~sel)
            ts.append((L - n).double() / (L + 1))
    m = len(masks)
    masked_completion = torch.stack(masks, dim=1)  # [B, m', L]
    masked_prompt = torch.zeros(B, m, prompt_len, dtype=torch.bool, device=ids.device)
    block_mask = torch.ones(B, m, T, dtype=torch.bool, device=ids.device)
    chosen = torch.full((B, m), -1, dtype=torch.long, device=ids.device)
    batch = _assemble(ids, prompt_len, m, mask_id, masked_prompt, masked_completion, block_mask, chosen)
    return batch, torch.stack(ts, dim=1).to(torch.float32)  # [B, m']


def bound_mask(
    noisy: torch.Tensor, completion_mask: torch.Tensor, *, prompt_len: int, mask_id: int,
    block_mask: torch.Tensor | None = None, include_later_blocks: bool = True,
) -> torch.Tensor:
    """Positions that enter the bounds: M[b,τ,k] = 1{noisy[b,τ,P+k] = [M]}·C[b,k] (S2).

    With ``include_later_blocks=False`` (paper-prose variant, docs/faithful-vs-fixed.md#official-quirks Q3) positions in
    later blocks
    (``block_mask`` False) are excluded.

    Args:
        noisy: LongTensor [B, m, T]; completion_mask: BoolTensor [B, L]; block_mask: BoolTensor [B, m, T].
    Returns:
        BoolTensor [B, m, L].
    """
    masked = (noisy[..., prompt_len:] == mask_id) & completion_mask.bool().unsqueeze(1)  # [B, m, L]
    if not include_later_blocks:
        if block_mask is None:
            raise ValueError("include_later_blocks=False needs block_mask")
        masked = masked & block_mask[..., prompt_len:]
    return masked
