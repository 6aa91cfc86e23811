"""Systematic defects injected into SFT demonstrations (the CPU demonstration's imperfect teacher).

A real SFT set is written by a teacher (people, a script, a larger model) that makes mistakes; the ones RL with
a verifiable reward removes cheaply are *systematic*: a convention or bug that the SFT model imitates faithfully
although the reward never accepts it. ``off_by_one`` is such a bug for 4×4 Sudoku: the teacher writes the cells
it filled in 0-based digits (1-4 → 0-3) while keeping the givens, on a seeded ``fraction`` of the puzzles. The
SFT model learns both conventions and mixes them in its answers (measured: its greedy answers carry both); the
reward (and the test scorer) only accept 1-based digits.

``none`` leaves the demonstrations untouched (the default everywhere except the tiny CPU demo, see params.yaml).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

TEACHER_DEFECTS = ("none", "off_by_one")


def off_by_one_solution(puzzle: str, solution: str) -> str:
    """The solved grid with every originally empty cell written 0-based (d → d − 1); givens unchanged."""
    return "".join(s if p != "0" else str(int(s) - 1) for p, s in zip(puzzle, solution, strict=True))


def check_teacher_defect(task: str, kind: str, fraction: float) -> None:
    """Raises ValueError (naming the ``sft.`` field) for an unknown ``kind``, a ``fraction`` outside [0, 1], or a
    defect that does not exist for ``task``."""
    if kind not in TEACHER_DEFECTS:
        raise ValueError(f"sft.teacher_defect must be one of {list(TEACHER_DEFECTS)}, got {kind!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"sft.teacher_defect_fraction must be in [0, 1], got {fraction}")
    if kind != "none" and fraction > 0.0 and task != "sudoku":
        raise ValueError(f"sft.teacher_defect {kind!r} is defined for sudoku only, not {task!r}")


def apply_teacher_defect(task: str, examples: list[Mapping[str, Any]], kind: str, fraction: float,
                         seed: int) -> list[dict[str, Any]]:
    """Copies of ``examples`` with the defect applied to round(fraction · n) of them (chosen with ``seed``).

    Raises:
        ValueError: see ``check_teacher_defect``.
    """
    check_teacher_defect(task, kind, fraction)
    out = [dict(ex) for ex in examples]
    if kind == "none" or fraction == 0.0:
        return out
    chosen = random.Random(seed).sample(range(len(out)), round(fraction * len(out)))
    for i in chosen:
        out[i]["solution"] = off_by_one_solution(out[i]["puzzle"], out[i]["solution"])
    return out
