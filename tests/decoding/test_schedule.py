"""num_transfer_tokens: sums to M, differs by <= 1, larger counts first (docs/decoding.md#algorithm)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spg_lib.decoding import num_transfer_tokens


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 300), min_size=1, max_size=6), steps=st.integers(1, 40))
def test_schedule_properties(counts: list[int], steps: int) -> None:
    out = num_transfer_tokens(torch.tensor(counts), steps)
    assert out.shape == (len(counts), steps)
    assert out.dtype == torch.long
    assert out.sum(dim=1).tolist() == counts
    assert bool(((out.max(dim=1).values - out.min(dim=1).values) <= 1).all())
    assert bool((out[:, :-1] >= out[:, 1:]).all())  # non-increasing: larger counts first
    assert bool((out >= 0).all())


def test_schedule_golden() -> None:
    # 10 masks over 4 steps: base 2, remainder 2 -> first two steps take 3
    assert num_transfer_tokens(torch.tensor([10, 32, 3]), 4).tolist() == [[3, 3, 2, 2], [8, 8, 8, 8], [1, 1, 1, 0]]


@pytest.mark.parametrize(
    ("counts", "steps", "name"),
    [
        (torch.tensor([3]), 0, "steps"),
        (torch.tensor([3]), 2.0, "steps"),
        (torch.tensor([[3]]), 2, "mask_counts"),
        (torch.tensor([3.0]), 2, "mask_counts"),
        (torch.tensor([-1]), 2, "mask_counts"),
    ],
)
def test_schedule_errors(counts, steps, name) -> None:
    with pytest.raises(ValueError, match=name):
        num_transfer_tokens(counts, steps)
