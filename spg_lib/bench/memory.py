"""Memory figures for the CPU benchmarks: live-tensor peak (the CPU analogue of CUDA's allocator peak) and the
process's resident set (Linux ``/proc``).

    with TensorMemoryPeak() as mem:        # every tensor a torch op returns inside the block is counted once
        ...                                # per storage, from its creation until its last Python reference dies
    mem.peak                               # bytes: max over the block of the live tensors it created

    reset_cpu_peak()                       # VmHWM := current VmRSS (False where the kernel refuses)
    before = status_kib("VmRSS")
    ...                                    # the measured block
    increase_kib = status_kib("VmHWM") - before

``TensorMemoryPeak`` measures what the computation holds, like ``torch.cuda.max_memory_allocated`` minus the
start: storages that existed before the block (weights, reused buffers) are not counted, nor are their views;
views share their base's storage; a storage grown by an ``out=`` op counts at its largest size. Workspace inside
one fused kernel is not visible. It adds Python work to every op, so time a block without it. The RSS high-water
mark instead includes the allocator's own growth and fragmentation: a process-level figure, not a working set.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["TensorMemoryPeak", "reset_cpu_peak", "status_kib"]


class TensorMemoryPeak(TorchDispatchMode):
    """Peak bytes of the live tensor storages created inside the ``with`` block (``peak``; ``current`` now)."""

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._bytes: dict[int, int] = {}  # storage id -> bytes counted
        self._holders: dict[int, int] = {}  # storage id -> live tracked tensors holding it
        self._seen: dict[int, weakref.ref] = {}  # id(tensor) -> weak reference (ids are reused after death)
        self._before: set[int] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage()._cdata for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t, inputs)
        return out

    def _track(self, t: torch.Tensor, inputs: set[int]) -> None:
        storage = t.untyped_storage()
        key, size = storage._cdata, storage.nbytes()
        if key not in self._bytes:
            if key in inputs:
                return  # a view / in-place / out= result of a storage that predates the block (weights, buffers)
            self._bytes[key], self._holders[key] = 0, 0
        if size > self._bytes[key]:  # new storage, or one grown by resize_/out=
            self.current += size - self._bytes[key]
            self._bytes[key] = size
            self.peak = max(self.peak, self.current)
        ref = self._seen.get(id(t))
        if ref is None or ref() is not t:
            self._holders[key] += 1
            self._seen[id(t)] = weakref.ref(t)
            weakref.finalize(t, self._release, id(t), key)

    def _release(self, tensor_id: int, key: int) -> None:
        self._seen.pop(tensor_id, None)
        self._holders[key] -= 1
        if self._holders[key] == 0:
            del self._holders[key]
            self.current -= self._bytes.pop(key)


def status_kib(key: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM, ...)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not found in /proc/self/status")


def reset_cpu_peak() -> bool:
    """Reset VmHWM to the current RSS (``echo 5 > /proc/self/clear_refs``); False when not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
