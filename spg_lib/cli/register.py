"""`spg register`: log a trained model + its evaluation to MLflow, register a new version, set aliases
(section `register`).

    spg register --config params.yaml                               # DVC stage register
    spg register --model runs/train/final --metrics runs/eval/trained/metrics.json --name spg-gsm8k
    spg register --model runs/train/adapter --base-model GSAI-ML/LLaDA-8B-Instruct --metrics m.json --name x \\
        --tracking-uri http://127.0.0.1:5000

The new version gets alias ``candidate``; ``champion`` moves to it only if its accuracy beats the current
champion's under the same evaluation protocol (the protocol recorded in metrics.json). Version tags: git
commit, dvc.lock hashes, the flattened parameter file, evaluation protocol and accuracy. A sqlite:/// store
keeps the artifacts of experiments it creates in mlartifacts/ next to the database file.
Prints one JSON object (also written to ``register.out`` if set): name, version, aliases, run_id, model_uri,
logged_model_uri, tracking_uri, champion, champion_decision.
Exit code 2 for invalid inputs (the message names the file / field), 1 for MLflow errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from spg_lib.cli.options import config_path, load_tree
from spg_lib.cli.options import configure as add_options


def configure(p: argparse.ArgumentParser) -> None:
    add_options(p, "register")


def run(args: argparse.Namespace) -> int:
    from spg_lib.registry.register import RegistryInputError, register_model

    tree = load_tree(args)
    cfg = tree.register
    model = cfg.model or str(Path(tree.train.out_dir) / "final")
    metrics = cfg.metrics or str(Path(tree.evaluate.out_dir) / "trained" / "metrics.json")
    params = config_path(args)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON result (MLflow prints links)
            result = register_model(model, metrics, cfg.name, tracking_uri=cfg.tracking_uri,
                                    base_model=cfg.base_model, params_file=str(params) if params else None,
                                    dvc_lock=cfg.dvc_lock, experiment=cfg.experiment,
                                    log=lambda msg: print(f"spg register: {msg}", file=sys.stderr))
    except RegistryInputError:
        raise  # bad input: one line, exit 2 (spg_lib.cli.main)
    except Exception as exc:  # MLflow / storage failures: a clear one-liner, not a traceback
        print(f"spg register: MLflow error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if cfg.out:
        from spg_lib.io import atomic_write_json

        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(cfg.out), result.as_dict())
    print(json.dumps(result.as_dict()))
    return 0
