"""Compact prompts and SFT targets for tiny character-level models on CPU (``prompt_style: compact``).

The paper's prompts (system text, 3-shot Sudoku examples: thousands of characters) are what the
official runs use and stay the default (``prompt_style: paper``); a 1.6 M-parameter character model
trained from scratch in minutes cannot afford them, so the CPU default uses these short forms. The
completions keep the ``<answer>…</answer>`` format, so every task's own reward and scorer apply unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def compact_prompt(task: str, example: Mapping[str, Any]) -> str:
    """User-message content in compact style."""
    if task == "sudoku":
        return f"Sudoku {example['puzzle']}"
    if task == "countdown":
        return f"Numbers {' '.join(map(str, example['numbers']))} target {example['target']}"
    if task == "gsm8k":
        return str(example["question"])
    if task == "math500":
        return str(example["problem"])
    raise ValueError(f"no compact prompt for task {task!r}")


def sft_response(task: str, example: Mapping[str, Any]) -> str:
    """The SFT target completion (before EOS) for ``example``; needs the gold solution fields."""
    if task == "sudoku":
        return f"<answer>{example['solution']}</answer>"
    if task == "countdown":
        if "solution" not in example:
            raise ValueError("countdown SFT needs examples with a 'solution' expression (use generated problems)")
        return f"<answer>{example['solution']}</answer>"
    if task == "gsm8k":
        reasoning = str(example.get("solution", "")).split("####")[0].strip()
        return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{example['answer']}\n</answer>"
    raise ValueError(f"no SFT target for task {task!r}")
