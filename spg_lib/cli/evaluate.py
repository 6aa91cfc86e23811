"""`spg evaluate`: generate greedily on a task's test set, score, write generations + metrics (section `evaluate`).

    spg evaluate --config params.yaml --model runs/train/final --out-dir runs/eval/trained     # DVC stage
    spg evaluate --model builtin:tiny --task gsm8k --data data/benchmarks/gsm8k_test.jsonl \\
        --gen-length 16 --steps 8 --block-length 8 --limit 4 --out-dir runs/eval-smoke           # CPU smoke
    spg evaluate --config configs/paper/math500.yaml --model /ckpt/LLaDA-8B-Instruct             # 1 GPU

Writes ``OUT/generations.jsonl`` (question, completion, ground_truth, extracted, correct) and
``OUT/metrics.json`` (the evaluation protocol, accuracy %, completion lengths, wall time, tokens/s); prints the
metrics.
"""

from __future__ import annotations

import argparse
import json

from spg_lib.cli.options import configure as add_options
from spg_lib.cli.options import load_tree


def configure(p: argparse.ArgumentParser) -> None:
    add_options(p, "evaluate")


def run(args: argparse.Namespace) -> int:
    from spg_lib.tasks.evaluate import evaluate

    metrics = evaluate(load_tree(args).evaluate)
    print(json.dumps(metrics.as_dict()))
    return 0
