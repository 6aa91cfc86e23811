"""LLaDAModelLM forward contract: padding invariance, logits_range, hidden_states, tying, errors, gradients."""

from __future__ import annotations

import pytest
import torch

from spg_lib.models import LLaDAConfig, LLaDAModelLM
from spg_lib.models.modeling_llada import init_weights_

ATOL = 1e-5


def _model(seed: int = 0, **overrides: object) -> LLaDAModelLM:
    kwargs = dict(
        d_model=32, n_heads=4, n_kv_heads=2, n_layers=2, mlp_hidden_size=48, vocab_size=40, embedding_size=40,
        mask_token_id=39, eos_token_id=1, pad_token_id=2, rope_theta=10000.0,
    )
    kwargs.update(overrides)
    model = LLaDAModelLM(LLaDAConfig(**kwargs))
    init_weights_(model, std=0.2, n_layers=2, generator=torch.Generator().manual_seed(seed))
    return model.eval()


def _ids(B: int, T: int, V: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, V, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_left_padding_gives_the_unpadded_logits(n_kv_heads: int) -> None:
    model = _model(n_kv_heads=n_kv_heads)
    lengths, T = [9, 6, 3], 9
    rows = [_ids(1, n, seed=n)[0] for n in lengths]
    batch = torch.full((len(rows), T), model.config.pad_token_id)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, row in enumerate(rows):
        batch[i, T - len(row):], mask[i, T - len(row):] = row, 1
    with torch.no_grad():
        padded = model(batch, attention_mask=mask).logits  # [3, 9, V]
        for i, row in enumerate(rows):
            alone = model(row[None]).logits[0]  # [n, V]
            torch.testing.assert_close(padded[i, T - len(row):], alone, atol=ATOL, rtol=ATOL)
        # Padding without the mask changes the real-token logits: the mask is what makes this work.
        unmasked = model(batch).logits
    assert (unmasked[2, -3:] - padded[2, -3:]).abs().max() > 1e-3


def test_all_ones_mask_equals_no_mask_and_empty_rows_stay_finite() -> None:
    model = _model()
    ids = _ids(2, 7)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, torch.ones_like(ids)).logits, model(ids).logits, atol=0, rtol=0)
        mask = torch.ones_like(ids)
        mask[1] = 0  # a fully padded row
        out = model(ids, attention_mask=mask).logits
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], model(ids[:1]).logits[0], atol=ATOL, rtol=ATOL)


def test_logits_range_equals_slicing_and_hidden_states_times_head() -> None:
    model = _model()
    ids, mask = _ids(3, 10), torch.ones(3, 10, dtype=torch.long)
    mask[0, :4] = 0
    with torch.no_grad():
        full = model(ids, attention_mask=mask).logits  # [3, 10, V]
        part = model(ids, attention_mask=mask, logits_range=(6, 10)).logits
        hidden = model.hidden_states(ids, attention_mask=mask)  # [3, 10, D]
    assert part.shape == (3, 4, 40) and hidden.shape == (3, 10, 32)
    torch.testing.assert_close(part, full[:, 6:10], atol=ATOL, rtol=ATOL)
    head = model.get_output_embeddings()
    assert isinstance(head, torch.nn.Linear) and head.bias is None and head.weight.shape == (40, 32)
    torch.testing.assert_close(hidden @ head.weight.T, full, atol=ATOL, rtol=ATOL)


def test_weight_tying_uses_the_embedding_as_head() -> None:
    model = _model(weight_tying=True)
    names = set(model.state_dict())
    assert "model.transformer.ff_out.weight" not in names and "model.transformer.wte.weight" in names
    head = model.get_output_embeddings()
    assert head.weight is model.get_input_embeddings().weight
    ids = _ids(2, 5)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, model.hidden_states(ids) @ head.weight.T, atol=ATOL, rtol=ATOL)


def test_position_ids_shift_changes_logits_but_rope_is_relative() -> None:
    model = _model()
    ids = _ids(1, 6)
    with torch.no_grad():
        base = model(ids).logits
        shifted = model(ids, position_ids=torch.arange(6)[None] + 5).logits
    # RoPE scores depend on position differences only, so a constant shift leaves the logits unchanged.
    torch.testing.assert_close(shifted, base, atol=1e-4, rtol=1e-4)


def test_gradients_flow_to_every_parameter() -> None:
    model = _model().train()
    ids = _ids(2, 6)
    model(ids).logits.logsumexp(-1).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_arguments_raise() -> None:
    model = _model()
    ids = _ids(2, 6)
    with pytest.raises(ValueError, match="logits_range"):
        model(ids, logits_range=(4, 2))
    with pytest.raises(ValueError, match="logits_range"):
        model(ids, logits_range=(0, 7))
    with pytest.raises(ValueError, match="attention_mask"):
        model(ids, attention_mask=torch.ones(2, 5))
    with pytest.raises(TypeError, match="labels"):
        model(ids, labels=ids)
    with pytest.raises(TypeError, match="output_hidden_states"):
        model(ids, output_hidden_states=True)
    assert model(ids, use_cache=False, return_dict=True).logits.shape == (2, 6, 40)


def test_bfloat16_forward_runs_and_stays_close() -> None:
    model = _model()
    ids = _ids(2, 6)
    with torch.no_grad():
        ref = model(ids).logits
        low = model.to(torch.bfloat16)(ids).logits
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), ref, atol=0.15, rtol=0.05)
