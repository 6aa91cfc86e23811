"""Prompts and SFT targets are the tasks' own, and byte-identical to what the default run and the paper configs use.

The pins were taken from the code before the compact prompts and SFT targets moved into the task classes; a
change of one byte here changes the tokens every run sees (and the default run's figures).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from spg_lib.models import build_tiny_tokenizer
from spg_lib.tasks import get_task
from spg_lib.tasks.evaluate import encode_prompts

ROWS = {
    "gsm8k": {"question": "Tom has 3 apples and buys 4 more. How many apples?",
              "answer": "He has 3 + 4 = <<3+4=7>>7 apples.\n#### 7"},
    "math500": {"problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?", "solution": "We get $\\boxed{\\frac{3}{4}}$.",
                "answer": "\\frac{3}{4}"},
    "countdown": {"numbers": [3, 7, 25], "target": 46, "solution": "(25 - 3) * 7 / 7"},
    "sudoku": {"puzzle": "3014002020004130", "solution": "3214142323414132"},
}
# sha256[:16] of the paper prompts (train, eval); compact prompts and SFT targets in full
PINS = {
    "gsm8k": ("1238be1001be5e63", "3f842249c1df0322", "Tom has 3 apples and buys 4 more. How many apples?",
              "<reasoning>\nHe has 3 + 4 = <<3+4=7>>7 apples.\n</reasoning>\n<answer>\n7\n</answer>"),
    "math500": ("f776c007acec1414", "0babc8009f9eae2a", "What is $\\frac{1}{2} + \\frac{1}{4}$?", None),
    "countdown": ("5fdc45d015313b65", "bc0ca8393b79d4b1", "Numbers 3 7 25 target 46",
                  "<answer>(25 - 3) * 7 / 7</answer>"),
    "sudoku": ("75bd25432a8cc518", "3927a9685707a1a9", "Sudoku 3014002020004130", "<answer>3214142323414132</answer>"),
}


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(ROWS))
def test_prompts_and_sft_targets_are_pinned(name):
    task = get_task(name)
    ex = task.normalise(ROWS[name], "pin")
    train, evaluation, compact, sft = PINS[name]
    assert _h(task.prompt(ex, "paper")) == train == _h(task.train_prompt(ex))
    assert _h(task.prompt(ex, "paper", evaluation=True)) == evaluation == _h(task.eval_prompt(ex))
    assert task.prompt(ex, "compact") == compact == task.prompt(ex, "compact", evaluation=True)
    if sft is None:
        with pytest.raises(ValueError, match="no SFT target"):
            task.sft_response(ex)
    else:
        assert task.sft_response(ex) == sft


def test_tokenised_evaluation_prompts_are_pinned():
    """The token ids `spg evaluate` feeds the tiny model: paper (chat template + <reasoning> prefill + special
    tokens) and compact (chat template only, as in training)."""
    task = get_task("sudoku")
    ex = task.normalise(ROWS["sudoku"], "pin")
    tok = build_tiny_tokenizer()
    for style, (length, digest) in {"paper": (2258, "4f37a19825a9656d"), "compact": (46, "2467201c45a143e6")}.items():
        ids = encode_prompts(tok, task, [ex], style)[0]
        assert (len(ids), _h(json.dumps(ids))) == (length, digest), style


def test_unknown_prompt_style_names_the_field():
    task = get_task("sudoku")
    with pytest.raises(ValueError, match="prompt_style must be one of paper, compact; got 'short'"):
        task.prompt(task.normalise(ROWS["sudoku"], "x"), "short")


def test_nothing_outside_tasks_switches_on_a_task_name():
    """A plugin task gets compact prompts, SFT and teacher defects from its methods only if no code outside
    spg_lib/tasks compares task names."""
    names = "gsm8k|math500|countdown|sudoku|gsm|math|ctd"
    switch = re.compile(rf"(==|!=)\s*[\"']({names})[\"']|[\"']({names})[\"']\s*(==|!=)|task(\.name)?\s+(not\s+)?in\s")
    root = Path(__file__).resolve().parents[2] / "spg_lib"
    hits = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py") if "tasks" not in p.relative_to(root).parts
            for i, line in enumerate(p.read_text().splitlines(), 1) if switch.search(line)]
    assert hits == []
