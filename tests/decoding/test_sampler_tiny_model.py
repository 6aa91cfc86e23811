"""The samplers on the real tiny LLaDA-architecture model (spg_lib.models): fast == reference, padding, modes."""

from __future__ import annotations

import pytest
import torch

from spg_lib.decoding import completion_mask, generate, generate_reference
from spg_lib.decoding._common import supports_logits_range
from spg_lib.models import LLaDAModelLM, init_tiny_model


@pytest.fixture(scope="module")
def tiny() -> LLaDAModelLM:
    return init_tiny_model(seed=0)


def _prompts(model: LLaDAModelLM, lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = model.config
    special = {cfg.mask_token_id, cfg.eos_token_id, cfg.pad_token_id}
    vocab = model.get_output_embeddings().weight.shape[0]
    allowed = torch.tensor([v for v in range(vocab) if v not in special])
    g = torch.Generator().manual_seed(seed)
    P = max(lengths)
    ids = torch.full((len(lengths), P), cfg.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(lengths), P), dtype=torch.long)
    for r, n in enumerate(lengths):
        ids[r, P - n :] = allowed[torch.randint(len(allowed), (n,), generator=g)]
        mask[r, P - n :] = 1
    return ids, mask


@pytest.mark.parametrize(
    ("temperature", "remasking", "cfg_scale"),
    [(0.0, "low_confidence", 0.0), (1.0, "low_confidence", 0.0), (0.7, "random", 0.0), (0.0, "low_confidence", 1.0)],
)
def test_fast_equals_reference_on_tiny_model(tiny, temperature, remasking, cfg_scale) -> None:
    assert supports_logits_range(tiny)
    ids, mask = _prompts(tiny, [6, 3, 9])
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
    ids, mask = _prompts(tiny, [4, 5], seed=3)
    tiny.train()
    try:
        out = generate(tiny, ids, mask, gen_length=8, block_length=8, steps=8, mask_id=tiny.config.mask_token_id)
        assert tiny.training
    finally:
        tiny.eval()
    completion = out[:, ids.shape[1] :]
    cmask = completion_mask(completion, tiny.config.eos_token_id)
    assert cmask.shape == completion.shape and bool(cmask[:, 0].all())
