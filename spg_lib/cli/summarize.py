"""`spg summarize`: base vs trained accuracy, reward gain and wall time of a pipeline run.

    spg summarize --base runs/eval/base/metrics.json --trained runs/eval/trained/metrics.json \\
        --train-log runs/train/metrics.jsonl --timing runs/base/result.json --timing runs/train/result.json \\
        --out metrics
    spg summarize --show metrics/summary.json --registered runs/register/registered.json   # the make-run report
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("summarize", help="results table + metrics/summary.json of a pipeline run")
    p.add_argument("--base", help="metrics.json of the base model's evaluation")
    p.add_argument("--trained", help="metrics.json of the trained model's evaluation")
    p.add_argument("--train-log", help="the trainer's metrics.jsonl")
    p.add_argument("--show", metavar="SUMMARY_JSON", help="only print the report of an existing summary.json")
    p.add_argument("--registered", metavar="JSON", help="with --show: the `spg register` record to report")
    p.add_argument("--timing", action="append", default=[], help="JSON with wall_time_s of a stage (repeatable)")
    p.add_argument("--out", default="metrics", help="output directory (summary.json, plot CSVs)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from spg_lib.pipeline.summary import format_table, report, summarize

    try:
        if args.show:
            print(report(args.show, args.registered))
            return 0
        missing = [f"--{n.replace('_', '-')}" for n in ("base", "trained", "train_log") if not getattr(args, n)]
        if missing:
            raise ValueError(f"missing {missing} (or use --show)")
        summary = summarize(args.base, args.trained, args.train_log, args.out, timings=args.timing)
    except (ValueError, OSError) as exc:
        print(f"spg summarize: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(summary))
    return 0
