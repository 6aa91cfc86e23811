"""`spg evaluate`: generate greedily on a task's test set, score, write generations + metrics.

    spg evaluate --model builtin:tiny --task gsm8k --data data/gsm8k_test.jsonl \\
        --gen-length 16 --steps 8 --block-length 8 --limit 4 --out runs/eval-smoke   # CPU smoke
    spg evaluate --model /ckpt/LLaDA-8B-Instruct --task math500 --gen-length 256 --steps 128 \\
        --block-length 32 --batch-size 8 --out runs/eval/math500-256                  # 1 GPU

Writes ``OUT/generations.jsonl`` (question, completion, ground_truth, extracted, correct) and
``OUT/metrics.json`` (accuracy %, completion lengths, wall time, tokens/s); prints the metrics.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("evaluate", help="evaluate a model on a task (generations + metrics)")
    p.add_argument("--model", required=True, help="checkpoint directory, hub id or builtin:tiny")
    p.add_argument("--task", required=True, help="gsm8k | math500 | countdown | sudoku")
    p.add_argument("--data", default=None, help="test data (path, s3:// or hub id; default: bundled/hub)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--gen-length", type=int, default=256)
    p.add_argument("--steps", type=int, default=128, help="diffusion steps (official: gen_length/2)")
    p.add_argument("--block-length", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N examples")
    p.add_argument("--mode", choices=("faithful", "fixed"), default="fixed", help="scoring mode")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    p.add_argument("--dtype", default=None, help="model dtype (default: bfloat16 on GPU, float32 on CPU)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from spg_lib.tasks import DataError
    from spg_lib.tasks.evaluate import EvalConfig, evaluate

    try:
        cfg = EvalConfig(
            model=args.model, task=args.task, out_dir=args.out, data=args.data,
            gen_length=args.gen_length, steps=args.steps, block_length=args.block_length,
            batch_size=args.batch_size, limit=args.limit, mode=args.mode, device=args.device,
            dtype=args.dtype, progress=not args.no_progress,
        )
        metrics = evaluate(cfg)
    except (DataError, ValueError) as exc:
        print(f"spg evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(metrics))
    return 0
