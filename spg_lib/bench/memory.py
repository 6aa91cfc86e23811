"""Process memory figures for the CPU benchmarks (Linux ``/proc``): resident set and its high-water mark.

    reset_cpu_peak()                       # VmHWM := current VmRSS (False where the kernel refuses)
    before = status_kib("VmRSS")
    ...                                    # the measured block
    increase_kib = status_kib("VmHWM") - before

The high-water mark sees every transient allocation, which sampling RSS from a thread can miss.
"""

from __future__ import annotations

__all__ = ["reset_cpu_peak", "status_kib"]


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
