"""MLflow store helpers shared by the registry and the training metrics logger (public MLflow API only).

`get_or_create_experiment` resolves an experiment name to its id, creating it when missing (tolerating a
concurrent creation by another process); `using_tracking_uri` points MLflow's global (fluent) tracking URI at a
store for a block and restores the caller's setting afterwards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["FAST_FAIL_HTTP_ENV", "apply_fast_fail_http_defaults", "get_or_create_experiment", "using_tracking_uri"]


# MLflow HTTP client settings applied (setdefault) before the logger's first request. Integers only: MLflow parses
# MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR and MLFLOW_HTTP_REQUEST_TIMEOUT as int.
FAST_FAIL_HTTP_ENV: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def apply_fast_fail_http_defaults(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set `FAST_FAIL_HTTP_ENV` in `environ` (default os.environ) where unset; returns the variables it set."""
    environ = os.environ if environ is None else environ
    applied = {}
    for key, value in FAST_FAIL_HTTP_ENV.items():
        if not environ.get(key):
            environ[key] = value
            applied[key] = value
    return applied


def get_or_create_experiment(client: Any, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment `name` in `client`'s store (an ``MlflowClient``); created (with `artifact_location`,
    None: the server's default) when missing."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:  # created concurrently (another rank / process)
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


@contextlib.contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's global tracking URI is `uri` inside the block; afterwards the caller's setting (or its absence)
    is back. MLflow mirrors the setting into ``MLFLOW_TRACKING_URI`` for subprocesses, so that returns too."""
    import mlflow

    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # None: unset again (MLflow then resolves its default)
