"""`spg score`: re-score a generations file and print one JSON object (task and mode of section `evaluate`).

    spg score --task gsm8k --generations runs/eval/generations.jsonl
    spg score --task sudoku --generations gen.jsonl --mode faithful

Each JSONL line holds ``question``, ``completion`` and ``ground_truth`` (GSM8K: numeric string;
MATH500: LaTeX answer; Countdown: ``{"numbers": [..], "target": N}``; Sudoku:
``{"puzzle": .., "solution": ..}``). Output: ``{"task", "mode", "n", "correct", "total",
"accuracy"}`` with accuracy in percent (Sudoku: micro-averaged cell accuracy).
"""

from __future__ import annotations

import argparse
import json

from spg_lib.cli.options import configure as add_options
from spg_lib.cli.options import load_tree


def configure(p: argparse.ArgumentParser) -> None:
    add_options(p, "evaluate", only=("task", "mode"))
    p.add_argument("--generations", required=True, help="JSONL with question, completion, ground_truth")


def run(args: argparse.Namespace) -> int:
    from spg_lib.tasks import get_task
    from spg_lib.tasks.scoring import score_file

    cfg = load_tree(args).evaluate
    summary = score_file(get_task(cfg.task), args.generations, mode=cfg.mode)
    print(json.dumps(summary.as_dict()))
    return 0
