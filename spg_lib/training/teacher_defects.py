"""Systematic defects injected into SFT demonstrations (the CPU demonstration's imperfect teacher).

A real SFT set is written by a teacher (people, a script, a larger model) that makes mistakes; the ones RL with
a verifiable reward removes cheaply are *systematic*: a convention or bug that the SFT model imitates faithfully
although the reward never accepts it. Each task names the defects it knows (``Task.teacher_defects``) and writes
them (``Task.with_teacher_defect``; e.g. Sudoku's ``off_by_one``: filled cells written 0-based); this module only
chooses, with a seed, which ``round(fraction · n)`` demonstrations carry one.

``none`` leaves the demonstrations untouched (the default everywhere except the tiny CPU demo, see params.yaml).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from spg_lib.tasks.base import NO_DEFECT, Task

__all__ = ["apply_teacher_defect", "check_teacher_defect"]


def check_teacher_defect(kind: str, fraction: float, task: Task | None = None) -> None:
    """Raises ValueError (naming the ``sft.`` field) for a ``fraction`` outside [0, 1] or, given ``task``, a
    ``kind`` that is neither ``none`` nor one of the task's defects."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"sft.teacher_defect_fraction must be in [0, 1], got {fraction}")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"sft.teacher_defect must be a defect name (or {NO_DEFECT!r}), got {kind!r}")
    if task is not None and kind != NO_DEFECT and kind not in task.teacher_defects:
        raise ValueError(f"sft.teacher_defect must be one of {[NO_DEFECT, *task.teacher_defects]} for task "
                         f"{task.name!r}, got {kind!r}")


def apply_teacher_defect(task: Task, examples: list[Mapping[str, Any]], kind: str, fraction: float,
                         seed: int) -> list[dict[str, Any]]:
    """Copies of ``examples`` with ``task``'s defect ``kind`` applied to round(fraction · n) of them (chosen with
    ``seed``).

    Raises:
        ValueError: see ``check_teacher_defect``.
    """
    check_teacher_defect(kind, fraction, task)
    out = [dict(ex) for ex in examples]
    if kind == NO_DEFECT or fraction == 0.0:
        return out
    for i in random.Random(seed).sample(range(len(out)), round(fraction * len(out))):
        out[i] = task.with_teacher_defect(out[i], kind)
    return out
