"""spg_lib.algos.masking: forward-process invariants (docs/algorithms.md#spg-forward-processes), statistics,
reproducibility,
UniGRPO structured noising (docs/algorithms.md#unigrpo), ESPO stratified coupled masks (docs/algorithms.md#espo) and the
mask-seed bookkeeping (docs/faithful-vs-fixed.md#official-quirks Q1–Q2)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spg_lib.algos.masking import (
    bound_mask,
    espo_stratified_counts,
    forward_espo,
    forward_process,
    forward_structured,
    mask_generator,
    mask_seed_index,
    structured_mask_ratio,
)
from spg_lib.algos.registry import FORWARD_PROCESSES

MASK = 0


def _batch(B: int, P: int, L: int, lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 50, (B, P + L), generator=g)  # never the mask id
    k = torch.arange(L)
    cmask = k.unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # [B, L]
    return ids, cmask


@st.composite
def _setting(draw):
    K = draw(st.sampled_from([1, 2, 3, 4]))
    NB = draw(st.integers(1, 4))
    L = K * NB
    B = draw(st.integers(1, 3))
    P = draw(st.integers(0, 3))
    lengths = draw(st.lists(st.integers(1, L), min_size=B, max_size=B))
    m = draw(st.integers(1, NB))
    p = draw(st.sampled_from([0.0, 0.3, 1.0]))
    seed = draw(st.integers(0, 2**31 - 1))
    return K, L, B, P, lengths, m, p, seed


@settings(max_examples=60, deadline=None)
@given(_setting())
def test_block_random_invariants(setting) -> None:
    K, L, B, P, lengths, m, p, seed = setting
    ids, cmask = _batch(B, P, L, lengths, seed % 97)
    g = torch.Generator().manual_seed(seed)
    nb = forward_process("block_random", ids, cmask, prompt_len=P, mask_id=MASK, num_mc=m, block_length=K,
                         p_mask_prompt=p, generator=g)
    assert nb.noisy.shape == (B, m, P + L)
    masked = nb.noisy == MASK  # [B, m, T]
    # unmasked positions keep their clean ids
    assert torch.equal(torch.where(masked, ids.unsqueeze(1), nb.noisy), ids.unsqueeze(1).expand(-1, m, -1))
    for b in range(B):
        L_c = lengths[b]
        n_blk = (L_c - 1) // K + 1
        for t in range(m):
            blk = int(nb.chosen_block[b, t])
            assert 0 <= blk < n_blk
            comp = masked[b, t, P:]
            start, end = blk * K, blk * K + K
            mask_len = min(K, L_c - K * blk)
            n_in = int(comp[start:start + mask_len].sum())
            assert 1 <= n_in <= mask_len  # chosen block: 1..mask_len in-completion tokens
            assert comp[end:].all()  # every later block masked
            assert comp[L_c:].all()  # every post-EOS position masked
            if p == 0.0:
                assert not masked[b, t, :P].any() and not comp[:start].any()
            if p == 1.0:
                assert masked[b, t, :P].all() and comp[:start].all()
            # |S_τ| >= 1 and the block mask marks prompt + earlier + chosen block only
            assert bound_mask(nb.noisy, cmask, prompt_len=P, mask_id=MASK)[b, t].sum() >= 1
            assert nb.block_mask[b, t, : P + end].all() and not nb.block_mask[b, t, P + end:].any()


@settings(max_examples=40, deadline=None)
@given(_setting())
def test_block_all_and_random_invariants(setting) -> None:
    K, L, B, P, lengths, m, p, seed = setting
    ids, cmask = _batch(B, P, L, lengths, seed % 89)
    nb = forward_process("block_all", ids, cmask, prompt_len=P, mask_id=MASK, num_mc=m, block_length=K,
                         p_mask_prompt=p, generator=torch.Generator().manual_seed(seed))
    masked = nb.noisy == MASK
    for b in range(B):
        for t in range(m):
            start = int(nb.chosen_block[b, t]) * K
            assert masked[b, t, P + start:].all()
            if p == 0.0:
                assert not masked[b, t, : P + start].any()
    nr = forward_process("random", ids, cmask, prompt_len=P, mask_id=MASK, num_mc=m, block_length=K,
                         p_mask_prompt=p, generator=torch.Generator().manual_seed(seed))
    masked = nr.noisy == MASK
    for b in range(B):
        L_c = lengths[b]
        for t in range(m):
            n = int(masked[b, t, P:P + L_c].sum())
            assert 1 <= n <= L_c
            assert masked[b, t, P + L_c:].all()
            if p == 0.0:
                assert not masked[b, t, :P].any()


@settings(max_examples=30, deadline=None)
@given(_setting())
def test_reproducible_from_generator_seed(setting) -> None:
    K, L, B, P, lengths, m, p, seed = setting
    ids, cmask = _batch(B, P, L, lengths)
    for name in ("random", "block_all", "block_random"):
        a = forward_process(name, ids, cmask, prompt_len=P, mask_id=MASK, num_mc=m, block_length=K, p_mask_prompt=p,
                            generator=torch.Generator().manual_seed(seed))
        b = forward_process(name, ids, cmask, prompt_len=P, mask_id=MASK, num_mc=m, block_length=K, p_mask_prompt=p,
                            generator=torch.Generator().manual_seed(seed))
        assert torch.equal(a.noisy, b.noisy) and torch.equal(a.chosen_block, b.chosen_block)


def test_global_rng_untouched_and_seeds_differ() -> None:
    ids, cmask = _batch(2, 4, 64, [64, 40])
    state = torch.get_rng_state()
    outs = [forward_process("block_random", ids, cmask, prompt_len=4, mask_id=MASK, num_mc=2, block_length=8,
                            generator=torch.Generator().manual_seed(s)).noisy for s in range(3)]
    assert torch.equal(state, torch.get_rng_state())
    assert not torch.equal(outs[0], outs[1]) and not torch.equal(outs[1], outs[2])


def test_block_random_statistics() -> None:
    """p-mask rate on prompt/earlier blocks ≈ p; chosen block never p-masked; n ~ U{1..mask_len}."""
    B, P, L, K = 400, 6, 16, 4
    ids, cmask = _batch(B, P, L, [L] * B)
    nb = forward_process("block_random", ids, cmask, prompt_len=P, mask_id=MASK, num_mc=2, block_length=K,
                         p_mask_prompt=0.25, generator=torch.Generator().manual_seed(0))
    masked = nb.noisy == MASK  # [B, 2, T]
    assert abs(float(masked[..., :P].float().mean()) - 0.25) < 0.03
    k = torch.arange(L)
    start = (nb.chosen_block * K).unsqueeze(-1)
    earlier = k < start
    rate = float(masked[..., P:][earlier].float().mean())
    assert abs(rate - 0.25) < 0.03
    in_block = (k >= start) & (k < start + K)
    counts = (masked[..., P:] & in_block).sum(-1).flatten()  # n per sample, uniform on {1..4}
    freq = torch.bincount(counts, minlength=5).float() / counts.numel()
    assert freq[0] == 0 and torch.all((freq[1:] - 0.25).abs() < 0.04)
    # with n_blk = NB the m = 2 chosen blocks are distinct and uniform
    assert torch.all(nb.chosen_block[:, 0] != nb.chosen_block[:, 1])
    bfreq = torch.bincount(nb.chosen_block.flatten(), minlength=4).float() / (2 * B)
    assert torch.all((bfreq - 0.25).abs() < 0.05)


def test_block_choice_mod_n_blk_is_nonuniform() -> None:
    """docs/faithful-vs-fixed.md#official-quirks Q5: NB = 4, L_c in 3 blocks → block 0 chosen with prob 2/4, blocks 1, 2
    with 1/4 each."""
    B = 4000
    ids, cmask = _batch(B, 0, 8, [6] * B)
    nb = forward_process("block_random", ids, cmask, prompt_len=0, mask_id=MASK, num_mc=1, block_length=2,
                         generator=torch.Generator().manual_seed(1))
    freq = torch.bincount(nb.chosen_block.flatten(), minlength=3).float() / B
    torch.testing.assert_close(freq, torch.tensor([0.5, 0.25, 0.25]), atol=0.03, rtol=0)


def test_forward_all_and_use_mask_prompt_flag() -> None:
    ids, cmask = _batch(2, 5, 6, [6, 3])
    nb = forward_process("all", ids, cmask, prompt_len=5, mask_id=MASK, num_mc=1, p_mask_prompt=1.0,
                         generator=torch.Generator().manual_seed(0))
    assert torch.all(nb.noisy == MASK)
    nb = forward_process("all", ids, cmask, prompt_len=5, mask_id=MASK, num_mc=1, p_mask_prompt=1.0,
                         use_mask_prompt=False, generator=torch.Generator().manual_seed(0))
    assert torch.equal(nb.noisy[:, 0, :5], ids[:, :5]) and torch.all(nb.noisy[:, 0, 5:] == MASK)
    with pytest.raises(ValueError, match="num_mc"):
        forward_process("all", ids, cmask, prompt_len=5, mask_id=MASK, num_mc=2,
                        generator=torch.Generator().manual_seed(0))


def test_min_max_t_bounds_masked_count() -> None:
    ids, cmask = _batch(300, 0, 10, [10] * 300)
    nr = forward_process("random", ids, cmask, prompt_len=0, mask_id=MASK, num_mc=1, min_t=0.3, max_t=0.5,
                         generator=torch.Generator().manual_seed(0))
    n = (nr.noisy == MASK).sum(-1).flatten()
    assert int(n.min()) == 3 and int(n.max()) == 5


def test_input_validation_errors() -> None:
    ids, cmask = _batch(1, 2, 8, [8])
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="block_length"):
        forward_process("block_random", ids, cmask, prompt_len=2, mask_id=MASK, num_mc=1, block_length=3, generator=g)
    with pytest.raises(ValueError, match="num_mc"):
        forward_process("block_random", ids, cmask, prompt_len=2, mask_id=MASK, num_mc=3, block_length=4, generator=g)
    with pytest.raises(ValueError, match="prompt_len"):
        forward_process("random", ids, cmask, prompt_len=3, mask_id=MASK, num_mc=1, generator=g)
    with pytest.raises(ValueError, match="valid names"):
        forward_process("nope", ids, cmask, prompt_len=2, mask_id=MASK, generator=g)
    assert FORWARD_PROCESSES.names() == ["all", "block_all", "block_random", "random"]


def test_all_padding_row_is_safe() -> None:
    ids, cmask = _batch(2, 2, 8, [8, 1])
    cmask[1] = False  # a padding row with no completion tokens at all
    for name in ("random", "block_random", "block_all"):
        nb = forward_process(name, ids, cmask, prompt_len=2, mask_id=MASK, num_mc=2, block_length=4,
                             generator=torch.Generator().manual_seed(0))
        assert bound_mask(nb.noisy, cmask, prompt_len=2, mask_id=MASK)[1].sum() == 0


def test_bound_mask_restricts_to_chosen_and_earlier_blocks() -> None:
    ids, cmask = _batch(1, 0, 8, [8])
    nb = forward_process("block_random", ids, cmask, prompt_len=0, mask_id=MASK, num_mc=2, block_length=2,
                         p_mask_prompt=0.0, generator=torch.Generator().manual_seed(3))
    full = bound_mask(nb.noisy, cmask, prompt_len=0, mask_id=MASK)
    restricted = bound_mask(nb.noisy, cmask, prompt_len=0, mask_id=MASK, block_mask=nb.block_mask,
                            include_later_blocks=False)
    for t in range(2):
        end = int(nb.chosen_block[0, t]) * 2 + 2
        assert torch.equal(restricted[0, t, :end], full[0, t, :end]) and not restricted[0, t, end:].any()
    with pytest.raises(ValueError, match="block_mask"):
        bound_mask(nb.noisy, cmask, prompt_len=0, mask_id=MASK, include_later_blocks=False)


# --------------------------------------------------------------------------------------------------
# UniGRPO and ESPO
# --------------------------------------------------------------------------------------------------


def test_structured_ratio_schedule() -> None:
    r1 = torch.tensor([0.0, 0.25, 0.9], dtype=torch.float64)  # float32 0.9 < 0.9 would floor to 89
    # T = 100: t₁ = 0, 25, 90; μ = 4: t_n = ⌊n/3·(100 − t₁) + t₁⌋
    got = torch.stack([structured_mask_ratio(r1, n, 4, num_steps=100) for n in range(4)])
    expected = torch.tensor([[0.0, 0.25, 0.90], [0.33, 0.50, 0.93], [0.66, 0.75, 0.96], [1.0, 1.0, 1.0]])
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(structured_mask_ratio(r1, 0, 1, num_steps=100), torch.tensor([0.0, 0.25, 0.9]))


def test_forward_structured_prompt_clean_and_counts() -> None:
    ids, cmask = _batch(3, 4, 8, [8, 5, 2])
    r1 = torch.tensor([0.5, 0.0, 1.0])
    nb = forward_structured(ids, cmask, prompt_len=4, mask_id=MASK, start_ratio=r1, inner_iteration=0,
                            num_iterations=4, num_steps=10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(nb.noisy[:, 0, :4], ids[:, :4])
    comp = nb.noisy[:, 0, 4:] == MASK
    # ratios .5, 0, 1 → n = round(.5·8)=4, max(round(0),1)=1, 2; post-EOS masked
    assert (comp & cmask).sum(-1).tolist() == [4, 1, 2]
    assert comp[~cmask].all()


def test_espo_stratified_counts_and_complement() -> None:
    g = torch.Generator().manual_seed(0)
    n = espo_stratified_counts(4, 7, g)  # L + 1 = 8, B = 4 → spacing 2
    diffs = (n.roll(-1) - n) % 8
    assert diffs.tolist() == [2, 2, 2, 2]
    ids, _ = _batch(4, 3, 7, [7] * 4)
    nb, t = forward_espo(ids, prompt_len=3, mask_id=MASK, num_mc=2, generator=torch.Generator().manual_seed(1))
    assert nb.noisy.shape == (4, 4, 10)
    assert torch.equal(nb.noisy[:, :, :3], ids[:, :3].unsqueeze(1).expand(-1, 4, -1))
    m = nb.noisy[..., 3:] == MASK
    assert torch.equal(m[:, 0], ~m[:, 1]) and torch.equal(m[:, 2], ~m[:, 3])
    torch.testing.assert_close(t[:, 0], m[:, 0].sum(-1).float() / 8)
    torch.testing.assert_close(t[:, 0] + t[:, 1], torch.full((4,), 7 / 8))


# --------------------------------------------------------------------------------------------------
# seeds
# --------------------------------------------------------------------------------------------------


def _legacy_schedule(G: int, mu: int) -> list[list[int]]:
    """Seed indices per buffer slot over the μ inner iterations (micro-batches consumed slot-major)."""
    out = [[0] * mu for _ in range(G)]
    counter = 0
    for n in range(mu):
        for slot in range(G):
            out[slot][n] = mask_seed_index(counter, n, mu, G, "legacy_modulo")
            counter += 1
    return out


def test_mask_seed_index_reproduces_section_10_item_1() -> None:
    assert _legacy_schedule(2, 4) == [[1, 3, 1, 3], [2, 0, 2, 0]]
    assert all(len(set(row)) == 1 for row in _legacy_schedule(4, 4))  # Sudoku: one seed for all iterations
    d1 = _legacy_schedule(2, 12)
    # D1 original: each slot sees 6 distinct seeds over its 12 iterations, each used twice
    assert all(len(set(row)) == 6 for row in d1)
    assert all(row.count(i) == 2 for row in d1 for i in set(row))
    # fixed mode: iteration n uses seed n for every slot
    assert all(mask_seed_index(c, n, 4, 2, "per_iteration") == n for c in range(8) for n in range(4))
    with pytest.raises(ValueError, match="seed_index_mode"):
        mask_seed_index(0, 0, 4, 2, "other")
    with pytest.raises(ValueError, match="inner_iteration"):
        mask_seed_index(0, 4, 4, 2, "per_iteration")


def test_mask_generator_modes() -> None:
    a = mask_generator(7, mode="global_reseed", rollout_index=0, rank=0)
    b = mask_generator(7, mode="global_reseed", rollout_index=5, rank=3)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))  # official: seed only
    c = mask_generator(torch.tensor(7), mode="local_generator", rollout_index=0, rank=0)
    d = mask_generator(7, mode="local_generator", rollout_index=0, rank=1)
    e = mask_generator(7, mode="local_generator", rollout_index=0, rank=0)
    assert not torch.equal(torch.rand(4, generator=c), torch.rand(4, generator=d))
    assert torch.equal(torch.rand(4, generator=mask_generator(7, mode="local_generator")), torch.rand(4, generator=e))
    with pytest.raises(ValueError, match="rng_mode"):
        mask_generator(7, mode="x")
