"""`spg summarize`: base vs trained accuracy, reward gain and wall time of a pipeline run.

    spg summarize --config params.yaml --out metrics          # DVC stage evaluate: paths from the tree
    spg summarize --base runs/eval/base/metrics.json --trained runs/eval/trained/metrics.json \\
        --train-log runs/train/metrics.jsonl --timing runs/base/result.json --timing runs/train/result.json
    spg summarize --show metrics/summary.json --registered runs/register/registered.json   # the make-run report

Without explicit paths the run's files are found from the configuration tree: <evaluate.out_dir>/{base,trained}/
metrics.json, <train.out_dir>/metrics.jsonl, and the timings <base_model.out_dir>/result.json and
<train.out_dir>/result.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spg_lib.cli.options import configure as add_options
from spg_lib.cli.options import load_tree


def configure(p: argparse.ArgumentParser) -> None:
    add_options(p)
    p.add_argument("--base", help="metrics.json of the base model's evaluation")
    p.add_argument("--trained", help="metrics.json of the trained model's evaluation")
    p.add_argument("--train-log", help="the trainer's metrics.jsonl")
    p.add_argument("--timing", action="append", default=None, help="JSON with wall_time_s of a stage (repeatable)")
    p.add_argument("--out", default="metrics", help="output directory (summary.json, plot CSVs; default metrics)")
    p.add_argument("--show", metavar="SUMMARY_JSON", help="only print the report of an existing summary.json")
    p.add_argument("--registered", metavar="JSON", help="with --show: the `spg register` record to report")


def run(args: argparse.Namespace) -> int:
    from spg_lib.pipeline.summary import format_table, report, summarize

    if args.show:
        print(report(args.show, args.registered))
        return 0
    tree = load_tree(args)
    train = Path(tree.train.out_dir)

    def evaluation(name: str) -> Path:  # evaluate.out_dir has no default
        if tree.evaluate.out_dir is None:
            raise ValueError(f"--{name} or evaluate.out_dir is required")
        return Path(tree.evaluate.out_dir) / name / "metrics.json"

    timings = args.timing if args.timing is not None else [
        str(p) for p in (Path(tree.base_model.out_dir) / "result.json", train / "result.json") if p.is_file()]
    summary = summarize(args.base or evaluation("base"), args.trained or evaluation("trained"),
                        args.train_log or train / "metrics.jsonl", args.out, timings=timings)
    print(format_table(summary))
    return 0
