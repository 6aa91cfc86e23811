"""Tasks: GSM8K, MATH500, Countdown (3 numbers), 4×4 Sudoku — data, prompts, rewards, scoring.

    from spg_lib.tasks import get_task
    from spg_lib.tasks.metrics import read_metrics
    task = get_task("gsm8k")
    examples = task.load_split("data/gsm8k_test.jsonl", "test")
    prompt = task.prompt(examples[0], "paper", evaluation=True)  # user-message content (or "compact")
    target = task.sft_response(examples[0])                     # SFT demonstration (tasks that define one)
    rewards = task.reward_functions(mode="fixed")               # RewardFn(name, fn, weight)
    result = task.score(completion, task.ground_truth(examples[0]), mode="faithful")
    metrics = read_metrics("runs/eval/base/metrics.json")       # EvalMetrics: protocol + accuracy

Everything task-specific (prompts in both styles, SFT targets, teacher defects, rewards, scoring) is a method
of the task, so a task registered by a plugin (``train.plugins``) works everywhere a built-in one does.
`spg_lib.tasks.metrics` defines when two evaluations are comparable and the ``metrics.json`` schema.

Modes: ``"faithful"`` reproduces the official SPG/d1 code (quirks included); ``"fixed"`` (default)
corrects them (docs/faithful-vs-fixed.md#official-quirks Q9–Q16). Run the tests with ``pytest tests/tasks``.
"""

from spg_lib.tasks.base import (
    MODES,
    PROMPT_STYLES,
    PromptStyle,
    RewardFn,
    ScoreResult,
    Task,
    check_mode,
    check_prompt_style,
)
from spg_lib.tasks.io import SCHEMA_VERSION, DataError
from spg_lib.tasks.registry import get_task, list_tasks, register_task

__all__ = [
    "MODES",
    "PROMPT_STYLES",
    "SCHEMA_VERSION",
    "DataError",
    "PromptStyle",
    "RewardFn",
    "ScoreResult",
    "Task",
    "check_mode",
    "check_prompt_style",
    "get_task",
    "list_tasks",
    "register_task",
]
