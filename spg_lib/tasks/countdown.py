"""Countdown with three numbers (d1 / SPG): combine the numbers with + - * / to hit a target.

docs/algorithms.md#tasks-and-rewards (training data, prompt, reward), docs/algorithms.md#evaluation-protocol (eval
prompt), docs/algorithms.md#evaluation-protocol (scoring). Example fields:
``numbers`` (list of 3 ints), ``target`` (int), ``solution`` (a reference expression when known).

Training problems are generated here (`generate_problems`): seeded, solvable by construction
(the target is computed from a random expression over the three numbers), and disjoint from the
test problems given as (sorted numbers, target) pairs. The official training set can be used instead
via a source: ``Jiayi-Pan/Countdown-Tasks-3to4`` with its 3-number rows kept, shuffled (seed 42) and the last
500 held out, as the official code selects it (`CountdownTask.load_split`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from fractions import Fraction
from itertools import permutations, product
from types import MappingProxyType
from typing import Any

from spg_lib.tasks.base import RewardFn, ScoreResult, Task, check_mode
from spg_lib.tasks.countdown_eval import evaluate_exact, evaluate_expression, numbers_in_expression
from spg_lib.tasks.io import DataError, load_source
from spg_lib.tasks.math_equiv import extract_boxed, last_boxed_only_string, remove_boxed
from spg_lib.tasks.prompts import COUNTDOWN_EVAL_PROMPT, COUNTDOWN_TRAIN_TEMPLATE, SYSTEM_PROMPT
from spg_lib.tasks.registry import register_task
from spg_lib.tasks.text import first_answer_block, last_answer_block, strip_end_tokens

__all__ = [
    "CountdownTask",
    "countdown_reward",
    "extract_equation",
    "generate_problems",
    "solve",
]

_OPS = "+-*/"
_EQUALS_FAITHFUL = re.compile(r"([0-9+\-*/() ]+)=[0-9. ]+")
_MAX_FAITHFUL_EQ_CHARS = 4096  # the "= result" regex is quadratic; longer text cannot be valid anyway


def _numbers_match(expr: str, numbers: Iterable[int]) -> bool:
    return sorted(numbers_in_expression(expr)) == sorted(int(n) for n in numbers)


def countdown_reward(
    completion: str, *, numbers: list[int], target: int | float, mode: str = "fixed", **_: Any
) -> float:
    """1.0 correct; 0.1 an equation that is invalid or wrong; 0.0 no ``<answer>`` block
    (docs/algorithms.md#tasks-and-rewards)."""
    m = check_mode(mode)
    equation = last_answer_block(completion if m == "faithful" else strip_end_tokens(completion))
    if equation is None:
        return 0.0
    if not _numbers_match(equation, numbers):
        return 0.1
    if m == "faithful":
        value = evaluate_expression(equation, mode="faithful")
        return 1.0 if value is not None and abs(value - target) < 1e-5 else 0.1
    exact = evaluate_exact(equation)
    return 1.0 if exact is not None and exact == Fraction(target) else 0.1


def extract_equation(generation: str, *, mode: str = "fixed") -> str | None:
    """The expression a generation proposes (docs/algorithms.md#evaluation-protocol), LaTeX operators mapped to Python
    ones."""
    if check_mode(mode) == "faithful":
        try:
            equation = remove_boxed(last_boxed_only_string(generation))
        except TypeError:
            first = first_answer_block(generation)
            equation = first if first is not None else generation
        equation = equation.replace(r"\div", "/").replace(r"\times", "*").replace(r"\cdot", "*")
        if "=" in equation and len(equation) <= _MAX_FAITHFUL_EQ_CHARS:
            m = _EQUALS_FAITHFUL.search(equation)
            if m:
                equation = m.group(1).strip()
        return equation
    text = strip_end_tokens(generation)
    equation = extract_boxed(text, which="last")
    if equation is None:
        equation = last_answer_block(text)
    if equation is None:
        return None
    for latex, op in ((r"\div", "/"), (r"\times", "*"), (r"\cdot", "*"), ("÷", "/"), ("×", "*"), ("−", "-")):
        equation = equation.replace(latex, op)
    equation = equation.replace("\\left", "").replace("\\right", "").replace("\\(", "").replace("\\)", "")
    if "=" in equation:  # "expr = 23" or "23 = expr": keep the side that is not a bare number
        sides = [s.strip() for s in equation.split("=")]
        candidates = [s for s in sides if s and not re.fullmatch(r"-?\d+(?:\.\d+)?", s)]
        equation = candidates[0] if candidates else sides[0]
    return equation.strip()


def solve(numbers: list[int], target: int) -> str | None:
    """A brute-force expression over all three numbers equal to `target`, or None."""
    for a, b, c in permutations(numbers):
        for o1, o2 in product(_OPS, repeat=2):
            for expr in (f"({a} {o1} {b}) {o2} {c}", f"{a} {o1} ({b} {o2} {c})"):
                value = evaluate_exact(expr)
                if value is not None and value == target:
                    return expr
    return None


def generate_problems(
    n: int,
    *,
    seed: int,
    exclude: Iterable[tuple[tuple[int, ...], int]] = (),
    low: int = 1,
    high: int = 100,
) -> list[dict[str, Any]]:
    """`n` distinct solvable problems with numbers and target in ``[low, high]``.

    Args:
        n: number of problems.
        seed: RNG seed (`random.Random`, no global state).
        exclude: (sorted numbers, target) pairs never to produce (the test set).
        low, high: range of the numbers and of the target (the test set uses 1..100).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 1 <= low < high:
        raise ValueError(f"need 1 <= low < high, got {low}, {high}")
    rng = random.Random(seed)
    banned = {(tuple(sorted(nums)), int(t)) for nums, t in exclude}
    seen: set[tuple[tuple[int, ...], int]] = set()
    out: list[dict[str, Any]] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 200 * n + 10_000:
            raise ValueError(f"could not generate {n} distinct problems in [{low}, {high}]")
        nums = [rng.randint(low, high) for _ in range(3)]
        a, b, c = nums
        o1, o2 = rng.choice(_OPS), rng.choice(_OPS)
        expr = f"({a} {o1} {b}) {o2} {c}" if rng.random() < 0.5 else f"{a} {o1} ({b} {o2} {c})"
        value = evaluate_exact(expr)
        if value is None or value.denominator != 1 or not low <= value <= high:
            continue
        key = (tuple(sorted(nums)), int(value))
        if key in banned or key in seen:
            continue
        seen.add(key)
        rng.shuffle(nums)
        out.append({"numbers": nums, "target": int(value), "solution": expr})
    return out


def _int_list(value: Any, where: str, count: int | None = 3) -> list[int]:
    if isinstance(value, str):
        try:
            value = [int(x) for x in value.strip().strip("[]").split(",")]
        except ValueError:
            raise DataError(f"{where}: numbers {value!r} are not comma-separated integers") from None
    if not isinstance(value, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
        raise DataError(f"{where}: numbers must be a list of ints, got {value!r}"[:300])
    if count is not None and len(value) != count:
        raise DataError(f"{where}: Countdown here uses exactly {count} numbers, got {len(value)}")
    return list(value)


def _int(value: Any, where: str, name: str) -> int:
    if isinstance(value, bool):
        raise DataError(f"{where}: {name} must be an int, got bool")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise DataError(f"{where}: {name} must be an int, got {value!r}"[:300])


@register_task
class CountdownTask(Task):
    """Countdown, 3 numbers (test 256: ``countdown_cd3_test.jsonl``)."""

    name = "countdown"
    default_sources = MappingProxyType({"train": "Jiayi-Pan/Countdown-Tasks-3to4"})
    local_files = MappingProxyType({"test": "countdown_cd3_test.jsonl"})
    reward_fields = ("numbers", "target")
    #: rows the official training code holds out of the hub split (the last ones after its seed-42 shuffle)
    hub_holdout = 500

    def load_split(self, source: str, split: str) -> list[dict[str, Any]]:
        """Rows of `split`; a source in the hub layout (``nums``, ``target``: Jiayi-Pan/Countdown-Tasks-3to4) is
        selected as the official code does: keep the rows with 3 numbers and, for "train", shuffle them with
        `datasets`' ``shuffle(seed=42)`` and drop the last `hub_holdout`.

        Raises:
            DataError: a bad row (named by its location), or a hub-layout train split with no row left.
        """
        table = load_source(source, split=split, config=self.hub_config)
        if not any("nums" in row for row in table.rows):
            return [self.normalise(row, where) for where, row in table]
        rows = [(where, row) for where, row in table if len(_int_list(row.get("nums"), where, count=None)) == 3]
        if split == "train":
            import datasets

            order = datasets.Dataset.from_dict({"i": list(range(len(rows)))}).shuffle(seed=42)["i"]
            if len(order) <= self.hub_holdout:
                raise DataError(f"{table.source}: {len(order)} rows with 3 numbers; the official split holds out "
                                f"the last {self.hub_holdout} after its seed-42 shuffle, which leaves none")
            rows = [rows[i] for i in order[: len(order) - self.hub_holdout]]
        return [self.normalise(row, where) for where, row in rows]

    def normalise(self, row: Mapping[str, Any], where: str) -> dict[str, Any]:
        if "input" in row and "output" in row:  # the d1/SPG test-file layout
            numbers, target = _int_list(row["input"], where), _int(row["output"], where, "output")
        elif "nums" in row:  # the hub layout
            numbers, target = _int_list(row["nums"], where), _int(row.get("target"), where, "target")
        elif "numbers" in row and "target" in row:
            numbers, target = _int_list(row["numbers"], where), _int(row["target"], where, "target")
        else:
            raise DataError(f"{where}: Countdown row needs 'numbers'+'target' (or 'input'+'output', 'nums')")
        out: dict[str, Any] = {"numbers": numbers, "target": target}
        if isinstance(row.get("solution"), str):
            out["solution"] = row["solution"]
        return out

    def question(self, example: Mapping[str, Any]) -> str:
        return f"Numbers: {list(example['numbers'])}\nTarget: {example['target']}"

    def train_prompt(self, example: Mapping[str, Any]) -> str:
        body = COUNTDOWN_TRAIN_TEMPLATE.format(nums=list(example["numbers"]), target=example["target"])
        return f"{SYSTEM_PROMPT}\n{body}"

    def eval_prompt(self, example: Mapping[str, Any]) -> str:
        return COUNTDOWN_EVAL_PROMPT + "\n\n" + self.question(example)

    def compact_prompt(self, example: Mapping[str, Any]) -> str:
        return f"Numbers {' '.join(map(str, example['numbers']))} target {example['target']}"

    def sft_response(self, example: Mapping[str, Any]) -> str:
        if "solution" not in example:
            raise ValueError("countdown SFT needs examples with a 'solution' expression (use generated problems)")
        return f"<answer>{example['solution']}</answer>"

    def reward_functions(self, mode: str = "fixed") -> tuple[RewardFn, ...]:
        m = check_mode(mode)
        return (RewardFn("countdown", lambda c, **kw: countdown_reward(c, **{**kw, "mode": m})),)

    def ground_truth(self, example: Mapping[str, Any]) -> dict[str, Any]:
        return {"numbers": list(example["numbers"]), "target": example["target"]}

    def check_ground_truth(self, value: Any, where: str) -> dict[str, Any]:
        if isinstance(value, list) and len(value) == 2:  # the official [numbers, target] form
            value = {"numbers": value[0], "target": value[1]}
        if not isinstance(value, dict) or "numbers" not in value or "target" not in value:
            raise DataError(f"{where}: countdown ground_truth must be {{'numbers': [...], 'target': N}}")
        return {"numbers": _int_list(value["numbers"], where), "target": _int(value["target"], where, "target")}

    def score(self, completion: str, ground_truth: Any, mode: str = "fixed") -> ScoreResult:
        m = check_mode(mode)
        numbers, target = ground_truth["numbers"], ground_truth["target"]
        equation = extract_equation(completion, mode=m)
        ok = False
        if equation is not None and _numbers_match(equation, numbers):
            if m == "faithful":
                value = evaluate_expression(equation, mode="faithful")
                ok = value is not None and abs(value - target) < 1e-5
            else:
                exact = evaluate_exact(equation)
                ok = exact is not None and exact == target
        return ScoreResult(equation, 1.0 if ok else 0.0, 1.0)
