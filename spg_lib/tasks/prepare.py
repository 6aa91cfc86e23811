"""Prepare train/test files for a task: ``{out}/train.jsonl``, ``{out}/test.jsonl``, manifest.json.

Rows are the task's canonical examples plus ``prompt`` (training prompt for train rows,
evaluation prompt for test rows; user-message content before the chat template). Sources:

* GSM8K / MATH500: ``--source`` (hub id, directory with ``{split}.*``, or a file for train);
* Countdown: training problems are generated (seeded, solvable, disjoint from the test set)
  unless ``--source`` names a dataset (e.g. ``Jiayi-Pan/Countdown-Tasks-3to4``);
* Sudoku: training puzzles are generated from the 4×4 grids NOT used by the test set.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from spg_lib.tasks.base import Task
from spg_lib.tasks.io import SCHEMA_VERSION, write_manifest, write_rows

__all__ = ["prepare_data"]


def _test_source(task: Task, source: str | None, test_source: str | None) -> str:
    if test_source:
        return test_source
    if source and Path(source).is_dir():
        return source
    if source and not Path(source).exists() and not source.startswith("s3://") and task.name in ("gsm8k",):
        return source  # hub id holding both splits
    return task.default_source("test")


def prepare_data(
    task: Task,
    out_dir: str,
    *,
    source: str | None = None,
    test_source: str | None = None,
    n_train: int | None = None,
    seed: int = 42,
    fmt: str = "jsonl",
) -> dict[str, Any]:
    """Write the train and test splits of `task` under `out_dir`; returns the manifest.

    Args:
        task: the task.
        out_dir: output directory (created).
        source: training data source; None = the task default (generated for Countdown/Sudoku).
        test_source: test data source; None = derived from `source` or the task default.
        n_train: number of training rows (None = all loaded rows; generated tasks: 10,000).
        seed: shuffle / generation seed (the official shuffles use 42).
        fmt: "jsonl" or "parquet".
    """
    if fmt not in ("jsonl", "parquet"):
        raise ValueError(f"format must be 'jsonl' or 'parquet', got {fmt!r}")
    if n_train is not None and n_train < 0:
        raise ValueError(f"n_train must be >= 0, got {n_train}")
    test_src = _test_source(task, source, test_source)
    test = task.load_split(test_src, "test")

    generated = source is None and task.name in ("countdown", "sudoku")
    if generated:
        n = 10_000 if n_train is None else n_train
        if task.name == "countdown":
            from spg_lib.tasks.countdown import generate_problems

            train = generate_problems(n, seed=seed, exclude=[(tuple(e["numbers"]), e["target"]) for e in test])
        else:
            from spg_lib.tasks.sudoku import FEW_SHOT_PUZZLES, generate_puzzles

            train = generate_puzzles(
                n, seed=seed, exclude_solutions={e["solution"] for e in test}, exclude_puzzles=FEW_SHOT_PUZZLES
            )
        train_src = f"generated(seed={seed})"
    else:
        train_src = source or task.default_source("train")
        train = task.load_split(train_src, "train")
        if task.name == "countdown":
            test_keys = {(tuple(sorted(e["numbers"])), e["target"]) for e in test}
            train = [e for e in train if (tuple(sorted(e["numbers"])), e["target"]) not in test_keys]
        random.Random(seed).shuffle(train)
        if n_train is not None:
            train = train[:n_train]

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, rows, build in (("train", train, task.train_prompt), ("test", test, task.eval_prompt)):
        path = out / f"{split}.{fmt}"
        files[split] = (path, write_rows(path, [{**r, "prompt": build(r)} for r in rows]))
    return write_manifest(
        out,
        files,
        task=task.name,
        schema_version=SCHEMA_VERSION,
        sources={"train": train_src, "test": test_src},
        seed=seed,
    )
