"""`spg_lib.bench.memory.TensorMemoryPeak`: live-tensor peak on hand-computed allocation patterns."""

import torch

from spg_lib.bench.memory import TensorMemoryPeak

MB = 1_000_000


def test_peak_and_current_follow_allocations_and_frees():
    with TensorMemoryPeak() as mem:
        a = torch.empty(MB, dtype=torch.uint8)
        b = torch.empty(2 * MB, dtype=torch.uint8)
        view = b[:10]  # shares b's storage: no new bytes
        del a  # 1 MB freed: live 2 MB
        c = torch.empty(3 * MB, dtype=torch.uint8)  # live 2 + 3 = 5 MB, the peak
        assert mem.current == 5 * MB
        del b  # the view still holds the storage
        assert mem.current == 5 * MB
        del view
        assert mem.current == 3 * MB
    assert mem.peak == 5 * MB
    del c
    assert mem.current == 0


def test_storages_from_before_the_block_are_not_counted():
    weight = torch.zeros(MB, dtype=torch.uint8)
    with TensorMemoryPeak() as mem:
        weight.add_(1)  # in place on a pre-existing storage
        t = weight.view(1000, 1000).t()  # a view of it
        s = t.sum(dtype=torch.int64)  # one 8-byte result
    assert mem.peak == 8 and int(s) == MB
    del t


def test_a_storage_grown_by_an_out_op_counts_at_its_largest_size():
    x = torch.ones(MB, dtype=torch.uint8)
    with TensorMemoryPeak() as mem:
        out = torch.empty(0, dtype=torch.uint8)
        torch.add(x, x, out=out)  # resizes out to 1 MB
        torch.add(x, x, out=out)  # same storage again: still 1 MB
    assert mem.peak == MB and mem.current == MB
    del out
    assert mem.current == 0
