"""`spg register`: log a trained model + its evaluation to MLflow, register a new version, set aliases.

    spg register --model runs/train/final --metrics runs/eval/metrics.json --name spg-gsm8k
    spg register --model runs/train/adapter --base-model GSAI-ML/LLaDA-8B-Instruct --metrics m.json --name x \\
        --tracking-uri http://127.0.0.1:5000 --params params.yaml

The new version gets alias ``candidate``; ``champion`` moves to it only if its accuracy beats the current
champion's under the same evaluation protocol (task, mode, gen_length, steps, block_length, temperature, test
data, n). Version tags: git commit, dvc.lock hashes, flattened params, evaluation protocol and accuracy.
Tracking URI: --tracking-uri, else $MLFLOW_TRACKING_URI, else sqlite:///./mlruns.db; a sqlite:/// store keeps the
artifacts of experiments it creates in mlartifacts/ next to the database file.
Prints one JSON object (also written to --out if given): name, version, aliases, run_id, model_uri,
logged_model_uri, tracking_uri, champion, champion_decision.
Exit code 2 for invalid inputs (the message names the file / field), 1 for MLflow errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("register", help="register a model version in MLflow (candidate / champion aliases)")
    p.add_argument("--model", required=True, help="model directory (HF checkpoint, or LoRA adapter dir)")
    p.add_argument("--metrics", required=True, help="metrics.json written by `spg evaluate`")
    p.add_argument("--name", required=True, help="registered model name")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns.db in the cwd)")
    p.add_argument("--base-model", default=None,
                   help="base model reference for a LoRA adapter (dir, hub id, builtin:tiny, models:/...); "
                        "default: the adapter's base_model_name_or_path")
    p.add_argument("--params", default=None, help="params.yaml to record (flattened) as tags and run params")
    p.add_argument("--dvc-lock", default=None, help="dvc.lock whose md5s to record (default: ./dvc.lock if present)")
    p.add_argument("--experiment", default=None, help="MLflow experiment for the registration run "
                                                      "(default: spg-models)")
    p.add_argument("--out", default=None, help="also write the JSON result to this file (e.g. for DVC)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from spg_lib.registry.register import DEFAULT_EXPERIMENT, RegistryInputError, register_model

    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON result (MLflow prints links)
            result = register_model(args.model, args.metrics, args.name, tracking_uri=args.tracking_uri,
                                    base_model=args.base_model, params_file=args.params, dvc_lock=args.dvc_lock,
                                    experiment=args.experiment or DEFAULT_EXPERIMENT,
                                    log=lambda msg: print(f"spg register: {msg}", file=sys.stderr))
    except RegistryInputError as exc:
        print(f"spg register: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # MLflow / storage failures: a clear one-liner, not a traceback
        print(f"spg register: MLflow error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(result.as_dict())
    if args.out:
        from spg_lib.tasks.io import atomic_write_json

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(args.out), result.as_dict())
    print(text)
    return 0
