"""spg_lib.progress.Progress: periodic plain lines off a terminal (format, cadence, ETA), a bar on one, silence."""

from __future__ import annotations

import io

import pytest

from spg_lib.progress import Progress, format_duration


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_lines_every_few_steps_with_metrics_elapsed_and_time_left() -> None:
    out, clock = io.StringIO(), _Clock()
    p = Progress(10, "spg gsm8k", every=4, stream=out, clock=clock)
    for step in range(1, 11):
        clock.t += 6.5  # 6.5 s per step
        if step == 1:
            p.update(step, reward=0.25, loss=0.0123456)
        else:
            p.update(step, loss=0.5 / step)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "spg gsm8k: step 4/10 (40%) | reward 0.25 | loss 0.125 | elapsed 26s | left 39s",
        "spg gsm8k: step 8/10 (80%) | reward 0.25 | loss 0.0625 | elapsed 52s | left 13s",
        "spg gsm8k: step 10/10 (100%) | reward 0.25 | loss 0.05 | elapsed 1m05s | left 0s",
    ]


def test_resumed_stage_estimates_from_its_own_start_and_default_cadence() -> None:
    out, clock = io.StringIO(), _Clock()
    p = Progress(100, "", initial=60, stream=out, clock=clock)
    assert p.every == 5
    clock.t += 20.0
    p.update(65)
    assert out.getvalue() == "step 65/100 (65%) | elapsed 20s | left 2m20s\n"
    p.update(66)  # not a multiple of 5: no line
    assert out.getvalue().count("\n") == 1


def test_disabled_is_silent_and_terminal_gets_a_bar() -> None:
    out = io.StringIO()
    p = Progress(3, "x", enabled=False, stream=out)
    for s in (1, 2, 3):
        p.update(s, loss=1.0)
    assert out.getvalue() == ""

    class _Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = _Tty()
    with Progress(3, "bar", stream=tty) as p:
        for s in (1, 2, 3):
            p.update(s, loss=0.5)
    text = tty.getvalue()
    assert "bar" in text and "3/3" in text and "loss=0.5" in text and " | elapsed" not in text


def test_format_duration_and_bad_arguments() -> None:
    assert [format_duration(s) for s in (0, 59.9, 60, 3599, 3600, 7380)] == ["0s", "59s", "1m00s", "59m59s",
                                                                            "1h00m", "2h03m"]
    assert format_duration(float("nan")) == "?"
    with pytest.raises(ValueError, match="every"):
        Progress(3, every=0)
