"""Metric logging: always a local JSONL file; MLflow too when a tracking URI is configured.

MLflow failures never stop training: the first error is reported once on stderr, the run carries on,
and every metric is still in ``metrics.jsonl`` (which a later upload can replay).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


class MetricsLogger:
    """Rank-0 metric sink: ``log(step, metrics)`` appends one JSON line and forwards to MLflow if enabled."""

    def __init__(self, path: str | Path, tracking_uri: str | None = None, experiment: str = "spg",
                 run_name: str | None = None, params: dict[str, Any] | None = None, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(path)
        self._mlflow = None
        self._mlflow_failed = False
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tracking_uri:
            self._start_mlflow(tracking_uri, experiment, run_name, params or {})

    def _start_mlflow(self, uri: str, experiment: str, run_name: str | None, params: dict[str, Any]) -> None:
        try:
            import mlflow

            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment(experiment)
            mlflow.start_run(run_name=run_name)
            flat = _flatten(params)
            if flat:
                mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})
            self._mlflow = mlflow
        except Exception as exc:  # a tracking outage must not lose the run
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        if not self._mlflow_failed:
            print(f"[spg] MLflow unavailable ({type(exc).__name__}: {exc}); continuing, metrics are kept in "
                  f"{self.path}", file=sys.stderr)
        self._mlflow_failed = True
        self._mlflow = None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **metrics}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row, default=float) + "\n")
        if self._mlflow is not None:
            numeric = {k: float(v) for k, v in metrics.items()
                       if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))}
            try:
                self._mlflow.log_metrics({k.replace("/", "_"): v for k, v in numeric.items()}, step=step)
            except Exception as exc:
                self._warn(exc)

    def close(self) -> None:
        if self._mlflow is not None:
            try:
                self._mlflow.end_run()
            except Exception as exc:
                self._warn(exc)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
