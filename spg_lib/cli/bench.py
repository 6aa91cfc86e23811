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


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("bench", help="run a benchmark (prints figures and a ratio)")
    bench_sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for name, (module, help_text) in BENCHMARKS.items():
        p = bench_sub.add_parser(name, help=help_text)
        p.set_defaults(func=_runner(module))
        _add_arguments_lazily(p, module)
    return parser


def _add_arguments_lazily(parser: argparse.ArgumentParser, module: str) -> None:
    importlib.import_module(module).add_arguments(parser)


def _runner(module: str):
    def run(args: argparse.Namespace) -> int:
        return int(importlib.import_module(module).run(args) or 0)

    return run
