"""`spg score`: re-score a generations file and print one JSON object.

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
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("score", help="score a generations JSONL file (prints one JSON object)")
    p.add_argument("--task", required=True, help="gsm8k | math500 | countdown | sudoku")
    p.add_argument("--generations", required=True, help="JSONL with question, completion, ground_truth")
    p.add_argument("--mode", choices=("faithful", "fixed"), default="fixed",
                   help="faithful = official parsers with their quirks; fixed = corrected (default)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from spg_lib.tasks import get_task
    from spg_lib.tasks.io import DataError
    from spg_lib.tasks.scoring import score_file

    try:
        task = get_task(args.task)
        summary = score_file(task, args.generations, mode=args.mode)
    except (DataError, ValueError) as exc:
        print(f"spg score: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary.as_dict()))
    return 0
