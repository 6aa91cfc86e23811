"""The whole SPG pipeline under ``kfp.local`` (SubprocessRunner(use_venv=False): every component is a subprocess
of this environment) on the tiny CPU configuration with shrunk steps, against the loopback MLflow server and
SeaweedFS S3: the happy path end to end, a failing step caught by the exit handler, and a training task killed
mid-run whose retry resumes to the same final weights as an uninterrupted run."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from pipelines.compile import ROOT
from pipelines.run_local import run_local
from spg_lib.registry.pipeline_run import find_pipeline_run

pytestmark = pytest.mark.slow

PARAMS = str(ROOT / "params.yaml")
# the default run's configuration, shrunk to seconds: 64 puzzles, 20 SFT steps, 4 RL steps, 16 test puzzles
SHRUNK = ["data.n_train=64", "sft.sft.steps=20", "sft.sft.batch_size=8", "sft.sft.warmup_steps=2",
          "sft.sft.log_every=10", "train.max_steps=4", "train.checkpoint_every=2", "train.prompts_per_step=2",
          "train.num_generations=4", "train.rollout.batch_size=8", "train.algo.num_iterations=2",
          "evaluate.limit=16", "evaluate.batch_size=16", "kfp.retry_backoff=0s"]


@pytest.fixture
def services(mlflow_server, seaweedfs, monkeypatch, tmp_path):
    for key, value in seaweedfs.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("SPG_SCRATCH", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    tag = uuid.uuid4().hex[:8]
    return {"mlflow": mlflow_server.uri, "bucket": seaweedfs.make_bucket(f"kfp-{tag}"),
            "experiment": f"kfp-{tag}", "model": f"spg-kfp-{tag}"}


def _outputs(result: dict, task: str) -> dict:
    """The executor output of a kfp.local task (parameter values and artifact metadata)."""
    return json.loads((Path(result["run_dir"]) / task / "executor_output.json").read_text())


def _artifact_meta(outputs: dict, name: str) -> dict:
    return outputs["artifacts"][name]["artifacts"][0]["metadata"]


def test_pipeline_end_to_end(services, tmp_path):
    s = services
    result = run_local(PARAMS, SHRUNK, tmp_path / "work", parameters={
        "checkpoint_root": f"s3://{s['bucket']}/runs", "min_gain": -100.0, "experiment": s["experiment"],
        "registered_model": s["model"]})
    arts = result["artifacts"]
    assert result["status"] == "SUCCEEDED", arts
    for task in ("resolve-config", "prepare-dataset", "base-checkpoint", "train-spg", "evaluate-model",
                 "evaluate-model-2", "report", "register-model", "finalize-run"):
        assert task in arts, (task, sorted(arts))

    data = _artifact_meta(_outputs(result, "prepare-dataset"), "dataset")
    assert data["rows_train"] == 64 and data["rows_test"] == 256 and len(data["data_hash"]) == 64

    train_out = _outputs(result, "train-spg")
    model_meta = _artifact_meta(train_out, "model")
    assert model_meta["checkpoint_uri"].startswith(f"s3://{s['bucket']}/runs/") and model_meta["method"] == "spg"
    train_metrics = _artifact_meta(train_out, "metrics")
    assert train_metrics["steps"] == 4.0 and 0.0 <= train_metrics["reward_last"] <= 1.0

    acc = {}
    for task in ("evaluate-model", "evaluate-model-2"):
        out = _outputs(result, task)
        metrics = json.loads((Path(arts[task]["evaluation"]) / "metrics.json").read_text())
        ui = _artifact_meta(out, "metrics")
        assert ui["accuracy"] == pytest.approx(metrics["accuracy"]) and ui["n"] == 16.0
        assert ui["wall_time_s"] > 0 and ui["mean_completion_tokens"] == pytest.approx(
            metrics["mean_completion_tokens"])
        assert out["parameterValues"]["Output"] == pytest.approx(metrics["accuracy"])
        acc[_artifact_meta(out, "evaluation")["label"]] = metrics
    assert acc["trained"]["model"].startswith(str(tmp_path / "scratch"))  # fetched from the S3 checkpoint URI
    base_acc, trained_acc = acc["base"]["accuracy"], acc["trained"]["accuracy"]

    table = Path(arts["report"]["table"]).read_text()
    page = Path(arts["report"]["page"]).read_text()
    for value in (base_acc, trained_acc):
        assert f"{value:.1f}" in table and f"{value:.1f}" in page
    assert f"| mean completion tokens | {acc['base']['mean_completion_tokens']:.1f} |" in table
    assert acc["trained"]["data_hash"] in table and f"{trained_acc - base_acc:+.1f}" in table
    assert page.count("data:image/png;base64,") >= 2

    client = MlflowClient(s["mlflow"])
    reg = _outputs(result, "register-model")
    version = client.get_model_version(s["model"], reg["parameterValues"]["Output"])
    assert "candidate" in version.aliases and "champion" in version.aliases  # the first version is champion
    tags = version.tags
    assert re.fullmatch(r"[0-9a-f]{40}", tags["lineage.git_commit"])
    assert tags["lineage.data_hash"] == data["data_hash"] and len(tags["lineage.config_hash"]) == 64
    job_id = tags["lineage.pipeline_job_id"]
    run_id = find_pipeline_run(job_id, s["experiment"], s["mlflow"])
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["step.train"] == "succeeded"
    assert run.data.metrics["trained_accuracy"] == pytest.approx(trained_acc)
    assert run.data.metrics["base_accuracy"] == pytest.approx(base_acc)


def test_failing_step_is_recorded_by_the_exit_handler(services, tmp_path):
    s = services
    result = run_local(PARAMS, SHRUNK, tmp_path / "work", parameters={
        "checkpoint_root": str(tmp_path / "ckpt"), "experiment": s["experiment"], "registered_model": s["model"],
        "base_model_uri": f"s3://{s['bucket']}/no-such-checkpoint"})
    assert result["status"] == "FAILED"
    assert "train-spg" not in result["artifacts"]
    fin = _outputs(result, "finalize-run")
    assert fin["parameterValues"]["Output"] == "FAILED"
    client = MlflowClient(s["mlflow"])
    exp = client.get_experiment_by_name(s["experiment"])
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["failed_step"] == "base-checkpoint"
    assert "no-such-checkpoint" in run.data.tags["step.base-checkpoint.error"]


def _kill_training_at(pattern: str, killed: list, stop: threading.Event) -> None:
    """SIGKILL the training task's process once a checkpoint matching ``pattern`` exists (a preemption)."""
    while not stop.is_set():
        if list(Path("/").glob(pattern.lstrip("/"))):
            for proc in psutil.Process().children(recursive=True):
                try:
                    if "train_spg" in " ".join(proc.cmdline()):
                        proc.send_signal(signal.SIGKILL)
                        killed.append(proc.pid)
                except psutil.NoSuchProcess:
                    pass
            if killed:
                return
        time.sleep(0.05)


def test_killed_training_retries_and_resumes_exactly(services, tmp_path):
    s = services
    ckpt = tmp_path / "ckpt"
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_training_at, args=(f"{ckpt}/*/train/checkpoints/step-2/meta.json",
                                                               killed, stop), daemon=True)
    watcher.start()
    try:
        result = run_local(PARAMS, SHRUNK, tmp_path / "work", parameters={
            "checkpoint_root": str(ckpt), "experiment": s["experiment"], "registered_model": s["model"],
            "min_gain": 1000.0})  # the gate stays closed: this test is about training
    finally:
        stop.set()
        watcher.join()
    assert killed, "the training task was never killed"
    arts = result["artifacts"]
    assert "train-spg" in arts and "register-model" not in arts
    model_meta = _artifact_meta(_outputs(result, "train-spg"), "model")
    assert model_meta["resumed"] is True
    (run_dir,) = list(ckpt.iterdir())
    log = [json.loads(line) for line in (run_dir / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]

    # the uninterrupted run: the same stage function on the same inputs, in this process
    from spg_lib.pipeline.stages import model_dir_of, resolve_config, run_training

    cfg = resolve_config(PARAMS, SHRUNK, {"checkpoint_root": str(ckpt), "experiment": s["experiment"]})
    base_meta = _artifact_meta(_outputs(result, "base-checkpoint"), "model")
    base_dir = model_dir_of(base_meta, arts["base-checkpoint"]["model"], tmp_path)
    torch.manual_seed(cfg.train.seed)  # as the component (an entry point) does
    ref = run_training(cfg, arts["prepare-dataset"]["dataset"], base_dir, tmp_path / "reference")
    assert ref["resumed"] is False
    resumed = load_file(str(run_dir / "train" / "final" / "model.safetensors"))
    uninterrupted = load_file(str(Path(ref["final_model"]) / "model.safetensors"))
    assert resumed.keys() == uninterrupted.keys()
    for name, tensor in uninterrupted.items():
        assert (resumed[name] == tensor).all(), name
