"""`spg prepare-data`: write a task's train/test rows (JSONL or parquet) and manifest.json (section `data`).

    spg prepare-data --config params.yaml                          # DVC stage prepare_data
    spg prepare-data --task gsm8k --out-dir data/gsm8k --source openai/gsm8k
    spg prepare-data --task sudoku --out-dir data/sudoku --n-train 20000 \\
        --test-source data/benchmarks/sudoku_4x4_test_spg.csv

Sources: hub ids, local files/directories, ``s3://`` URIs.
"""

from __future__ import annotations

import argparse
import json

from spg_lib.cli.options import configure as add_options
from spg_lib.cli.options import load_tree


def configure(p: argparse.ArgumentParser) -> None:
    add_options(p, "data")


def run(args: argparse.Namespace) -> int:
    from spg_lib.tasks import get_task
    from spg_lib.tasks.prepare import prepare_data

    cfg = load_tree(args).data
    manifest = prepare_data(get_task(cfg.task), cfg.out_dir, source=cfg.source, test_source=cfg.test_source,
                            n_train=cfg.n_train, seed=cfg.seed, fmt=cfg.format)
    print(json.dumps({k: manifest[k] for k in ("task", "files")}))
    return 0
