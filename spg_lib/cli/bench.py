"""`spg bench {decode,likelihood,train-step,rl-stability}`: fast paths vs their baselines, or vs the peak.

    spg bench decode --batch-size 16 --gen-length 256 --block-length 32 --steps 128
    spg bench decode --vocab-size 126464
    spg bench likelihood
    spg bench train-step --shape tiny                 # one SPG optimizer step: time, peak memory, MFU
    spg bench train-step --shape llada-8b --batch 6 --prompt-length 200 --gen-length 256   # GPU
    spg bench rl-stability --config params.yaml --base runs/base/model   # exact vs cached rollouts in RL
"""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "decode": ("spg_lib.bench.decode", "fast block sampler vs per-row reference sampler"),
    "likelihood": ("spg_lib.bench.likelihood", "chunked bound estimator vs full-softmax baseline"),
    "train-step": ("spg_lib.bench.train_step", "one SPG optimizer step: time, peak memory, MFU vs matmul peak"),
    "rl-stability": ("spg_lib.bench.rl_stability", "the default RL run with exact vs fast rollouts: reward, "
                                                   "accuracy gain, wall time"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    bench_sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for name, (module, help_text) in BENCHMARKS.items():
        p = bench_sub.add_parser(name, help=help_text)
        importlib.import_module(module).add_arguments(p)


def run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(BENCHMARKS[args.bench][0]).run(args) or 0)
