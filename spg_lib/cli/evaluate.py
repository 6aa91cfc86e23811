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

_FLAGS = {  # flag dest -> EvalConfig field
    "model": "model", "task": "task", "data": "data", "out": "out_dir", "gen_length": "gen_length",
    "steps": "steps", "block_length": "block_length", "batch_size": "batch_size", "limit": "limit",
    "mode": "mode", "prompt_style": "prompt_style", "device": "device", "dtype": "dtype",
}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("evaluate", help="evaluate a model on a task (generations + metrics)")
    p.add_argument("--config", default=None, help="YAML file whose --section gives the settings (flags override)")
    p.add_argument("--section", default="evaluate", help="section of --config (default: evaluate)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override of the section, e.g. gen_length=64 (repeatable)")
    p.add_argument("--model", default=None, help="checkpoint directory, hub id or builtin:tiny")
    p.add_argument("--task", default=None, help="gsm8k | math500 | countdown | sudoku")
    p.add_argument("--data", default=None, help="test data (path, s3:// or hub id; default: bundled/hub)")
    p.add_argument("--out", default=None, help="output directory")
    p.add_argument("--gen-length", type=int, default=None, help="tokens generated (default 256)")
    p.add_argument("--steps", type=int, default=None, help="diffusion steps (default 128; official: gen_length/2)")
    p.add_argument("--block-length", type=int, default=None, help="block length (default 32)")
    p.add_argument("--batch-size", type=int, default=None, help="rows per generation call (default 8)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N examples")
    p.add_argument("--mode", choices=("faithful", "fixed"), default=None, help="scoring mode (default fixed)")
    p.add_argument("--prompt-style", choices=("paper", "compact"), default=None,
                   help="paper evaluation prompts (default) or the compact prompts of tiny CPU models")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    p.add_argument("--dtype", default=None, help="model dtype (default: bfloat16 on GPU, float32 on CPU)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from spg_lib.config import ConfigError, apply_overrides, from_dict
    from spg_lib.tasks import DataError
    from spg_lib.tasks.evaluate import EvalConfig, evaluate

    try:
        data: dict = {}
        if args.config:
            import yaml

            with open(args.config) as fh:
                doc = yaml.safe_load(fh) or {}
            if args.section not in doc:
                raise ConfigError(f"{args.config}: no `{args.section}:` section")
            data = dict(doc[args.section] or {})
        data = apply_overrides(data, args.override)
        data.update({field: getattr(args, flag) for flag, field in _FLAGS.items() if getattr(args, flag) is not None})
        if args.no_progress:
            data["progress"] = False
        missing = [f for f in ("model", "task", "out_dir") if f not in data]
        if missing:
            raise ConfigError(f"missing {missing} (flags --model/--task/--out or keys of the config section)")
        cfg = from_dict(EvalConfig, data, where=f"{args.config}:{args.section}" if args.config else "evaluate")
        metrics = evaluate(cfg)
    except (DataError, ValueError, OSError) as exc:
        print(f"spg evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(metrics))
    return 0
