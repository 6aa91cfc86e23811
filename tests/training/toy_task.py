"""A registered toy task for CLI tests, loaded through ``train.plugins: [tests.training.toy_task]``.

Reward = mean character code of the completion / 127: dense and continuous, so even an untrained tiny model
gets non-zero advantages and every optimizer step changes the weights. Rows: ``{"i": <int>}``.

It owns its compact prompt, SFT demonstrations and one teacher defect (``negated``) like the built-in tasks, so
``prompt_style: compact`` and `spg sft` work for it through the `Task` methods alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spg_lib.tasks.base import RewardFn, ScoreResult, Task
from spg_lib.tasks.io import DataError
from spg_lib.tasks.registry import register_task


def ascii_reward(completion: str, **_: Any) -> float:
    return sum(map(ord, completion)) / (127 * len(completion)) if completion else 0.0


@register_task
class ToyDenseTask(Task):
    name = "toy_dense"

    def normalise(self, row: Mapping[str, Any], where: str) -> dict[str, Any]:
        if not isinstance(row.get("i"), int):
            raise DataError(f"{where}: toy_dense rows need an integer 'i'")
        return {"i": row["i"]}

    def question(self, example: Mapping[str, Any]) -> str:
        return f"q{example['i']}"

    def train_prompt(self, example: Mapping[str, Any]) -> str:
        return f"q{example['i']}"

    def eval_prompt(self, example: Mapping[str, Any]) -> str:
        return f"q{example['i']}"

    def compact_prompt(self, example: Mapping[str, Any]) -> str:
        return f"i={example['i']}"

    teacher_defects = ("negated",)

    def sft_response(self, example: Mapping[str, Any]) -> str:
        return f"<answer>{example['i']}</answer>"

    def with_teacher_defect(self, example: Mapping[str, Any], kind: str) -> dict[str, Any]:
        if kind != "negated":
            return super().with_teacher_defect(example, kind)
        return {**example, "i": -example["i"]}

    def reward_functions(self, mode: str = "fixed") -> tuple[RewardFn, ...]:
        return (RewardFn("ascii", ascii_reward),)

    def ground_truth(self, example: Mapping[str, Any]) -> Any:
        return None

    def check_ground_truth(self, value: Any, where: str) -> Any:
        return value

    def score(self, completion: str, ground_truth: Any, mode: str = "fixed") -> ScoreResult:
        return ScoreResult(None, ascii_reward(completion), 1.0)
