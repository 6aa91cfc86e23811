"""`spg prepare-data`: write a task's train/test rows (JSONL or parquet) and manifest.json.

    spg prepare-data --task gsm8k --out data/gsm8k --source openai/gsm8k
    spg prepare-data --task countdown --out data/countdown --test-source countdown_cd3_test.jsonl
    spg prepare-data --task sudoku --out data/sudoku --n-train 20000 --seed 42 \\
        --test-source sudoku_4x4_test_spg.csv

Sources: hub ids (needs `datasets` or huggingface_hub), local files/directories, ``s3://`` URIs.
Without ``--test-source`` the bundled copy under ``$SPG_DATA_DIR`` (or the hub id) is used.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("prepare-data", help="write train/test files + manifest for a task")
    p.add_argument("--task", required=True, help="gsm8k | math500 | countdown | sudoku")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--source", default=None, help="training source: hub id, local path or s3:// URI")
    p.add_argument("--test-source", default=None, help="test source (default: derived / bundled)")
    p.add_argument("--n-train", type=int, default=None, help="number of training rows")
    p.add_argument("--seed", type=int, default=42, help="shuffle/generation seed (default 42)")
    p.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from spg_lib.tasks import DataError, get_task
    from spg_lib.tasks.prepare import prepare_data

    try:
        manifest = prepare_data(
            get_task(args.task), args.out, source=args.source, test_source=args.test_source,
            n_train=args.n_train, seed=args.seed, fmt=args.format,
        )
    except (DataError, ValueError) as exc:
        print(f"spg prepare-data: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: manifest[k] for k in ("task", "files")}))
    return 0
