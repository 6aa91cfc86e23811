"""`spg bench {decode,likelihood}`: time the fast paths against their baselines in one run.

    spg bench decode --batch-size 16 --gen-length 256 --block-length 32 --steps 128
    spg bench decode --vocab-size 126464
    spg bench likelihood
"""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "decode": ("spg_lib.bench.decode", "fast block sampler vs per-row reference sampler"),
    "likelihood": ("spg_lib.bench.likelihood", "chunked bound estimator vs full-softmax baseline"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    bench_sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for name, (module, help_text) in BENCHMARKS.items():
        p = bench_sub.add_parser(name, help=help_text)
        importlib.import_module(module).add_arguments(p)


def run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(BENCHMARKS[args.bench][0]).run(args) or 0)
