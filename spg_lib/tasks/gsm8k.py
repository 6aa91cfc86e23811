"""GSM8K: grade-school math word problems (Cobbe et al. 2021); docs/algorithms.md#tasks-and-rewards,
docs/algorithms.md#evaluation-protocol.

Example fields: ``question`` (str), ``answer`` (str, the text after ``####`` in the reference
solution, e.g. ``"18"``, ``"1,000"``, ``"-3"``), ``solution`` (full reference solution or None).

Rewards (five components, weight 1 each, max 4.0): XML count (≤ 0.5), soft format 0.5,
strict format 0.5, integer answer 0.5, correctness 2.0.

Faithful quirks reproduced in ``mode="faithful"`` (docs/faithful-vs-fixed.md#official-quirks Q10, Q15): soft/strict
format regexes
without DOTALL; SPG's XML-count penalty on the characters after ``\\n<answer>\\n``; `str.isdigit`
integer check; exact-string correctness; at evaluation a ground-truth regex without minus sign,
a ``\\boxed{`` regex that stops at the first ``}``, and the first number of ``"1,000"`` (= 1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from spg_lib.tasks.base import RewardFn, ScoreResult, Task, check_mode, require
from spg_lib.tasks.io import DataError
from spg_lib.tasks.math_equiv import boxed_contents
from spg_lib.tasks.prompts import GSM8K_EVAL_PROMPT, SYSTEM_PROMPT
from spg_lib.tasks.registry import register_task
from spg_lib.tasks.text import (
    FAITHFUL_MAX_CHARS,
    extract_xml_answer,
    first_answer_block,
    last_answer_block,
    parse_number,
    strip_end_tokens,
)

__all__ = [
    "GSM8KTask",
    "correctness_reward",
    "extract_hash_answer",
    "int_reward",
    "parse_prediction_faithful",
    "soft_format_reward",
    "strict_format_reward",
    "xmlcount_reward",
]

# -- format regexes (docs/algorithms.md#tasks-and-rewards): the official ones lack DOTALL, so `.` cannot cross newlines
# ---------
_SOFT = r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>"
_STRICT = r"^<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\n$"
_SOFT_FAITHFUL, _SOFT_FIXED = re.compile(_SOFT), re.compile(_SOFT, re.DOTALL)
_STRICT_FAITHFUL, _STRICT_FIXED = re.compile(_STRICT), re.compile(_STRICT, re.DOTALL)
_INT_FIXED = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)")


def extract_hash_answer(solution: str) -> str | None:
    """Text after the first ``####`` of a GSM8K solution, stripped; None without ``####``."""
    if "####" not in solution:
        return None
    return solution.split("####")[1].strip()


# ----------------------------------------------------------------------------------------------
# rewards (pure: completion + ground-truth keywords -> float)
# ----------------------------------------------------------------------------------------------
def _count_xml(text: str, *, spg_variant: bool) -> float:
    count = 0.0
    if text.count("<reasoning>\n") == 1:
        count += 0.125
    if text.count("\n</reasoning>\n") == 1:
        count += 0.125
    if text.count("\n<answer>\n") == 1:
        count += 0.125
        # SPG penalises everything after "\n<answer>\n" (the answer itself); the Unsloth/d1
        # original penalises what trails "\n</answer>\n".
        tail = text.split("\n<answer>\n")[-1] if spg_variant else text.split("\n</answer>\n")[-1]
        count -= len(tail) * 0.001
    if text.count("\n</answer>") == 1:
        count += 0.125
        count -= (len(text.split("\n</answer>")[-1]) - 1) * 0.001
    return count


def xmlcount_reward(completion: str, *, mode: str = "fixed", **_: Any) -> float:
    """XML tag count reward (≤ 0.5); faithful = SPG variant, fixed = Unsloth/d1 variant."""
    return _count_xml(completion, spg_variant=check_mode(mode) == "faithful")


def soft_format_reward(completion: str, *, mode: str = "fixed", **_: Any) -> float:
    """0.5 if the completion starts with ``<reasoning>…</reasoning> <answer>…</answer>``."""
    rx = _SOFT_FAITHFUL if check_mode(mode) == "faithful" else _SOFT_FIXED
    return 0.5 if rx.match(completion) else 0.0


def strict_format_reward(completion: str, *, mode: str = "fixed", **_: Any) -> float:
    """0.5 if the whole completion is exactly the newline-delimited reasoning/answer layout."""
    rx = _STRICT_FAITHFUL if check_mode(mode) == "faithful" else _STRICT_FIXED
    return 0.5 if rx.match(completion) else 0.0


def int_reward(completion: str, *, mode: str = "fixed", **_: Any) -> float:
    """0.5 if the extracted answer is an integer (faithful: `str.isdigit`, no sign)."""
    r = extract_xml_answer(completion)
    if check_mode(mode) == "faithful":
        return 0.5 if r.isdigit() else 0.0
    return 0.5 if _INT_FIXED.fullmatch(r) else 0.0


def correctness_reward(completion: str, *, answer: str, mode: str = "fixed", **_: Any) -> float:
    """2.0 if the extracted answer equals the ground truth (faithful: exact string)."""
    r = extract_xml_answer(completion)
    if check_mode(mode) == "faithful":
        return 2.0 if r == answer else 0.0
    if r == str(answer).strip():
        return 2.0
    p, g = parse_number(r), parse_number(str(answer))
    return 2.0 if p is not None and g is not None and p == g else 0.0


# ----------------------------------------------------------------------------------------------
# evaluation parsing (docs/algorithms.md#evaluation-protocol)
# ----------------------------------------------------------------------------------------------
_GT_FAITHFUL = re.compile(r"####\s*\$?([\d,]+(?:\.\d+)?)")
_BOXED_FIRST_BRACE = re.compile(r"\\boxed{(.*?)}")
_NUM_FAITHFUL = re.compile(r"-?\d+\.?\d*")
_DOTS = re.compile(r"^\.+$")


def ground_truth_faithful(answer: str) -> float | None:
    """Official ground-truth parse: number after ``####``; no minus sign (negatives → None)."""
    text = answer if "####" in answer else f"#### {answer}"
    m = _GT_FAITHFUL.search(text)
    if not m:
        return None
    try:
        return float(m.group(1).replace(",", ""))
    except ValueError:
        return None


def _float_or_number(text: str, *, last: bool) -> float | None:
    try:
        return float(text)
    except ValueError:
        numbers = _NUM_FAITHFUL.findall(text)
        if numbers:
            try:
                return float(numbers[-1] if last else numbers[0])
            except ValueError:
                return None
    return None


def parse_prediction_faithful(generation: str) -> float | None:
    """The official three-stage GSM8K prediction parser (SPG variant, docs/algorithms.md#evaluation-protocol)."""
    generation = generation[:FAITHFUL_MAX_CHARS]
    for content in _BOXED_FIRST_BRACE.findall(generation):
        content = content.strip()
        if content and content != "..." and not _DOTS.match(content):
            value = _float_or_number(content, last=False)
            if value is not None:
                return value
    first = first_answer_block(generation)
    if first:
        value = _float_or_number(first, last=True)
        if value is not None:
            return value
    tail = extract_xml_answer(generation)
    if tail:
        return _float_or_number(tail, last=True)
    return None




def parse_prediction_fixed(generation: str) -> str | None:
    """Fixed parser: last brace-matched ``\\boxed{}`` holding a number, then the last
    ``<answer>`` block, then the text after the last ``<answer>``; returns the answer text."""
    text = strip_end_tokens(generation)
    # scan boxes from the last to the first; skip "..." placeholders and non-numbers
    for content in reversed(boxed_contents(text)[-32:]):  # a final answer is among the last boxes
        if content and parse_number(content) is not None:
            return content
    block = last_answer_block(text)
    if block is not None and parse_number(block) is not None:
        return block
    if "<answer>" in text:
        tail = extract_xml_answer(text)
        if parse_number(tail) is not None:
            return tail
    return None


@register_task
class GSM8KTask(Task):
    """GSM8K (train 7,473 / test 1,319)."""

    name = "gsm8k"
    default_sources = MappingProxyType({"train": "openai/gsm8k", "test": "openai/gsm8k"})
    local_files = MappingProxyType({"train": "gsm8k_train.jsonl", "test": "gsm8k_test.jsonl"})
    hub_config = "main"
    reward_fields = ("answer",)

    def normalise(self, row: Mapping[str, Any], where: str) -> dict[str, Any]:
        question = require(row, "question", str, where)
        raw = require(row, "answer", (str, int, float), where)
        raw = str(raw)
        if "####" in raw:
            answer, solution = extract_hash_answer(raw), raw
        else:  # already-prepared rows carry the bare answer (+ optional solution)
            answer, solution = raw.strip(), row.get("solution")
        if not answer:
            raise DataError(f"{where}: empty GSM8K answer")
        return {"question": question, "answer": answer, "solution": solution}

    def question(self, example: Mapping[str, Any]) -> str:
        return example["question"]

    def train_prompt(self, example: Mapping[str, Any]) -> str:
        return SYSTEM_PROMPT + "\n\n" + example["question"]

    def eval_prompt(self, example: Mapping[str, Any]) -> str:
        return GSM8K_EVAL_PROMPT + "\n\n" + example["question"]

    def compact_prompt(self, example: Mapping[str, Any]) -> str:
        return str(example["question"])

    def sft_response(self, example: Mapping[str, Any]) -> str:
        """The reference solution's reasoning (before ``####``) and its answer, in the training format."""
        reasoning = str(example.get("solution", "")).split("####")[0].strip()
        return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{example['answer']}\n</answer>"

    def reward_functions(self, mode: str = "fixed") -> tuple[RewardFn, ...]:
        m = check_mode(mode)

        def bind(fn):
            return lambda completion, **kw: fn(completion, **{**kw, "mode": m})

        return (
            RewardFn("xmlcount", bind(xmlcount_reward)),
            RewardFn("soft_format", bind(soft_format_reward)),
            RewardFn("strict_format", bind(strict_format_reward)),
            RewardFn("int", bind(int_reward)),
            RewardFn("correctness", bind(correctness_reward)),
        )

    def ground_truth(self, example: Mapping[str, Any]) -> str:
        return example["answer"]

    def check_ground_truth(self, value: Any, where: str) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise DataError(f"{where}: gsm8k ground_truth must be a numeric string, got {type(value).__name__}")
        return str(value)

    def score(self, completion: str, ground_truth: Any, mode: str = "fixed") -> ScoreResult:
        gt = str(ground_truth)
        if check_mode(mode) == "faithful":
            pred = parse_prediction_faithful(completion)
            g = ground_truth_faithful(gt)
            ok = pred is not None and g is not None and pred == g
            return ScoreResult(pred, 1.0 if ok else 0.0, 1.0)
        text = parse_prediction_fixed(completion)
        p = parse_number(text)
        g = parse_number(extract_hash_answer(gt) if "####" in gt else gt)
        ok = p is not None and g is not None and p == g
        return ScoreResult(text, 1.0 if ok else 0.0, 1.0)
