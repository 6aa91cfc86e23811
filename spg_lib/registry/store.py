"""MLflow store helpers shared by the registry and the training metrics logger (public MLflow API only).

`get_or_create_experiment` resolves an experiment name to its id, creating it when missing (tolerating a
concurrent creation by another process); `using_tracking_uri` points MLflow's global (fluent) tracking URI at a
store for a block and restores the caller's setting afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["get_or_create_experiment", "using_tracking_uri"]


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
