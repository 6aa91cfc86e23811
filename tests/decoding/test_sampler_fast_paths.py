"""The fast sampler's shortcuts (no-padding, dropped all-padding columns, skipped empty steps, buffers) keep
its output equal to the plain reference. Test double: ``DoubleLM`` (float64, records every call)."""

from __future__ import annotations

import pytest
import torch
from conftest import MASK_ID, PAD_ID, DoubleLM, left_padded

from spg_lib.decoding import generate, generate_reference, sampler
from spg_lib.decoding.sampler import _Workspace

SETTINGS = {"gen_length": 8, "block_length": 4, "steps": 4, "mask_id": MASK_ID}


def _gen(fn, model, ids, mask, seed=None, **kw):
    g = None if seed is None else torch.Generator().manual_seed(seed)
    return fn(model, ids, mask, **{**SETTINGS, **kw}, generator=g)


@pytest.mark.parametrize(("temperature", "remasking"), [(0.0, "low_confidence"), (0.9, "random")])
def test_all_ones_mask_passes_no_mask_and_equals_none(temperature, remasking) -> None:
    ids, _ = left_padded([5, 5, 5], seed=6)
    kw = {"temperature": temperature, "remasking": remasking}
    with_ones, with_none, ref = DoubleLM(), DoubleLM(), DoubleLM()
    a = _gen(generate, with_ones, ids, torch.ones_like(ids), seed=2, **kw)
    b = _gen(generate, with_none, ids, None, seed=2, **kw)
    c = _gen(generate_reference, ref, ids, torch.ones_like(ids), seed=2, **kw)
    assert torch.equal(a, b) and torch.equal(a, c)
    assert all(call["attention_mask"] is None for call in with_ones.calls)  # unmasked attention every step


@pytest.mark.parametrize("cfg_scale", [0.0, 1.0])
def test_padded_and_unpadded_batches_agree(cfg_scale) -> None:
    """Rows of a left-padded batch (masked attention) decode as the same rows in unpadded batches (τ = 0)."""
    lengths = [5, 3, 5, 3]
    ids, mask = left_padded(lengths, seed=8)
    model = DoubleLM()
    padded = _gen(generate, model, ids, mask, cfg_scale=cfg_scale)
    assert all(call["attention_mask"] is not None for call in model.calls)
    for n in set(lengths):
        rows = [r for r, m in enumerate(lengths) if m == n]
        unpadded = DoubleLM()
        alone = _gen(generate, unpadded, ids[rows, -n:], torch.ones_like(ids[rows, -n:]), cfg_scale=cfg_scale)
        assert torch.equal(padded[rows, -8:], alone[:, -8:])
        assert all(call["attention_mask"] is None for call in unpadded.calls)


@pytest.mark.parametrize(
    ("temperature", "remasking", "cfg_scale"),
    [(0.0, "low_confidence", 0.0), (0.8, "random", 0.0), (0.5, "low_confidence", 1.0)],
)
def test_columns_padded_in_every_row_are_dropped(temperature, remasking, cfg_scale) -> None:
    ids, mask = left_padded([4, 2, 3], seed=3)  # P = 4
    extra = 3
    wide_ids = torch.cat([torch.full((3, extra), PAD_ID), ids], dim=1)  # P = 7, columns 0..3 padding everywhere
    wide_mask = torch.cat([torch.zeros((3, extra), dtype=torch.long), mask], dim=1)
    kw = {"temperature": temperature, "remasking": remasking, "cfg_scale": cfg_scale}
    model = DoubleLM()
    wide = _gen(generate, model, wide_ids, wide_mask, seed=4, **kw)
    narrow = _gen(generate, DoubleLM(), ids, mask, seed=4, **kw)
    ref = _gen(generate_reference, DoubleLM(), wide_ids, wide_mask, seed=4, **kw)
    assert torch.equal(wide, ref)
    assert torch.equal(wide[:, :7], wide_ids)  # the prompt, padding included, is returned unchanged
    assert torch.equal(wide[:, 7:], narrow[:, 4:])
    assert all(call["input_ids"].shape[1] == 4 + 8 for call in model.calls)
    assert [c["logits_range"] for c in model.calls] == [(4, 8)] * 2 + [(8, 12)] * 2


def test_all_padding_prompts_decode_like_the_reference() -> None:
    ids, _ = left_padded([3, 3])
    mask = torch.zeros_like(ids)
    model = DoubleLM()
    out = _gen(generate, model, ids, mask, seed=1, temperature=0.5)
    assert torch.equal(out, _gen(generate_reference, DoubleLM(), ids, mask, seed=1, temperature=0.5))
    assert all(call["input_ids"].shape[1] == 8 and call["attention_mask"] is None for call in model.calls)


@pytest.mark.parametrize(
    ("temperature", "remasking"), [(0.0, "low_confidence"), (1.0, "random"), (0.6, "low_confidence")]
)
def test_steps_with_nothing_to_decode_skip_the_forward(temperature, remasking) -> None:
    """steps_per_block (4) > block_length (2): steps 3 and 4 of a block have nothing to write."""
    ids, mask = left_padded([3, 5], seed=2)
    kw = {"gen_length": 4, "block_length": 2, "steps": 8, "temperature": temperature, "remasking": remasking}
    model = DoubleLM()
    g = torch.Generator().manual_seed(9)
    out = generate(model, ids, mask, **{**SETTINGS, **kw}, generator=g)
    g_ref = torch.Generator().manual_seed(9)
    ref = generate_reference(DoubleLM(), ids, mask, **{**SETTINGS, **kw}, generator=g_ref)
    assert torch.equal(out, ref)
    assert len(model.calls) == 2 * 2  # 2 blocks x 2 steps that decode something
    # the skipped steps still made their documented draws: both generators are at the same point
    assert torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=g_ref))
    assert not bool((out == MASK_ID).any())


def test_workspace_reuses_its_buffers() -> None:
    ws = _Workspace()
    big = torch.randn(6, 5, dtype=torch.float64)
    first = ws.softmax(big)
    torch.testing.assert_close(first, torch.softmax(big, -1), atol=0, rtol=0)
    small = torch.randn(2, 5, dtype=torch.float64)
    second = ws.softmax(small)
    assert second.data_ptr() == first.data_ptr() and torch.equal(second, torch.softmax(small, -1))
    other = ws.softmax(small.float())  # another dtype: a new buffer
    assert other.dtype == torch.float32 and torch.equal(other, torch.softmax(small.float(), -1))


@pytest.mark.parametrize("tokens_per_thread", [1, 30, 60])
@pytest.mark.parametrize(
    ("temperature", "remasking", "cfg_scale"),
    [(0.0, "low_confidence", 0.0), (0.8, "random", 0.0), (0.6, "low_confidence", 1.5)],
)
def test_row_groups_give_the_batched_result(monkeypatch, tokens_per_thread, temperature, remasking, cfg_scale):
    """Forward calls over groups of rows (the CPU cache-size split) change no token; each group drops its own
    all-padding columns and passes no mask when none of its rows is padded."""
    lengths = [5, 2, 7, 7, 3]
    ids, mask = left_padded(lengths, seed=12)
    kw = {"temperature": temperature, "remasking": remasking, "cfg_scale": cfg_scale}
    whole = _gen(generate, DoubleLM(), ids, mask, seed=6, **kw)
    monkeypatch.setattr(sampler, "CPU_TOKENS_PER_THREAD", tokens_per_thread)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    model = DoubleLM()
    grouped = _gen(generate, model, ids, mask, seed=6, **kw)
    assert torch.equal(grouped, whole)
    assert torch.equal(grouped, _gen(generate_reference, DoubleLM(), ids, mask, seed=6, **kw))
    rows_per_call = max(1, tokens_per_thread // (7 + 8))  # P = 7, L = 8
    n_rows = len(lengths) * (2 if cfg_scale > 0 else 1)
    first_step = model.calls[: -(-n_rows // rows_per_call)]
    assert [c["input_ids"].shape[0] for c in first_step] == [
        min(rows_per_call, n_rows - r) for r in range(0, n_rows, rows_per_call)
    ]
    if rows_per_call == 1:  # every row alone: its unpadded canvas, no attention mask (like the reference)
        assert all(c["attention_mask"] is None for c in model.calls)
        widths = [c["input_ids"].shape[1] for c in first_step]
        assert widths == [n + 8 for n in lengths] * (2 if cfg_scale > 0 else 1)
