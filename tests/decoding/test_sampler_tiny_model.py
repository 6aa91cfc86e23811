"""The samplers on the real tiny LLaDA-architecture model (spg_lib.models): fast == reference, padding, modes."""

from __future__ import annotations

import pytest
import torch

from spg_lib.decoding import completion_mask, generate, generate_reference
from spg_lib.decoding._common import supports_hidden_head, supports_logits_range
from spg_lib.models import LLaDAModelLM, init_tiny_model
from tests.decoding.conftest import model_prompts


@pytest.fixture(scope="module")
def tiny() -> LLaDAModelLM:
    return init_tiny_model(seed=0)




@pytest.mark.parametrize(
    ("temperature", "remasking", "cfg_scale"),
    [(0.0, "low_confidence", 0.0), (1.0, "low_confidence", 0.0), (0.7, "random", 0.0), (0.0, "low_confidence", 1.0)],
)
def test_fast_equals_reference_on_tiny_model(tiny, temperature, remasking, cfg_scale) -> None:
    assert supports_logits_range(tiny)
    ids, mask = model_prompts(tiny, [6, 3, 9])
    kw = {
        "gen_length": 8,
        "block_length": 4,
        "steps": 4,
        "mask_id": tiny.config.mask_token_id,
        "temperature": temperature,
        "remasking": remasking,
        "cfg_scale": cfg_scale,
    }
    fast = generate(tiny, ids, mask, **kw, generator=torch.Generator().manual_seed(1))
    ref = generate_reference(tiny, ids, mask, **kw, generator=torch.Generator().manual_seed(1))
    assert torch.equal(fast, ref)
    assert torch.equal(fast[:, : ids.shape[1]], ids)
    assert not bool((fast == tiny.config.mask_token_id).any())
    if temperature == 0 and cfg_scale == 0:
        # the completion is a real sequence of tokens, not all the same one
        assert fast[:, ids.shape[1] :].unique().numel() > 1


def test_tiny_model_mode_restored_and_completion_mask(tiny) -> None:
    ids, mask = model_prompts(tiny, [4, 5], seed=3)
    tiny.train()
    try:
        out = generate(tiny, ids, mask, gen_length=8, block_length=8, steps=8, mask_id=tiny.config.mask_token_id)
        assert tiny.training
    finally:
        tiny.eval()
    completion = out[:, ids.shape[1] :]
    cmask = completion_mask(completion, tiny.config.eos_token_id)
    assert cmask.shape == completion.shape and bool(cmask[:, 0].all())


class _RangeOnly(torch.nn.Module):
    """The tiny model behind the plain ``forward(..., logits_range)`` contract (no hidden-state head path)."""

    def __init__(self, inner: LLaDAModelLM) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def forward(self, input_ids, attention_mask=None, logits_range=None):
        return self.inner(input_ids, attention_mask=attention_mask, logits_range=logits_range)


@pytest.mark.parametrize(
    ("temperature", "remasking", "cfg_scale"),
    [(0.0, "low_confidence", 0.0), (0.8, "low_confidence", 0.0), (0.5, "random", 0.0), (0.0, "low_confidence", 2.0)],
)
def test_hidden_head_path_equals_logits_range_path(tiny, temperature, remasking, cfg_scale) -> None:
    assert supports_hidden_head(tiny) and not supports_hidden_head(_RangeOnly(tiny))
    ids, mask = model_prompts(tiny, [7, 2, 5, 7], seed=4)
    kw = {
        "gen_length": 12,
        "block_length": 4,
        "steps": 9,  # 3 per block
        "mask_id": tiny.config.mask_token_id,
        "temperature": temperature,
        "remasking": remasking,
        "cfg_scale": cfg_scale,
    }
    hidden = generate(tiny, ids, mask, **kw, generator=torch.Generator().manual_seed(5))
    ranged = generate(_RangeOnly(tiny), ids, mask, **kw, generator=torch.Generator().manual_seed(5))
    assert torch.equal(hidden, ranged)


def test_tiny_model_padded_rows_decode_as_unpadded_rows(tiny) -> None:
    lengths = [6, 3, 6, 3]
    ids, mask = model_prompts(tiny, lengths, seed=7)
    kw = {"gen_length": 8, "block_length": 4, "steps": 8, "mask_id": tiny.config.mask_token_id}
    padded = generate(tiny, ids, mask, **kw)
    for n in (3, 6):
        rows = [r for r, m in enumerate(lengths) if m == n]
        alone = generate(tiny, ids[rows, -n:], torch.ones_like(ids[rows, -n:]), **kw)  # no padding: no mask
        assert torch.equal(padded[rows, -8:], alone[:, -8:])
    assert torch.equal(padded, generate_reference(tiny, ids, mask, **kw))


def test_tiny_model_more_steps_than_block_tokens(tiny) -> None:
    ids, mask = model_prompts(tiny, [4, 2], seed=2)
    kw = {"gen_length": 4, "block_length": 2, "steps": 8, "mask_id": tiny.config.mask_token_id, "temperature": 1.0}
    fast = generate(tiny, ids, mask, **kw, generator=torch.Generator().manual_seed(3))
    ref = generate_reference(tiny, ids, mask, **kw, generator=torch.Generator().manual_seed(3))
    assert torch.equal(fast, ref)
