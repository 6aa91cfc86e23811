"""Metric logging: always a local JSONL file; MLflow too when a tracking URI is configured.

MLflow failures never stop training: the first error is reported once on stderr, MLflow is switched off for the
rest of the run, and every metric is still in ``metrics.jsonl`` (which a later upload can replay).

MLflow's HTTP client retries a failed request 7 times with exponential backoff and a 120 s timeout by default, so
an unreachable server would stall a training step for minutes before the error surfaces. When it talks to MLflow,
the logger therefore sets short defaults (`FAST_FAIL_HTTP_ENV`: 2 retries, 1 s backoff factor, no jitter, 10 s
timeout) for the process, only for variables the user has not set: worst case one step waits ~2 s (server down:
connection refused) or ~30 s (server hanging), once.

The logger talks to MLflow through an explicit `MlflowClient` and run id (no fluent global "active run"), so an
outage leaves no dangling active run behind and several loggers can coexist in one process.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from spg_lib.config import flatten
from spg_lib.registry.store import apply_fast_fail_http_defaults


class MetricsLogger:
    """Rank-0 metric sink: ``log(step, metrics)`` appends one JSON line and forwards to MLflow if enabled.

    Args:
        path: the JSONL file (parent directories are created).
        tracking_uri: MLflow tracking URI; None = local JSONL only.
        experiment: MLflow experiment name (created if missing).
        run_name: MLflow run name.
        params: nested dict logged (flattened, values truncated to 500 characters) as run parameters.
        enabled: False on non-main ranks: every method is a no-op.
        run_id: continue this existing MLflow run (e.g. after a resume) instead of creating a new one.
        tags: extra run tags.
    Attributes:
        run_id: the MLflow run id, or None when MLflow is off / unavailable.
        mlflow_active: True while MLflow logging is on.
    """

    def __init__(self, path: str | Path, tracking_uri: str | None = None, experiment: str = "spg",
                 run_name: str | None = None, params: dict[str, Any] | None = None, enabled: bool = True,
                 run_id: str | None = None, tags: dict[str, str] | None = None):
        self.enabled = enabled
        self.path = Path(path)
        self.run_id: str | None = None
        self._client = None
        self._mlflow_failed = False
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tracking_uri:
            self._start_mlflow(tracking_uri, experiment, run_name, params or {}, run_id, tags or {})

    @property
    def mlflow_active(self) -> bool:
        return self._client is not None

    def _start_mlflow(self, uri: str, experiment: str, run_name: str | None, params: dict[str, Any],
                      run_id: str | None, tags: dict[str, str]) -> None:
        try:
            apply_fast_fail_http_defaults()
            from mlflow.entities import Param
            from mlflow.tracking import MlflowClient

            from spg_lib.registry.lineage import git_commit, safe_key
            from spg_lib.registry.store import get_or_create_experiment

            client = MlflowClient(tracking_uri=uri)
            if run_id:
                client.update_run(run_id, status="RUNNING")
            else:
                experiment_id = get_or_create_experiment(client, experiment)
                run_tags = {"mlflow.source.git.commit": git_commit(), **tags}
                run_id = client.create_run(experiment_id, run_name=run_name, tags=run_tags).info.run_id
                flat = flatten(params)
                if flat:
                    client.log_batch(run_id, params=[Param(safe_key(k), str(v)[:500]) for k, v in flat.items()])
            self._client, self.run_id = client, run_id
        except Exception as exc:  # a tracking outage must not lose the run
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        if not self._mlflow_failed:
            detail = " ".join(str(exc).split())
            detail = detail if len(detail) <= 240 else detail[:240] + "..."
            print(f"[spg] MLflow is unavailable ({type(exc).__name__}: {detail}). Training continues without "
                  f"MLflow; metrics are kept locally in {self.path}.", file=sys.stderr, flush=True)
        self._mlflow_failed = True
        self._client = None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **metrics}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row, default=float) + "\n")
        if self._client is not None:
            numeric = {k: float(v) for k, v in metrics.items()
                       if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))}
            if not numeric:
                return
            try:
                from mlflow.entities import Metric

                ts = int(time.time() * 1000)
                self._client.log_batch(self.run_id, metrics=[Metric(k.replace("/", "_"), v, ts, step)
                                                             for k, v in numeric.items()])
            except Exception as exc:
                self._warn(exc)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> bool:
        """Upload a file or directory (config, plot, generations sample) to the MLflow run, under `artifact_path`.

        Returns True when uploaded; False when MLflow is off, unavailable, or the upload failed (reported once;
        the local file stays where it is). A missing local path raises FileNotFoundError (a caller bug)."""
        if not self.enabled:
            return False
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"log_artifact: {path} does not exist")
        if self._client is None:
            return False
        try:
            if path.is_dir():
                self._client.log_artifacts(self.run_id, str(path), artifact_path)
            else:
                self._client.log_artifact(self.run_id, str(path), artifact_path)
            return True
        except Exception as exc:
            self._warn(exc)
            return False

    def close(self, status: str = "FINISHED") -> None:
        if self._client is not None:
            try:
                self._client.set_terminated(self.run_id, status)
            except Exception as exc:
                self._warn(exc)
            self._client = None
