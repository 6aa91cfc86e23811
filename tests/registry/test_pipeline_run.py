"""The pipeline's MLflow record on a real loopback MLflow server: one run per job id, step states, FAILED with the
failed step (a step that raised, or one killed while running), FINISHED on success."""

import uuid

import pytest
from mlflow.tracking import MlflowClient

from spg_lib.registry.pipeline_run import (
    failed_step,
    find_pipeline_run,
    finish_pipeline_run,
    log_run_metrics,
    pipeline_step,
    record_step,
    start_pipeline_run,
)


def test_failed_step_rule():
    assert failed_step({"step.a": "succeeded", "step.b": "failed", "step.c": "running"}) == "b"
    assert failed_step({"step.a": "succeeded", "step.c": "running", "step.c.error": "x"}) == "c"
    assert failed_step({"step.a": "succeeded"}) is None


def test_run_lifecycle(mlflow_server):
    uri, exp, job = mlflow_server.uri, f"pipe-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    assert find_pipeline_run(job, exp, uri) is None
    run_id = start_pipeline_run(job, exp, {"config_hash": "abc"}, tracking_uri=uri)
    assert start_pipeline_run(job, exp, tracking_uri=uri) == run_id  # a retried first step reuses it
    with pipeline_step(run_id, "prepare", tracking_uri=uri):
        pass
    with pytest.raises(RuntimeError, match="boom"), pipeline_step(run_id, "train", tracking_uri=uri):
        raise RuntimeError("boom")
    log_run_metrics(run_id, {"base_accuracy": 12.5}, tracking_uri=uri)
    record = finish_pipeline_run(job, exp, "FAILED", "Task exit-handler-1 failed.", tracking_uri=uri)
    assert record == {"run_id": run_id, "status": "FAILED", "failed_step": "train"}
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == "FAILED"
    tags = run.data.tags
    assert tags["failed_step"] == "train" and tags["step.prepare"] == "succeeded"
    assert tags["step.train.error"] == "RuntimeError: boom" and tags["config_hash"] == "abc"
    assert run.data.metrics["base_accuracy"] == 12.5


def test_success_and_killed_step(mlflow_server):
    uri, exp = mlflow_server.uri, f"pipe-{uuid.uuid4().hex[:8]}"
    ok_job, killed_job = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    start_pipeline_run(ok_job, exp, tracking_uri=uri)
    assert finish_pipeline_run(ok_job, exp, "SUCCEEDED", tracking_uri=uri)["status"] == "FINISHED"
    killed = start_pipeline_run(killed_job, exp, tracking_uri=uri)
    record_step(killed, "train", "running", tracking_uri=uri)  # SIGKILL: no chance to record the failure
    assert finish_pipeline_run(killed_job, exp, "FAILED", tracking_uri=uri)["failed_step"] == "train"


def test_body_failed_before_the_run_existed(mlflow_server):
    uri, exp, job = mlflow_server.uri, f"pipe-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    record = finish_pipeline_run(job, exp, "FAILED", tracking_uri=uri)
    assert record["failed_step"] == "unknown"
    assert MlflowClient(uri).get_run(record["run_id"]).info.status == "FAILED"


def test_unreachable_server_does_not_fail_a_step(capsys):
    from tests.services import unused_endpoint_url

    assert record_step("r1", "train", "running", tracking_uri=unused_endpoint_url()) is False
    assert "warning: MLflow step record" in capsys.readouterr().err
