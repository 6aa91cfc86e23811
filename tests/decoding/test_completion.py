"""completion_mask / completion_lengths (docs/decoding.md#completion-mask): up to and including the FIRST EOS."""

from __future__ import annotations

import pytest
import torch

from spg_lib.decoding import completion_lengths, completion_mask


def test_first_eos_included_and_nothing_after() -> None:
    ids = torch.tensor(
        [
            [5, 6, 9, 7, 9],  # first EOS at 2 (second EOS ignored)
            [5, 6, 7, 8, 4],  # no EOS -> all ones
            [9, 5, 5, 5, 5],  # EOS at position 0 -> only it
            [5, 5, 5, 5, 9],  # EOS last
        ]
    )
    mask = completion_mask(ids, 9)
    assert mask.dtype == torch.bool
    assert mask.int().tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert completion_lengths(mask).tolist() == [3, 5, 1, 5]


def test_collection_of_eos_ids() -> None:
    ids = torch.tensor([[5, 8, 9, 7], [5, 5, 9, 8], [5, 5, 5, 5]])
    for eos in ({8, 9}, [8, 9], (9, 8), torch.tensor([8, 9])):
        assert completion_mask(ids, eos).int().tolist() == [[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    assert completion_mask(ids, [9]).int().tolist() == [[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1]]


@pytest.mark.parametrize(
    ("ids", "eos", "name"),
    [
        (torch.tensor([1, 2]), 1, "completion_ids"),
        (torch.tensor([[1.0, 2.0]]), 1, "completion_ids"),
        (torch.tensor([[1, 2]]), [], "eos_id"),
        (torch.tensor([[1, 2]]), "9", "eos_id"),
        (torch.tensor([[1, 2]]), [1.5], "eos_id"),
        (torch.tensor([[1, 2]]), True, "eos_id"),
    ],
)
def test_errors_name_argument(ids, eos, name) -> None:
    with pytest.raises(ValueError, match=name):
        completion_mask(ids, eos)
