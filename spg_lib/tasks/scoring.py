"""Score a file of generations: ``{"question", "completion", "ground_truth"}`` per JSONL line.

`score_rows` is what ``spg score`` and ``spg evaluate`` call. Accuracy is
``100 * Σ correct / Σ total``: per-example exact match for GSM8K/MATH500/Countdown and
micro-averaged cell accuracy for Sudoku (Σ correct empty cells / Σ empty cells, docs/algorithms.md#evaluation-protocol,
docs/faithful-vs-fixed.md#official-quirks Q16).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import Any

from spg_lib.tasks.base import ScoreResult, Task, check_mode
from spg_lib.tasks.io import DataError, read_table

__all__ = ["ScoreSummary", "score_file", "score_rows"]


@dataclasses.dataclass(frozen=True)
class ScoreSummary:
    """Benchmark totals: `n` examples, Σ `correct` over Σ `total`, `accuracy` in percent."""

    task: str
    mode: str
    n: int
    correct: float
    total: float
    accuracy: float
    results: tuple[ScoreResult, ...] = dataclasses.field(repr=False, default=())

    def as_dict(self) -> dict[str, Any]:
        correct: float | int = int(self.correct) if float(self.correct).is_integer() else self.correct
        return {
            "task": self.task,
            "mode": self.mode,
            "n": self.n,
            "correct": correct,
            "total": int(self.total) if float(self.total).is_integer() else self.total,
            "accuracy": self.accuracy,
        }


def score_rows(
    task: Task, rows: Iterable[tuple[str, Mapping[str, Any]]], *, mode: str = "fixed"
) -> ScoreSummary:
    """Score (location, row) pairs; each row needs ``completion`` and ``ground_truth``.

    The official eval files name the completion ``generations``; that key is accepted too.

    Raises:
        DataError: a row lacks a field or has the wrong type (message names the location).
    """
    m = check_mode(mode)
    results = []
    for where, row in rows:
        completion = row.get("completion", row.get("generations"))
        if completion is None:
            raise DataError(f"{where}: missing field 'completion'")
        if not isinstance(completion, str):
            raise DataError(f"{where}: field 'completion' must be str, got {type(completion).__name__}")
        if "ground_truth" not in row:
            raise DataError(f"{where}: missing field 'ground_truth'")
        gt = task.check_ground_truth(row["ground_truth"], where)
        results.append(task.score(completion, gt, mode=m))
    if not results:
        raise DataError("no generations to score (empty dataset)")
    correct = sum(r.correct for r in results)
    total = sum(r.total for r in results)
    accuracy = 100.0 * correct / total if total else 0.0
    return ScoreSummary(task.name, m, len(results), correct, total, accuracy, tuple(results))


def score_file(task: Task, path: str | os.PathLike[str], *, mode: str = "fixed") -> ScoreSummary:
    """Score a ``.jsonl`` (or ``.json``) generations file."""
    return score_rows(task, read_table(path), mode=mode)
