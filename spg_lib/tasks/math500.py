"""MATH500: competition mathematics (Hendrycks et al. 2021; PRM800K subset); docs/algorithms.md#tasks-and-rewards,
docs/algorithms.md#evaluation-protocol.

Example fields: ``question`` (the problem), ``answer`` (short LaTeX answer, or None for training
rows that only carry a solution), ``solution`` (full reference solution with ``\\boxed{}``, or
None).

Rewards (weight 1 each): correctness 2.0 (Hendrycks equivalence of the boxed answers) and a
format reward 0.5 × F. Faithful mode (docs/faithful-vs-fixed.md#official-quirks Q9) reproduces the ``"\\boxed"`` literal
that
Python reads as BACKSPACE + "oxed", so the box branch never fires: format ∈ {0.25, 0.75}.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from spg_lib.tasks.base import RewardFn, ScoreResult, Task, check_mode, require
from spg_lib.tasks.io import DataError
from spg_lib.tasks.math_equiv import (
    extract_boxed,
    is_equiv,
    is_equiv_fixed,
    last_boxed_only_string,
    remove_boxed,
)
from spg_lib.tasks.prompts import MATH500_EVAL_PROMPT, MATH_TRAIN_INSTRUCTION, SYSTEM_PROMPT
from spg_lib.tasks.registry import register_task
from spg_lib.tasks.text import first_answer_block, last_answer_block, strip_end_tokens

__all__ = ["MATH500Task", "correctness_reward", "format_reward", "parse_prediction"]

# The official literal "\boxed" contains "\b" = BACKSPACE (U+0008) followed by "oxed".
_FAITHFUL_BOXED_LITERAL = "\x08oxed"


def _reference_answer(solution: str | None, answer: str | None, mode: str) -> str | None:
    if mode == "faithful" and solution:
        try:
            return remove_boxed(last_boxed_only_string(solution))
        except TypeError:
            return None
    if answer:
        return answer
    if solution:
        return extract_boxed(solution, which="last")
    return None


def correctness_reward(
    completion: str, *, solution: str | None = None, answer: str | None = None, mode: str = "fixed", **_: Any
) -> float:
    """2.0 if the completion's last boxed answer is equivalent to the reference answer."""
    m = check_mode(mode)
    ref = _reference_answer(solution, answer, m)
    if m == "faithful":
        try:
            pred: str | None = remove_boxed(last_boxed_only_string(completion))
        except TypeError:
            pred = completion  # the official code keeps the raw response
        return 2.0 if is_equiv(pred, ref) else 0.0
    return 2.0 if is_equiv_fixed(ref, parse_prediction(completion, mode="fixed")) else 0.0


def format_reward(completion: str, *, mode: str = "fixed", **_: Any) -> float:
    """0.5 × ((1 if ``<answer>`` present) + (1 if ``\\boxed`` present else 0.5))."""
    boxed = _FAITHFUL_BOXED_LITERAL if check_mode(mode) == "faithful" else "\\boxed"
    f = (1.0 if "<answer>" in completion else 0.0) + (1.0 if boxed in completion else 0.5)
    return 0.5 * f


def parse_prediction(generation: str, *, mode: str = "fixed") -> str | None:
    """Predicted answer (docs/algorithms.md#evaluation-protocol). Faithful: last box (whole text if none), first
    ``<answer>`` block
    when the box is unbalanced or empty. Fixed: last balanced box, else last ``<answer>`` block."""
    if check_mode(mode) == "faithful":
        try:
            parsed: str | None = remove_boxed(last_boxed_only_string(generation))
        except TypeError:
            parsed = None
        if not parsed:
            first = first_answer_block(generation)
            if first is not None:
                parsed = first
        return parsed
    text = strip_end_tokens(generation)
    boxed = extract_boxed(text, which="last")
    if boxed:
        return boxed
    return last_answer_block(text) or None


@register_task
class MATH500Task(Task):
    """MATH500 (test 500; training problems from the MATH train split)."""

    name = "math500"
    default_sources = MappingProxyType({"train": "ankner/math-500", "test": "HuggingFaceH4/MATH-500"})
    local_files = MappingProxyType({"test": "math500_test.jsonl"})
    reward_fields = ("answer", "solution")

    def normalise(self, row: Mapping[str, Any], where: str) -> dict[str, Any]:
        key = "problem" if "problem" in row else "question"
        question = require(row, key, str, where)
        solution = row.get("solution")
        answer = row.get("answer")
        for name, value in (("solution", solution), ("answer", answer)):
            if value is not None and not isinstance(value, str):
                raise DataError(f"{where}: field {name!r} must be str, got {type(value).__name__}")
        if not solution and not answer:
            raise DataError(f"{where}: MATH row needs 'answer' or 'solution'")
        if not answer:
            answer = extract_boxed(solution, which="last")
        return {"question": question, "answer": answer, "solution": solution or None}

    def question(self, example: Mapping[str, Any]) -> str:
        return example["question"]

    def train_prompt(self, example: Mapping[str, Any]) -> str:
        return SYSTEM_PROMPT + "\n\n" + MATH_TRAIN_INSTRUCTION + example["question"]

    def eval_prompt(self, example: Mapping[str, Any]) -> str:
        return MATH500_EVAL_PROMPT + "\n\n" + example["question"]

    def compact_prompt(self, example: Mapping[str, Any]) -> str:
        return str(example["question"])

    def reward_functions(self, mode: str = "fixed") -> tuple[RewardFn, ...]:
        m = check_mode(mode)
        return (
            RewardFn("correctness", lambda c, **kw: correctness_reward(c, **{**kw, "mode": m})),
            RewardFn("boxed_and_answer_tags_format", lambda c, **kw: format_reward(c, **{**kw, "mode": m})),
        )

    def ground_truth(self, example: Mapping[str, Any]) -> str:
        answer = example.get("answer")
        if answer is None:
            raise ValueError("MATH example has no answer to evaluate against")
        return answer

    def check_ground_truth(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise DataError(f"{where}: math500 ground_truth must be a LaTeX string, got {type(value).__name__}")
        return value

    def score(self, completion: str, ground_truth: Any, mode: str = "fixed") -> ScoreResult:
        m = check_mode(mode)
        pred = parse_prediction(completion, mode=m)
        if m == "faithful":
            ok = pred is not None and is_equiv(pred, ground_truth)
        else:
            ok = is_equiv_fixed(ground_truth, pred)
        return ScoreResult(pred, 1.0 if ok else 0.0, 1.0)
