"""`spg prepare-data`: write a task's train/test rows (JSONL or parquet) and manifest.json (section `data`).

    spg prepare-data --config params.yaml                          # DVC stage prepare_data
    spg prepare-data --task gsm8k --out-dir data/gsm8k --source openai/gsm8k
    spg prepare-data --task sudoku --out-dir data/sudoku --n-train 20000 \\
        --test-source data/benchmarks/sudoku_4x4_test_spg.csv
    spg prepare-data --config params.yaml -o data.dvc_repo=https://github.com/org/data.git \\
        -o data.dvc_rev=v2 -o data.test_source=sudoku/test.csv      # read from the repository's DVC remote

Sources: hub ids, local files/directories, ``s3://`` URIs, or paths inside the DVC repository ``data.dvc_repo``.
The same function (`spg_lib.pipeline.prepare.prepare_stage`) runs the DVC stage and the Kubeflow component.
"""

from __future__ import annotations

import argparse
import json

from spg_lib.cli.options import configure as add_options
from spg_lib.cli.options import load_tree


def configure(p: argparse.ArgumentParser) -> None:
    add_options(p, "data")


def run(args: argparse.Namespace) -> int:
    from spg_lib.pipeline.prepare import prepare_stage

    manifest = prepare_stage(load_tree(args).data)
    print(json.dumps({k: manifest[k] for k in ("task", "files", "dvc") if k in manifest}))
    return 0
