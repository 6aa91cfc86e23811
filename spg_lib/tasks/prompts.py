"""Prompt texts of the four tasks, byte-for-byte as in the official SPG / d1 code.

Training prompts (docs/algorithms.md#tasks-and-rewards) and evaluation prompts (docs/algorithms.md#evaluation-protocol)
differ on purpose: training asks
for a bare answer inside ``<answer>`` tags, evaluation asks for ``\\boxed{}`` inside them and the
assistant turn is prefilled with ``<reasoning>``. Token-level identity matters for reproduction,
so every stray space, quote and newline of the originals is kept (see the comments).

Sources: facebookresearch/SPG ``spg/data_utils.py`` (training), ``eval/gsm8k.py``,
``eval/sudoku.py``; dllm-reasoning/d1 ``eval/math500.py``, ``eval/countdown.py`` (SPG's copies).
"""

from __future__ import annotations

__all__ = [
    "COUNTDOWN_EVAL_PROMPT",
    "COUNTDOWN_TRAIN_TEMPLATE",
    "EVAL_REASONING_PREFILL",
    "FEW_SHOT",
    "GSM8K_EVAL_PROMPT",
    "MATH500_EVAL_PROMPT",
    "MATH_TRAIN_INSTRUCTION",
    "SUDOKU_FEW_SHOT_EXAMPLES",
    "SUDOKU_SYSTEM_PROMPT",
    "SYSTEM_PROMPT",
    "sudoku_few_shot",
]

# Shared training system text (docs/algorithms.md#tasks-and-rewards): leading and trailing newline included.
SYSTEM_PROMPT = """
Respond in the following format:
<reasoning>
...
</reasoning>
<answer>
...
</answer>
"""

# MATH training instruction, placed after SYSTEM_PROMPT + "\n\n" (note the space before "\n\n").
MATH_TRAIN_INSTRUCTION = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. "
    "Wrap the final answer in a \\boxed{}. \n\n"
)

# Countdown training instruction; formatted with nums=str(list) and target=int, appended to
# SYSTEM_PROMPT + "\n".
COUNTDOWN_TRAIN_TEMPLATE = (
    "Using only the numbers {nums}, create an arithmetic expression that evaluates to exactly "
    "{target}. You must use all numbers from the list, and each number must be used exactly once. "
    "You may use the operations +, -, *, and / as needed. After reasoning, provide only your "
    "final expression inside <answer></answer> tags without including an equals sign or the "
    "target number. For example, if the numbers are [2, 3, 4] and the target is 5, a valid "
    "answer is: <answer>\n2*4-3\n</answer>"
)

# --- evaluation (docs/algorithms.md#evaluation-protocol)
# --------------------------------------------------------------------------
# GSM8K: a space before the first newline in the original.
GSM8K_EVAL_PROMPT = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. "
    "Wrap the final answer in a \\boxed{}. \n"
    "Respond in the following format:\n"
    "<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>"
)

# MATH500: no space before the first newline, and the block ends with a stray `"`, a space and
# a newline in the original.
MATH500_EVAL_PROMPT = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. "
    "Wrap the final answer in a \\boxed{}.\n"
    "Respond in the following format:\n"
    "<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>\" \n"
)

# Countdown: the example runs straight into "Respond in..." with no separator in the original.
COUNTDOWN_EVAL_PROMPT = (
    "Using only the provided numbers, create an arithmetic expression that evaluates to exactly "
    "the provided target number. You may use the operations +, -, *, and / as needed, but each "
    "number must be used exactly once. Think step-by-step. After reasoning, provide only your "
    "final expression inside \\boxed{} tags without including an equals sign or the target "
    "number. For example: \\boxed{a + b * c}"
    "Respond in the following format:\n"
    "<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>"
)

# The assistant turn of every evaluation prompt is prefilled with this literal (docs/algorithms.md#evaluation-protocol).
EVAL_REASONING_PREFILL = "<reasoning>"

# --- Sudoku (docs/algorithms.md#tasks-and-rewards)
# --------------------------------------------------------------------------------
SUDOKU_SYSTEM_PROMPT = """
Please solve the following 4x4 Sudoku puzzle. The puzzle is provided as a 16-character string reading left-to-right, top-to-bottom, where '0' represents empty cells.

Rules:
- Fill empty cells with digits 1-4
- Each row must contain digits 1-4 exactly once
- Each column must contain digits 1-4 exactly once
- Each 2x2 box must contain digits 1-4 exactly once

Important: Your solution must be a COMPLETE 16-character string with only the digits 1-4, representing your final solved grid.

Respond in this exact format:
<reasoning>
Your step-by-step solving process
</reasoning>
<answer>
[16-character solution string with no spaces or separators]
</answer>
"""  # noqa: E501

_SUDOKU_EXAMPLE_1 = (
    "Question:\nSolve the following Sudoku puzzle: 3014002020004130\nAnswer:\n<reasoning>\n"
    "Interpret puzzle as 4 rows of 4:\nR1: 3 0 1 4\nR2: 0 0 2 0\nR3: 2 0 0 0\nR4: 4 1 3 0\n\n"
    "Fill easy singles:\nR1 missing 2 → R1C2=2.\nR4 missing 2 → R4C4=2.\n"
    "Box D (R3-4,C3-4) then needs {1,4}; column4 can only accept 1 → R3C4=1, R3C3=4.\n"
    "R3 now missing 3 → R3C2=3.\nColumn1 missing 1 → R2C1=1.\nColumn2 missing 4 → R2C2=4.\n"
    "Last cell R2C4=3.\n\n"
    "Final grid:\nR1: 3 2 1 4\nR2: 1 4 2 3\nR3: 2 3 4 1\nR4: 4 1 3 2\n</reasoning>\n"
    "<answer>\n3214142323414132\n</answer>"
)
_SUDOKU_EXAMPLE_2 = (
    "Question:\nSolve the following Sudoku puzzle: 0000100420013142\nAnswer:\n<reasoning>\n"
    "Interpret puzzle as 4 rows of 4:\nR1: 0 0 0 0\nR2: 1 0 0 4\nR3: 2 0 0 1\nR4: 3 1 4 2\n\n"
    "Fill easy singles:\nCol1 missing 4 → R1C1=4.\nCol4 missing 3 → R1C4=3.\n"
    "Box A (R1-2,C1-2) missing {2,3} and R1 now needs {1,2} → R1C2=2, R2C2=3.\nR1C3=1.\n"
    "R2 now missing 2 → R2C3=2.\nCol2 missing 4 → R3C2=4, then R3C3=3.\n\n"
    "Final grid:\nR1: 4 2 1 3\nR2: 1 3 2 4\nR3: 2 4 3 1\nR4: 3 1 4 2\n</reasoning>\n"
    "<answer>\n4213132424313142\n</answer>"
)
_SUDOKU_EXAMPLE_3 = (
    "Question:\nSolve the following Sudoku puzzle: 2001403002001420\nAnswer:\n<reasoning>\n"
    "Interpret puzzle as 4 rows of 4:\nR1: 2 0 0 1\nR2: 4 0 3 0\nR3: 0 2 0 0\nR4: 1 4 2 0\n\n"
    "Fill easy singles:\nR1 missing {3,4}; Col2 can't be 1 so R1C2=3 → R1C3=4.\n"
    "R4 missing 3 → R4C4=3.\nCol4 missing {2,4}; R2 must take 2 → R2C4=2 → R2C2=1.\n"
    "Col1 missing 3 → R3C1=3.\nCol3 missing 1 → R3C3=1 → R3C4=4.\n\n"
    "Final grid:\nR1: 2 3 4 1\nR2: 4 1 3 2\nR3: 3 2 1 4\nR4: 1 4 2 3\n</reasoning>\n"
    "<answer>\n2341413232141423\n</answer>"
)
SUDOKU_FEW_SHOT_EXAMPLES: tuple[str, str, str] = (_SUDOKU_EXAMPLE_1, _SUDOKU_EXAMPLE_2, _SUDOKU_EXAMPLE_3)

# (puzzle, solution) of the three worked examples; excluded from generated training puzzles.
SUDOKU_FEW_SHOT_PAIRS: tuple[tuple[str, str], ...] = (
    ("3014002020004130", "3214142323414132"),
    ("0000100420013142", "4213132424313142"),
    ("2001403002001420", "2341413232141423"),
)


def sudoku_few_shot(k: int = 3) -> str:
    """The first `k` (0–3) worked examples joined by a blank line, as in the official code."""
    if not 0 <= k <= 3:
        raise ValueError(f"few-shot count must be in 0..3, got {k}")
    return "\n\n".join(SUDOKU_FEW_SHOT_EXAMPLES[:k])


FEW_SHOT = sudoku_few_shot(3)
