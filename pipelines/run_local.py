"""Run the whole SPG pipeline on this machine with ``kfp.local`` (every component as a subprocess in this Python
environment), e.g. the embedded tiny CPU default:

    spg kfp run-local --config params.yaml --workdir runs/kfp-local
    spg kfp run-local --config params.yaml -o train.max_steps=8 -p min_gain=-100

MLflow: ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<workdir>/mlruns.db``. Checkpoints: ``<workdir>/checkpoints``
unless a ``checkpoint_root`` parameter is given. Prints where each task's artifacts are.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from spg_lib.pipeline.config import load_pipeline_config

__all__ = ["artifacts_of", "run_local"]


def artifacts_of(run_dir: Path) -> dict[str, dict[str, str]]:
    """task -> output name -> path, for the task directories kfp.local wrote under ``run_dir``."""
    out: dict[str, dict[str, str]] = {}
    for task in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        out[task.name] = {p.name: str(p) for p in sorted(task.iterdir()) if p.name != "executor_output.json"}
    return out


def _final_status(run_dir: Path) -> str:
    """SUCCEEDED / FAILED from the exit handler's output (the MLflow status it recorded: FINISHED or FAILED)."""
    import json

    out = run_dir / "finalize-run" / "executor_output.json"
    if not out.is_file():
        return "FAILED"
    recorded = json.loads(out.read_text()).get("parameterValues", {}).get("Output")
    return "SUCCEEDED" if recorded == "FINISHED" else "FAILED"


def run_local(config: str | None, overrides: list[str] | None = None, workdir: str | Path | None = None,
              parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compile the pipeline for ``config`` and run it with kfp.local; returns {status, run_dir, artifacts}.

    ``overrides`` (dotted paths) become the run's ``overrides`` parameter; ``parameters`` set other pipeline
    parameters by name.
    """
    from kfp import local

    from pipelines.spg_pipeline import build_pipeline

    overrides = list(overrides or [])
    work = Path(workdir or "runs/kfp-local").resolve()
    work.mkdir(parents=True, exist_ok=True)
    config_path = Path(config).resolve() if config else None
    cfg = load_pipeline_config(config_path, overrides)  # one-line errors before anything runs
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlruns.db'}")
    root = work / "pipeline-root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=False)
    args: dict[str, Any] = {"overrides": overrides, "checkpoint_root": str(work / "checkpoints"),
                            **(parameters or {})}
    before = set(root.iterdir()) if root.is_dir() else set()
    pipeline = build_pipeline(cfg, str(config_path) if config_path else "")
    pipeline(**args)
    new = sorted(set(root.iterdir()) - before, key=lambda p: p.stat().st_mtime)
    if not new:
        raise RuntimeError(f"kfp.local wrote no run under {root}")
    run_dir = new[-1]
    arts = artifacts_of(run_dir)
    status = _final_status(run_dir)
    return {"status": status, "run_dir": str(run_dir), "artifacts": arts,
            "tracking_uri": os.environ["MLFLOW_TRACKING_URI"]}
