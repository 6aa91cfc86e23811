"""Progress of a long stage: a tqdm bar on a terminal, a plain line every few steps everywhere else.

    with Progress(total=40, desc="spg gsm8k", every=5) as progress:
        for step in range(1, 41):
            ...
            progress.update(step, loss=0.0123, reward=0.412)

On a terminal (``stream.isatty()``) a tqdm bar shows the latest metrics as its postfix. Elsewhere (``dvc repro``,
a log file, a Kubeflow pod) one line goes to the stream every ``every`` steps and at the last step:

    spg gsm8k: step 10/40 (25%) | loss 0.0123 | reward 0.412 | elapsed 1m05s | left 3m15s

The metric keys and their order are the caller's. The last value of each is kept, so a metric reported on
some steps only (the reward, on rollout steps) shows on every line. "left" extrapolates the mean time per step
since the reporter started. ``enabled=False`` is silent (e.g. on every process but the main one).

Test: ``pytest tests/test_progress.py``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


def format_duration(seconds: float) -> str:
    """``45s``, ``1m05s``, ``2h03m`` (whole seconds, rounded down); ``?`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class Progress:
    """Reports ``update(step, **metrics)`` calls as a bar (terminal) or as periodic lines (no terminal).

    Args:
        total: the step count at which the stage ends.
        desc: label at the start of the bar / each line.
        every: steps between lines when not on a terminal (default: about 20 lines over the stage).
        enabled: False → silent.
        initial: the step the stage starts from (a resumed run); the time estimate counts from it.
        stream: where to write (default ``sys.stderr``); a terminal if ``stream.isatty()``.
        clock: seconds since an arbitrary origin (tests pass a fake one).
    """

    def __init__(self, total: int, desc: str = "", *, every: int | None = None, enabled: bool = True,
                 initial: int = 0, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        if total < 0 or initial < 0:
            raise ValueError(f"Progress: total ({total}) and initial ({initial}) must be >= 0")
        if every is not None and every < 1:
            raise ValueError(f"Progress: every must be >= 1, got {every}")
        self.total, self.desc, self.enabled = total, desc, enabled
        self.every = every or max(1, math.ceil(total / 20))
        self.stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._start, self._initial, self._step = clock(), initial, initial
        self._metrics: dict[str, Any] = {}
        self._bar = None
        isatty = getattr(self.stream, "isatty", None)
        if enabled and callable(isatty) and isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step", file=self.stream,
                             dynamic_ncols=True)

    def update(self, step: int, **metrics: Any) -> None:
        """Record that ``step`` steps are done, with the latest ``metrics`` (floats shown to 4 significant digits)."""
        self._metrics.update(metrics)
        done, self._step = step - self._step, step
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(done)
            self._bar.set_postfix({k: _value(v) for k, v in self._metrics.items()}, refresh=False)
        elif step % self.every == 0 or step >= self.total:
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        """The current status line: ``desc: step s/total (p%) | key value ... | elapsed e | left r``."""
        elapsed = self._clock() - self._start
        steps = self._step - self._initial
        left = elapsed / steps * (self.total - self._step) if steps > 0 else float("nan")
        pct = f" ({100 * self._step // self.total}%)" if self.total else ""
        parts = [f"{self.desc + ': ' if self.desc else ''}step {self._step}/{self.total}{pct}"]
        parts += [f"{k} {_value(v)}" for k, v in self._metrics.items()]
        parts += [f"elapsed {format_duration(elapsed)}", f"left {format_duration(left)}"]
        return " | ".join(parts)

    def close(self) -> None:
        """Close the bar (no-op for line output)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
