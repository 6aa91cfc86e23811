"""4×4 Sudoku with SPG's 3-shot prompt (docs/algorithms.md#tasks-and-rewards, docs/algorithms.md#evaluation-protocol);
metric = micro-averaged cell accuracy.

Example fields: ``puzzle`` and ``solution`` (16-character strings, row-major, ``'0'`` = empty).

Training puzzles are generated here: all 288 valid 4×4 grids are enumerated, the grids used by
the test set (and none of the few-shot puzzles) are excluded, and cells are removed at random
while a small solver confirms the puzzle still has exactly one solution (`generate_puzzles`).
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from spg_lib.tasks.base import RewardFn, ScoreResult, Task, check_mode, require
from spg_lib.tasks.io import DataError
from spg_lib.tasks.prompts import FEW_SHOT, SUDOKU_FEW_SHOT_PAIRS, SUDOKU_SYSTEM_PROMPT
from spg_lib.tasks.registry import register_task
from spg_lib.tasks.text import FAITHFUL_MAX_CHARS, last_answer_block, strip_end_tokens

__all__ = [
    "SudokuTask",
    "all_solutions",
    "cell_score",
    "count_solutions",
    "extract_solution",
    "generate_puzzles",
    "off_by_one_solution",
    "sudoku_reward",
]

_GRID = re.compile(r"[0-4]{16}")
_SOLVED = re.compile(r"[1-4]{16}")


# ----------------------------------------------------------------------------------------------
# solver / generator
# ----------------------------------------------------------------------------------------------
def _peers(i: int) -> frozenset[int]:
    r, c = divmod(i, 4)
    box = {(r // 2) * 8 + (c // 2) * 2 + dr * 4 + dc for dr in (0, 1) for dc in (0, 1)}
    return frozenset({r * 4 + k for k in range(4)} | {k * 4 + c for k in range(4)} | box) - {i}


_PEERS = tuple(_peers(i) for i in range(16))


def count_solutions(puzzle: str, limit: int = 2) -> int:
    """Number of completions of `puzzle` (stops counting at `limit`)."""
    if not _GRID.fullmatch(puzzle):
        raise ValueError(f"puzzle must be 16 digits 0-4, got {puzzle!r}")
    cells = list(puzzle)
    for i, ch in enumerate(cells):
        if ch != "0" and any(cells[j] == ch for j in _PEERS[i]):
            return 0

    def rec(pos: int) -> int:
        while pos < 16 and cells[pos] != "0":
            pos += 1
        if pos == 16:
            return 1
        total = 0
        used = {cells[j] for j in _PEERS[pos]}
        for d in "1234":
            if d not in used:
                cells[pos] = d
                total += rec(pos + 1)
                cells[pos] = "0"
                if total >= limit:
                    break
        return total

    return rec(0)


@functools.cache
def all_solutions() -> tuple[str, ...]:
    """All 288 valid completed 4×4 grids, sorted."""
    out: list[str] = []
    cells = ["0"] * 16

    def rec(pos: int) -> None:
        if pos == 16:
            out.append("".join(cells))
            return
        used = {cells[j] for j in _PEERS[pos]}
        for d in "1234":
            if d not in used:
                cells[pos] = d
                rec(pos + 1)
                cells[pos] = "0"

    rec(0)
    return tuple(sorted(out))


def generate_puzzles(
    n: int,
    *,
    seed: int,
    exclude_solutions: Iterable[str] = (),
    exclude_puzzles: Iterable[str] = (),
    min_empty: int = 6,
    max_empty: int = 12,
) -> list[dict[str, str]]:
    """`n` distinct uniquely-solvable puzzles whose solutions avoid `exclude_solutions`.

    Args:
        n: number of puzzles.
        seed: RNG seed (`random.Random`, no global state).
        exclude_solutions: completed grids that must not be used (the test set's).
        exclude_puzzles: puzzles never to produce (the few-shot examples).
        min_empty, max_empty: range of empty cells per puzzle (the SPG test set has 7–12).
    """
    if not 1 <= min_empty <= max_empty <= 16:
        raise ValueError(f"need 1 <= min_empty <= max_empty <= 16, got {min_empty}, {max_empty}")
    banned = set(exclude_solutions)
    pool = [s for s in all_solutions() if s not in banned]
    if not pool:
        raise ValueError("every 4x4 solution is excluded")
    rng = random.Random(seed)
    skip = set(exclude_puzzles)
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 50 * n + 10_000:
            raise ValueError(f"could not generate {n} distinct puzzles from {len(pool)} solutions")
        solution = rng.choice(pool)
        want = rng.randint(min_empty, max_empty)
        cells = list(solution)
        order = list(range(16))
        rng.shuffle(order)
        removed = 0
        for i in order:
            if removed == want:
                break
            keep = cells[i]
            cells[i] = "0"
            if count_solutions("".join(cells)) == 1:
                removed += 1
            else:
                cells[i] = keep
        puzzle = "".join(cells)
        if removed < min_empty or puzzle in seen or puzzle in skip:
            continue
        seen.add(puzzle)
        out.append({"puzzle": puzzle, "solution": solution})
    return out


# ----------------------------------------------------------------------------------------------
# reward / scoring
# ----------------------------------------------------------------------------------------------
def cell_score(candidate: str | None, puzzle: str, solution: str) -> tuple[int, int]:
    """(correct originally-empty cells, empty cells) after right-padding/truncating to 16."""
    empty = [i for i in range(16) if puzzle[i] == "0"]
    if not candidate:
        return 0, len(empty)
    candidate = (candidate + "0" * 16)[:16]
    return sum(1 for i in empty if candidate[i] == solution[i]), len(empty)


def off_by_one_solution(puzzle: str, solution: str) -> str:
    """The solved grid with every originally empty cell written 0-based (d → d − 1); givens unchanged.

    The systematic defect of the CPU demonstration's imperfect SFT teacher: the model imitates it although
    the reward (1-based digits only) never accepts it, so RL has a cheap, verifiable error to remove.
    """
    return "".join(s if p != "0" else str(int(s) - 1) for p, s in zip(puzzle, solution, strict=True))


def sudoku_reward(completion: str, *, puzzle: str, solution: str, **_: Any) -> float:
    """Fraction of the empty cells that the last ``<answer>`` block fills correctly
    (docs/algorithms.md#tasks-and-rewards)."""
    block = last_answer_block(completion)
    if block is None:
        return 0.0
    digits = "".join(ch for ch in block if ch.isdigit())
    correct, empty = cell_score(digits, puzzle, solution)
    return correct / empty if empty else 0.0


_FAITHFUL_PATTERNS = tuple(
    re.compile(p, re.DOTALL)
    for p in (
        r"<answer>.*?```\s*([\d\s]+)```",
        r"<answer>(.*?)(?:<\|eot_id\|>|<\|endoftext\|>|</answer>)",
        r"</answer>\s*(.*?)(?:<\|eot_id\|>|<\|endoftext\|>|$)",
        # official ".*?(\d{16})\s*</answer>": same leftmost match without the quadratic prefix
        r"(\d{16})\s*</answer>",
        r"\b(\d{16})\b",
    )
)


def extract_solution(generation: str, *, mode: str = "fixed") -> str:
    """Proposed 16-digit solution ('' if none); faithful = the official 5-pattern cascade."""
    if check_mode(mode) == "faithful":
        text = generation[:FAITHFUL_MAX_CHARS]
        solution = ""
        for pattern in _FAITHFUL_PATTERNS:
            m = pattern.search(text)
            if m and m.group(1).strip():
                solution = m.group(1).strip()
                break
        return re.sub(r"\s", "", solution)
    text = strip_end_tokens(generation)
    block = last_answer_block(text)
    if block is None and "<answer>" in text:
        block = text.rsplit("<answer>", 1)[1]
    if block is not None:
        digits = "".join(ch for ch in block if ch in "0123456789")
        if digits:
            return digits[:16]
    runs = re.findall(r"(?<!\d)\d{16}(?!\d)", text)
    return runs[-1] if runs else ""


def _grid(value: Any, where: str, name: str, pattern: re.Pattern[str]) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value).zfill(16)  # a CSV read by a lossy tool drops leading zeros
    if not isinstance(value, str) or not pattern.fullmatch(value.strip()):
        raise DataError(f"{where}: {name} must be a 16-character digit string, got {value!r}"[:300])
    return value.strip()


@register_task
class SudokuTask(Task):
    """4×4 Sudoku, SPG split (test 256: ``sudoku_4x4_test_spg.csv``), 3-shot prompts."""

    name = "sudoku"
    local_files = MappingProxyType({"test": "sudoku_4x4_test_spg.csv"})
    reward_fields = ("puzzle", "solution")
    teacher_defects = ("off_by_one",)

    def normalise(self, row: Mapping[str, Any], where: str) -> dict[str, Any]:
        pk = "Puzzle" if "Puzzle" in row else "puzzle"
        sk = "Solution" if "Solution" in row else "solution"
        puzzle = _grid(require(row, pk, (str, int), where), where, pk, _GRID)
        solution = _grid(require(row, sk, (str, int), where), where, sk, _SOLVED)
        if any(p != "0" and p != s for p, s in zip(puzzle, solution)):
            raise DataError(f"{where}: solution {solution} contradicts puzzle {puzzle}")
        return {"puzzle": puzzle, "solution": solution}

    def question(self, example: Mapping[str, Any]) -> str:
        return f"Solve the following Sudoku puzzle: {example['puzzle']}\n"

    def train_prompt(self, example: Mapping[str, Any]) -> str:
        return (
            f"{SUDOKU_SYSTEM_PROMPT}\n\n{FEW_SHOT}\n\n"
            f"Question: Solve the following Sudoku puzzle: {example['puzzle']}\nAnswer:\n"
        )

    def eval_prompt(self, example: Mapping[str, Any]) -> str:
        # one more newline before "Answer:" than in training (the eval question ends in "\n")
        return f"{SUDOKU_SYSTEM_PROMPT}\n\n{FEW_SHOT}\n\nQuestion: {self.question(example)}\nAnswer:\n"

    def compact_prompt(self, example: Mapping[str, Any]) -> str:
        return f"Sudoku {example['puzzle']}"

    def sft_response(self, example: Mapping[str, Any]) -> str:
        return f"<answer>{example['solution']}</answer>"

    def with_teacher_defect(self, example: Mapping[str, Any], kind: str) -> dict[str, Any]:
        """``off_by_one``: the teacher writes the cells it filled 0-based (see `off_by_one_solution`)."""
        if kind != "off_by_one":
            return super().with_teacher_defect(example, kind)
        return {**example, "solution": off_by_one_solution(example["puzzle"], example["solution"])}

    def reward_functions(self, mode: str = "fixed") -> tuple[RewardFn, ...]:
        check_mode(mode)  # the official reward has no defect to fix: same in both modes
        return (RewardFn("sudoku", sudoku_reward),)

    def ground_truth(self, example: Mapping[str, Any]) -> dict[str, str]:
        return {"puzzle": example["puzzle"], "solution": example["solution"]}

    def check_ground_truth(self, value: Any, where: str) -> dict[str, str]:
        if not isinstance(value, dict):
            raise DataError(f"{where}: sudoku ground_truth must be {{'puzzle': ..., 'solution': ...}}")
        return self.normalise(value, where)

    def score(self, completion: str, ground_truth: Any, mode: str = "fixed") -> ScoreResult:
        candidate = extract_solution(completion, mode=mode)
        correct, empty = cell_score(candidate, ground_truth["puzzle"], ground_truth["solution"])
        return ScoreResult(candidate, float(correct), float(empty))


FEW_SHOT_PUZZLES = tuple(p for p, _ in SUDOKU_FEW_SHOT_PAIRS)
FEW_SHOT_SOLUTIONS = tuple(s for _, s in SUDOKU_FEW_SHOT_PAIRS)
