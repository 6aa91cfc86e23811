"""One MLflow run per pipeline run: each step records its state on it, the exit handler closes it.

    run_id = start_pipeline_run("50524376", "spg-tiny-sudoku", {"config_hash": "..."})   # idempotent per job id
    with pipeline_step(run_id, "train"):        # tag step.train = running, then succeeded | failed (+ error)
        ...
    finish_pipeline_run("50524376", "spg-tiny-sudoku", "FAILED")   # status FAILED, tag failed_step = train

The run is found again by its tag ``kfp.pipeline_job_id``, so a retried task and the exit handler (which gets no
outputs of the failed body) reach the same run. The failed step is the one tagged ``failed``, else one still
``running`` (killed without a chance to record it). Step records are best effort: an unreachable tracking server
prints a warning and never fails a step; ``start_pipeline_run`` (the first step) fails loudly instead, so a
misconfigured MLflow stops the pipeline before it trains.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Mapping

from spg_lib.registry.store import apply_fast_fail_http_defaults, get_or_create_experiment

__all__ = ["JOB_TAG", "failed_step", "find_pipeline_run", "finish_pipeline_run", "log_run_metrics", "pipeline_step",
           "record_step",
           "start_pipeline_run"]

JOB_TAG = "kfp.pipeline_job_id"
STEP_PREFIX = "step."


def _client(tracking_uri: str | None):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def find_pipeline_run(job_id: str, experiment: str, tracking_uri: str | None = None) -> str | None:
    """The run id tagged with pipeline job ``job_id`` in ``experiment``, or None."""
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{JOB_TAG}` = '{_quote(job_id)}'",
                              max_results=1, order_by=["attributes.start_time ASC"])
    return runs[0].info.run_id if runs else None


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def start_pipeline_run(job_id: str, experiment: str, tags: Mapping[str, str] | None = None,
                       tracking_uri: str | None = None, run_name: str | None = None) -> str:
    """The pipeline run of ``job_id`` (created RUNNING on first call, reused afterwards); its run id."""
    existing = find_pipeline_run(job_id, experiment, tracking_uri)
    client = _client(tracking_uri)
    all_tags = {JOB_TAG: job_id, **{k: str(v) for k, v in (tags or {}).items()}}
    if existing is not None:
        for k, v in all_tags.items():
            client.set_tag(existing, k, v)
        return existing
    exp_id = get_or_create_experiment(client, experiment)
    run = client.create_run(exp_id, tags=all_tags, run_name=run_name or f"pipeline-{job_id}")
    return run.info.run_id


def record_step(run_id: str, step: str, state: str, error: str | None = None,
                tracking_uri: str | None = None) -> bool:
    """Tag ``step.<step>`` = state (and ``step.<step>.error``); False (with a warning) when MLflow is unreachable."""
    apply_fast_fail_http_defaults()  # best effort: a dead server costs seconds, not minutes of HTTP retries
    try:
        client = _client(tracking_uri)
        client.set_tag(run_id, f"{STEP_PREFIX}{step}", state)
        if error:
            client.set_tag(run_id, f"{STEP_PREFIX}{step}.error", error[:4000])
        return True
    except Exception as exc:
        print(f"warning: MLflow step record {step}={state} failed ({type(exc).__name__}: {exc})", file=sys.stderr)
        return False


@contextlib.contextmanager
def pipeline_step(run_id: str | None, step: str, tracking_uri: str | None = None) -> Iterator[None]:
    """Record ``step`` running, then succeeded or failed (with the error line); re-raises. No-op for run_id None."""
    if not run_id:
        yield
        return
    record_step(run_id, step, "running", tracking_uri=tracking_uri)
    try:
        yield
    except BaseException as exc:
        record_step(run_id, step, "failed", f"{type(exc).__name__}: {exc}", tracking_uri=tracking_uri)
        raise
    record_step(run_id, step, "succeeded", tracking_uri=tracking_uri)


def failed_step(tags: Mapping[str, str]) -> str | None:
    """The step tagged failed, else one still running, else None (``tags``: the run's tags)."""
    steps = {k[len(STEP_PREFIX):]: v for k, v in tags.items() if k.startswith(STEP_PREFIX) and k.count(".") == 1}
    for wanted in ("failed", "running"):
        hits = sorted(s for s, v in steps.items() if v == wanted)
        if hits:
            return hits[0]
    return None


def finish_pipeline_run(job_id: str, experiment: str, state: str, error: str | None = None,
                        tracking_uri: str | None = None) -> dict[str, str | None]:
    """Close the run of ``job_id``: status FINISHED when ``state`` is SUCCEEDED, else FAILED with tags
    ``failed_step`` and ``pipeline.error``. A body that failed before it created the run gets one created here."""
    client = _client(tracking_uri)
    run_id = find_pipeline_run(job_id, experiment, tracking_uri) or start_pipeline_run(job_id, experiment,
                                                                                        tracking_uri=tracking_uri)
    ok = state == "SUCCEEDED"
    step = None
    client.set_tag(run_id, "pipeline.state", state)
    if not ok:
        step = failed_step(client.get_run(run_id).data.tags) or "unknown"
        client.set_tag(run_id, "failed_step", step)
        if error:
            client.set_tag(run_id, "pipeline.error", error[:4000])
    client.set_terminated(run_id, status="FINISHED" if ok else "FAILED", end_time=int(time.time() * 1000))
    return {"run_id": run_id, "status": "FINISHED" if ok else "FAILED", "failed_step": step}


def log_run_metrics(run_id: str | None, metrics: Mapping[str, float], tracking_uri: str | None = None) -> bool:
    """Log ``metrics`` on the pipeline run (best effort, as `record_step`)."""
    if not run_id:
        return False
    apply_fast_fail_http_defaults()
    try:
        client = _client(tracking_uri)
        for key, value in metrics.items():
            client.log_metric(run_id, key, float(value))
        return True
    except Exception as exc:
        print(f"warning: MLflow metrics on the pipeline run failed ({type(exc).__name__}: {exc})", file=sys.stderr)
        return False
