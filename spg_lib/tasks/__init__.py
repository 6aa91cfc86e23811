"""Tasks: GSM8K, MATH500, Countdown (3 numbers), 4×4 Sudoku — data, prompts, rewards, scoring.

    from spg_lib.tasks import get_task
    task = get_task("gsm8k")
    examples = task.load_split("data/gsm8k_test.jsonl", "test")
    prompt = task.eval_prompt(examples[0])                      # user-message content
    rewards = task.reward_functions(mode="fixed")               # RewardFn(name, fn, weight)
    result = task.score(completion, task.ground_truth(examples[0]), mode="faithful")

Modes: ``"faithful"`` reproduces the official SPG/d1 code (quirks included); ``"fixed"`` (default)
corrects them (docs/faithful-vs-fixed.md#official-quirks Q9–Q16). Run the tests with ``pytest tests/tasks``.
"""

from spg_lib.tasks.base import MODES, RewardFn, ScoreResult, Task, check_mode
from spg_lib.tasks.io import SCHEMA_VERSION, DataError
from spg_lib.tasks.registry import get_task, list_tasks, register_task

__all__ = [
    "MODES",
    "SCHEMA_VERSION",
    "DataError",
    "RewardFn",
    "ScoreResult",
    "Task",
    "check_mode",
    "get_task",
    "list_tasks",
    "register_task",
]
