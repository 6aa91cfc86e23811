"""LLaDAModelLM fast-sampler hooks: hidden_states(output_range=...) and logits_from_hidden(out=...)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spg_lib.models import LLaDAConfig, LLaDAModelLM
from spg_lib.models.modeling_llada import init_weights_

ATOL = 1e-5


def _model(seed: int = 0, **overrides: object) -> LLaDAModelLM:
    kwargs = dict(
        d_model=32,
        n_heads=4,
        n_kv_heads=2,
        n_layers=2,
        mlp_hidden_size=48,
        vocab_size=40,
        embedding_size=40,
        mask_token_id=39,
        eos_token_id=1,
        pad_token_id=2,
        rope_theta=10000.0,
    )
    kwargs.update(overrides)
    model = LLaDAModelLM(LLaDAConfig(**kwargs))
    init_weights_(model, std=0.2, n_layers=2, generator=torch.Generator().manual_seed(seed))
    return model.eval()


def _ids(B: int, T: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, 40, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("output_range", [(0, 10), (6, 10), (3, 5), (0, 1)])
def test_output_range_equals_slicing_the_hidden_states(padded: bool, output_range: tuple[int, int]) -> None:
    model = _model()
    ids = _ids(3, 10)
    mask = torch.ones(3, 10, dtype=torch.long)
    if padded:
        mask[0, :4] = 0
        mask[2, :1] = 0
    s, e = output_range
    with torch.no_grad():
        full = model.hidden_states(ids, attention_mask=mask)  # [3, 10, D]
        part = model.hidden_states(ids, attention_mask=mask, output_range=output_range)  # [3, e - s, D]
    assert part.shape == (3, e - s, 32)
    torch.testing.assert_close(part, full[:, s:e], atol=ATOL, rtol=ATOL)


def test_output_range_with_gradients_and_bad_values() -> None:
    model = _model().train()
    ids = _ids(2, 6)
    model.hidden_states(ids, output_range=(2, 4)).sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p is not model.get_output_embeddings().weight)
    model.eval()
    for bad in [(4, 2), (0, 7), (-1, 3), (3, 3)]:
        with pytest.raises(ValueError, match="output_range"):
            model.hidden_states(ids, output_range=bad)


@pytest.mark.parametrize("overrides", [{}, {"weight_tying": True}, {"include_bias": True}, {"scale_logits": True}])
def test_logits_from_hidden_into_a_buffer_equals_forward(overrides: dict) -> None:
    model = _model(**overrides)
    if overrides.get("include_bias"):
        with torch.no_grad():
            model.get_output_embeddings().bias.normal_(generator=torch.Generator().manual_seed(1))
    ids = _ids(2, 7)
    with torch.no_grad():
        full = model(ids).logits  # [2, 7, V]
        hidden = model.hidden_states(ids).reshape(14, 32)  # [14, D]
        plain = model.logits_from_hidden(hidden)  # [14, V]
        buf = torch.full((20, 40), float("nan"))
        into = model.logits_from_hidden(hidden, out=buf[:14])
    assert into.data_ptr() == buf.data_ptr() and torch.equal(into, plain)
    torch.testing.assert_close(into.reshape(2, 7, 40), full, atol=ATOL, rtol=ATOL)


def test_logits_from_hidden_ignores_the_buffer_for_a_wrapped_head() -> None:
    class Wrapped(nn.Linear):  # stands for a LoRA / quantised head: its own forward must run
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1.0

    model = _model()
    old = model.get_output_embeddings()
    head = Wrapped(32, 40, bias=False)
    head.weight = old.weight
    model.set_output_embeddings(head)
    hidden = torch.randn(5, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        buf = torch.zeros(5, 40)
        out = model.logits_from_hidden(hidden, out=buf)
        torch.testing.assert_close(out, hidden @ old.weight.T + 1.0, atol=ATOL, rtol=ATOL)
    assert bool((buf == 0).all())
