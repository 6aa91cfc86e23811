"""Training-time MLflow tracking (`MetricsLogger`) against a real server: metrics, params and artifacts arrive;
a server that dies mid-run costs one short stall and one stderr line, and every metric stays in metrics.jsonl."""

from __future__ import annotations

import json
import os
import time
import uuid

from mlflow.tracking import MlflowClient

from spg_lib.registry.store import FAST_FAIL_HTTP_ENV, apply_fast_fail_http_defaults
from spg_lib.training.tracking import MetricsLogger
from tests.services import unused_endpoint_url

DOWN_MESSAGE = "MLflow is unavailable"


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_metrics_params_artifacts_reach_server(mlflow_server, seaweedfs, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("train:\n  lr: 1.0e-5\n")
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "generations.jsonl").write_text('{"completion": "42"}\n')
    logger = MetricsLogger(tmp_path / "metrics.jsonl", mlflow_server.uri, experiment=f"track-{uuid.uuid4().hex[:8]}",
                           run_name="tiny", params={"algo": {"beta": 1.5}, "lr": 1e-5, "name": "spg"})
    assert logger.mlflow_active and logger.run_id
    for step in (1, 2, 3):
        logger.log(step, {"train/loss": 1.0 / step, "reward/mean": 0.1 * step, "note": "text is local only"})
    assert logger.log_artifact(config) is True
    assert logger.log_artifact(samples, artifact_path="samples") is True
    logger.close()

    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(logger.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"algo.beta": "1.5", "lr": "1e-05", "name": "spg"}
    history = client.get_metric_history(logger.run_id, "train_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert "note" not in run.data.metrics
    assert {a.path for a in client.list_artifacts(logger.run_id)} == {"config.yaml", "samples"}
    assert [a.path for a in client.list_artifacts(logger.run_id, "samples")] == ["samples/generations.jsonl"]
    keys = [o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=mlflow_server.bucket).get("Contents", [])]
    assert any(k.endswith(f"{logger.run_id}/artifacts/config.yaml") for k in keys), keys
    assert [r["step"] for r in _rows(tmp_path / "metrics.jsonl")] == [1, 2, 3]


def test_server_stopped_mid_run(mlflow_server_private, tmp_path, capsys):
    server = mlflow_server_private
    path = tmp_path / "metrics.jsonl"
    logger = MetricsLogger(path, server.uri, experiment="outage", params={"lr": 0.1})
    logger.log(1, {"train/loss": 1.0})
    assert [m.step for m in MlflowClient(server.uri).get_metric_history(logger.run_id, "train_loss")] == [1]

    server.stop()
    assert not server.running()
    start = time.monotonic()
    for step in range(2, 7):
        logger.log(step, {"train/loss": 1.0 / step})
    artifact = tmp_path / "plot.png"
    artifact.write_bytes(b"\x89PNG")
    assert logger.log_artifact(artifact) is False
    logger.close()
    elapsed = time.monotonic() - start
    assert elapsed < 30, f"logging stalled {elapsed:.1f} s with the server down"  # default MLflow retries: minutes

    err = capsys.readouterr().err
    assert err.count(DOWN_MESSAGE) == 1, err
    assert str(path) in err and "kept locally" in err
    assert [r["step"] for r in _rows(path)] == [1, 2, 3, 4, 5, 6]
    assert not logger.mlflow_active


def test_unreachable_at_start_fails_fast_and_sets_only_unset_http_env(tmp_path, capsys, monkeypatch):
    for key in FAST_FAIL_HTTP_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")  # a user's own value is kept
    start = time.monotonic()
    logger = MetricsLogger(tmp_path / "metrics.jsonl", unused_endpoint_url(), experiment="nowhere")
    assert time.monotonic() - start < 20
    assert not logger.mlflow_active and logger.run_id is None
    logger.log(1, {"loss": 1.0})
    logger.close()
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == FAST_FAIL_HTTP_ENV["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    assert capsys.readouterr().err.count(DOWN_MESSAGE) == 1
    assert _rows(tmp_path / "metrics.jsonl") == [{"step": 1, "loss": 1.0}]


def test_apply_fast_fail_defaults_does_not_clobber():
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "9"}
    applied = apply_fast_fail_http_defaults(env)
    assert env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "9" and "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in applied
    assert env["MLFLOW_HTTP_REQUEST_TIMEOUT"] == FAST_FAIL_HTTP_ENV["MLFLOW_HTTP_REQUEST_TIMEOUT"]


def test_disabled_logger_is_a_no_op(tmp_path):
    logger = MetricsLogger(tmp_path / "m.jsonl", "http://127.0.0.1:9", enabled=False)
    logger.log(1, {"loss": 1.0})
    assert logger.log_artifact(tmp_path / "absent") is False
    logger.close()
    assert not (tmp_path / "m.jsonl").exists()
