"""Fast block sampler vs the per-row reference, invariants of the algorithm, argument errors, model mode."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import MASK_ID, PAD_ID, DoubleLM, NoRangeLM, left_padded

from spg_lib.decoding import generate, generate_reference

LENGTHS = [5, 2, 7]  # left-padded prompts of different lengths
SETTINGS = {"gen_length": 8, "block_length": 4, "steps": 4, "mask_id": MASK_ID}


def _gen(fn, model, ids, mask, seed=None, **kw):
    g = None if seed is None else torch.Generator().manual_seed(seed)
    return fn(model, ids, mask, **{**SETTINGS, **kw}, generator=g)


@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_fast_equals_reference_on_left_padded_prompts(model, remasking, temperature) -> None:
    ids, mask = left_padded(LENGTHS)
    fast = _gen(generate, model, ids, mask, seed=3, remasking=remasking, temperature=temperature)
    ref = _gen(generate_reference, model, ids, mask, seed=3, remasking=remasking, temperature=temperature)
    assert torch.equal(fast, ref)
    # the fast path used the block-only output head and the extended attention mask
    fast_calls = [c for c in model.calls if c["input_ids"].shape[0] == len(LENGTHS)]
    assert [c["logits_range"] for c in fast_calls] == [(7, 11)] * 2 + [(11, 15)] * 2
    assert torch.equal(fast_calls[0]["attention_mask"], torch.cat([mask, torch.ones(3, 8, dtype=torch.long)], 1))


def test_fast_equals_reference_with_cfg(model) -> None:
    ids, mask = left_padded(LENGTHS, seed=1)
    for temperature in (0.0, 0.5):
        kw = {"cfg_scale": 1.5, "temperature": temperature, "steps": 8}
        fast = _gen(generate, model, ids, mask, seed=7, **kw)
        assert torch.equal(fast, _gen(generate_reference, model, ids, mask, seed=7, **kw))
    # CFG is batched: one call of 2B rows, the second half with every prompt position (padding too) masked
    batched = [c for c in model.calls if c["input_ids"].shape[0] == 2 * len(LENGTHS)]
    assert len(batched) == 2 * 8  # two runs of the fast path, 8 steps each
    un = batched[0]["input_ids"][len(LENGTHS) :]
    assert bool((un[:, : ids.shape[1]] == MASK_ID).all())
    assert torch.equal(batched[0]["attention_mask"][: len(LENGTHS)], batched[0]["attention_mask"][len(LENGTHS) :])
    assert not torch.equal(_gen(generate, model, ids, mask, cfg_scale=1.5), _gen(generate, model, ids, mask))


def test_fallback_without_logits_range_matches() -> None:
    ids, mask = left_padded(LENGTHS, seed=2)
    with_range, without = DoubleLM(seed=4), NoRangeLM(seed=4)
    a = _gen(generate, with_range, ids, mask, seed=0, temperature=1.0)
    b = _gen(generate, without, ids, mask, seed=0, temperature=1.0)
    assert torch.equal(a, b)
    assert without.calls[0]["logits_range"] is None


def test_padding_is_invisible(model) -> None:
    """A row decoded inside a padded batch equals the row decoded alone (attention mask honoured)."""
    ids, mask = left_padded(LENGTHS, seed=5)
    batch = _gen(generate, model, ids, mask)
    for r, n in enumerate(LENGTHS):
        alone = _gen(generate, model, ids[r : r + 1, -n:], None)
        assert torch.equal(batch[r, -8:], alone[0, -8:])


def test_greedy_is_deterministic_and_ignores_generator(model) -> None:
    ids, mask = left_padded(LENGTHS)
    a = _gen(generate, model, ids, mask)
    b = _gen(generate, model, ids, mask, seed=123)
    assert torch.equal(a, b)


def test_seeds_control_sampling(model) -> None:
    ids, mask = left_padded(LENGTHS)
    a = _gen(generate, model, ids, mask, seed=11, temperature=1.0)
    assert torch.equal(a, _gen(generate, model, ids, mask, seed=11, temperature=1.0))
    others = [_gen(generate, model, ids, mask, seed=s, temperature=1.0) for s in (12, 13, 14)]
    assert any(not torch.equal(a, o) for o in others)


def test_generator_stream_consumption_is_as_documented(model) -> None:
    """τ > 0 + random remasking draws, per step, rand(B, K, V) then rand(B, K), float64, nothing else."""
    ids, mask = left_padded(LENGTHS)
    g = torch.Generator().manual_seed(5)
    generate(model, ids, mask, **SETTINGS, temperature=1.0, remasking="random", generator=g)
    expected = torch.Generator().manual_seed(5)
    for _ in range(4):  # NB * S_b = 2 * 2 steps
        torch.rand((3, 4, 23), generator=expected, dtype=torch.float64)
        torch.rand((3, 4), generator=expected, dtype=torch.float64)
    assert torch.equal(torch.rand(5, generator=g), torch.rand(5, generator=expected))


def test_one_token_per_step_when_block_is_whole_canvas(model) -> None:
    ids, mask = left_padded(LENGTHS)
    out = _gen(generate, model, ids, mask, gen_length=6, block_length=6, steps=6)
    masks_seen = [int((c["input_ids"][:, -6:] == MASK_ID).sum(dim=1).unique().item()) for c in model.calls]
    assert masks_seen == [6, 5, 4, 3, 2, 1]
    assert not bool((out == MASK_ID).any())


def test_invariants_prompt_untouched_only_current_block_masks_change(model) -> None:
    ids, mask = left_padded(LENGTHS, seed=9)
    P = ids.shape[1]
    out = _gen(generate, model, ids, mask, gen_length=12, block_length=4, steps=7, temperature=1.0, seed=1)
    assert torch.equal(out[:, :P], ids)  # prompt (and its padding) untouched
    assert not bool((out == MASK_ID).any())  # nothing left masked
    assert not bool((out[:, :P] != ids).any())
    canvases = [c["input_ids"] for c in model.calls] + [out]
    assert len(model.calls) == 3 * (7 // 3)  # S_b = steps // NB = 2 steps per block
    for step, (before, after) in enumerate(itertools.pairwise(canvases)):
        block = step // 2
        changed = before != after
        assert bool((before[changed] == MASK_ID).all())  # only masks get written
        allowed = torch.zeros_like(changed)
        allowed[:, P + 4 * block : P + 4 * (block + 1)] = True
        assert not bool((changed & ~allowed).any())  # and only inside the current block
    assert all(not c["grad"] and not c["training"] for c in model.calls)


@pytest.mark.parametrize("start_training", [True, False])
def test_model_mode_restored(start_training) -> None:
    model = DoubleLM()
    model.train(start_training)
    ids, mask = left_padded([3, 4])
    for fn in (generate, generate_reference):
        out = _gen(fn, model, ids, mask)
        assert model.training is start_training
        assert not out.requires_grad
    # the output is an ordinary tensor usable in a later training forward with autograd
    model.train()
    model(out).logits.sum().backward()
    assert model.emb.grad is not None


def test_mode_restored_after_error() -> None:
    class Broken(DoubleLM):
        def forward(self, input_ids, attention_mask=None, logits_range=None):
            raise RuntimeError("boom")

    model = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        _gen(generate, model, *left_padded([3]))
    assert model.training


BAD_ARGS = [
    ({"gen_length": 10, "block_length": 4}, "gen_length"),
    ({"steps": 1}, "steps"),  # fewer steps than blocks (2)
    ({"steps": 0}, "steps"),
    ({"gen_length": 0}, "gen_length"),
    ({"block_length": 0}, "block_length"),
    ({"block_length": 2.0}, "block_length"),
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"remasking": "topk"}, "remasking"),
    ({"cfg_scale": -1.0}, "cfg_scale"),
    ({"mask_id": -1}, "mask_id"),
    ({"mask_id": 99}, "mask_id"),
    ({"gen_length": 400, "block_length": 4, "steps": 100}, "max_sequence_length"),
    ({"generator": 0}, "generator"),
]


@pytest.mark.parametrize("fn", [generate, generate_reference])
@pytest.mark.parametrize(("kw", "name"), BAD_ARGS)
def test_bad_arguments_name_the_argument(fn, kw, name) -> None:
    model = DoubleLM(max_len=120)
    ids, mask = left_padded([3, 4])
    with pytest.raises(ValueError, match=name):
        fn(model, ids, mask, **{**SETTINGS, **kw})
    assert not model.calls


@pytest.mark.parametrize("fn", [generate, generate_reference])
def test_bad_tensors_name_the_argument(fn, model) -> None:
    ids, mask = left_padded([3, 4])
    with pytest.raises(ValueError, match="prompt_ids"):
        fn(model, ids[:0], None, **SETTINGS)  # empty batch
    with pytest.raises(ValueError, match="prompt_ids"):
        fn(model, ids[0], None, **SETTINGS)
    with pytest.raises(ValueError, match="prompt_ids"):
        fn(model, ids.float(), None, **SETTINGS)
    with pytest.raises(ValueError, match="attention_mask"):
        fn(model, ids, mask[:, 1:], **SETTINGS)
    with pytest.raises(ValueError, match="attention_mask"):
        fn(model, ids, mask * 2, **SETTINGS)


def test_prompt_too_long_counts_prompt_length() -> None:
    model = DoubleLM(max_len=12)
    ids, mask = left_padded([5, 4])  # P = 5, P + L = 13 > 12
    with pytest.raises(ValueError, match="prompt_ids length 5"):
        generate(model, ids, mask, **SETTINGS)
    assert generate(model, ids[:, 1:], mask[:, 1:], **SETTINGS).shape == (2, 12)


def test_pad_value_irrelevant(model) -> None:
    ids, mask = left_padded(LENGTHS, seed=4)
    other = ids.masked_fill(mask == 0, PAD_ID + 5)
    a = _gen(generate, model, ids, mask)
    b = _gen(generate, model, other, mask)
    assert torch.equal(a[:, ids.shape[1] :], b[:, ids.shape[1] :])


def test_mixed_submodule_modes_restored() -> None:
    model = DoubleLM().train()
    model.dropout.eval()  # a frozen sub-module inside a training model keeps its own mode
    generate(model, *left_padded([3]), **SETTINGS)
    assert model.training and not model.dropout.training
