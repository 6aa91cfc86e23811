"""The launcher's submit-watch-fail logic against a loopback stand-in of the Kubernetes API (tests/k8s_api_standin.py:
not a cluster, no controller; request bodies checked against the vendored CRD schemas), with the real kubernetes
python client: success and failure paths, node-0 log streaming across a dropped stream and a replaced pod, a retried
task finding its job again, the PyTorchJob path, and `launch_training` from the configuration tree."""

from __future__ import annotations

import dataclasses
import json

import pytest

from spg_lib.kubeflow.k8s_watch import SPEC_DIGEST, JobFailedError, run_trainjob, spec_digest
from spg_lib.kubeflow.pytorchjob import pytorchjob_spec
from spg_lib.kubeflow.trainjob import job_name, launch_training, node_command, trainjob_spec
from spg_lib.pipeline.config import KfpConfig, PipelineConfig, parse_pipeline_config
from tests.k8s_api_standin import PYTORCHJOB_CRD, TRAINJOB_CRD, K8sApiStandin, Script, validation_errors

NS = "ml-team"
FAST = dict(poll_s=0.05, log_drain_s=5.0)


def _spec(name: str = "spg-train-t1", nodes: int = 2, **kw) -> dict:
    return trainjob_spec(name=name, namespace=NS, image="ghcr.io/spg-pipeline/spg-cuda:0.1.0", nodes=nodes,
                         gpus_per_node=8, command=node_command("configs/accelerate/ddp.yaml", ["train", "--resume"]),
                         tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                         **kw)


def _node0(lines: list[str]) -> list[str]:
    return [line.removeprefix("[node-0] ") for line in lines if line.startswith("[node-0] ") and "---" not in line
            and "(log stream" not in line]


@pytest.fixture
def k8s():
    with K8sApiStandin() as standin:
        yield standin


def test_success_streams_node0_logs_and_returns_complete(k8s):
    k8s.scripts.append(Script(lines=[f"step {i}" for i in range(1, 6)]))
    out: list[str] = []
    assert run_trainjob(k8s.api_client(), _spec(), log=out.append, **FAST) == "Complete"
    assert _node0(out) == [f"step {i}" for i in range(1, 6)]  # node 0 only, in order, once each
    assert not any("node-1 says" in line for line in out)
    (body,) = k8s.creates()
    assert validation_errors(body, TRAINJOB_CRD) == []
    assert body["metadata"]["annotations"][SPEC_DIGEST] == spec_digest(_spec())
    assert out[0] == f"submitted TrainJob {NS}/spg-train-t1" and out[-1].endswith("Complete (JobSucceeded)")
    assert k8s.get("trainjobs", NS, "spg-train-t1") is not None  # kept by default


def test_failure_raises_one_line_with_the_reason_and_node0s_last_error(k8s):
    k8s.scripts.append(Script(lines=["step 1", "spg train: error: train.optim.lr must be > 0", "exiting"],
                              outcome="failed", reason="FailedJobs",
                              message="jobset failed: job spg-train-t1-node-0 failed\n(backoff limit)"))
    out: list[str] = []
    with pytest.raises(JobFailedError) as err:
        run_trainjob(k8s.api_client(), _spec(), log=out.append, **FAST)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"TrainJob {NS}/spg-train-t1 failed: FailedJobs: jobset failed: job spg-train-t1-node-0 "
                           "failed (backoff limit)")
    assert text.endswith("node 0's last log line: spg train: error: train.optim.lr must be > 0")
    assert _node0(out) == ["step 1", "spg train: error: train.optim.lr must be > 0", "exiting"]


def test_a_dropped_stream_and_a_replaced_pod_lose_and_repeat_nothing(k8s):
    lines = [f"line {i}" for i in range(8)]
    k8s.scripts.append(Script(lines=lines, drop_stream_after=2, restart_after=5))
    out: list[str] = []
    assert run_trainjob(k8s.api_client(), _spec(), log=out.append, **FAST) == "Complete"
    assert _node0(out) == lines
    log_requests = [path for method, path, _ in k8s.requests if method == "GET" and "/log?" in path]
    assert any("sinceSeconds=" in p for p in log_requests)  # the dropped stream was resumed, not restarted
    assert sum("--- log of pod" in line for line in out) == 2  # two pods of node 0, each announced once


def test_an_invalid_spec_is_refused_by_the_api_in_one_line(k8s):
    spec = _spec()
    spec["spec"]["trainer"]["numGpus"] = 8
    with pytest.raises(JobFailedError, match=r"^cannot create TrainJob ml-team/spg-train-t1: HTTP 422 .*numGpus") as e:
        run_trainjob(k8s.api_client(), spec, log=lambda _: None, **FAST)
    assert "\n" not in str(e.value)


def test_a_retried_task_follows_its_running_job_instead_of_submitting_again(k8s):
    spec = _spec()
    k8s.scripts.append(Script(lines=[f"step {i}" for i in range(1, 9)], line_s=0.15))
    api = k8s.api_client()
    with pytest.raises(TimeoutError):  # the first attempt's launcher goes away while the job runs
        run_trainjob(api, spec, log=lambda _: None, timeout_s=0.3, **FAST)
    out: list[str] = []
    assert run_trainjob(api, spec, log=out.append, **FAST) == "Complete"
    assert "exists with this spec and is running: following it" in " ".join(out)
    assert _node0(out) == [f"step {i}" for i in range(1, 9)]  # from the pod's start, once
    assert len(k8s.creates()) == 2 and len(k8s.scripts) == 0  # the second POST got 409: one job ran
    out.clear()
    assert run_trainjob(api, spec, log=out.append, **FAST) == "Complete"  # and once it has completed
    assert "exists with this spec and has completed" in " ".join(out)


def test_a_failed_job_of_the_same_spec_is_deleted_and_resubmitted(k8s):
    k8s.scripts += [Script(outcome="failed", reason="FailedJobs", message="node 1 was preempted"),
                    Script(lines=["resumed from step-40", "step 41"])]
    api = k8s.api_client()
    with pytest.raises(JobFailedError, match="node 1 was preempted"):
        run_trainjob(api, _spec(), log=lambda _: None, **FAST)
    out: list[str] = []
    assert run_trainjob(api, _spec(), log=out.append, **FAST) == "Complete"
    assert "deleting it and submitting again" in " ".join(out)
    assert _node0(out) == ["resumed from step-40", "step 41"]
    deletes = [path.split("?")[0] for method, path, _ in k8s.requests if method == "DELETE"]
    assert deletes == [f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainjobs/spg-train-t1"]
    assert k8s.deletions == ["Foreground"]  # the old job's pods are gone before the new one starts


def test_an_existing_job_with_another_spec_is_an_error(k8s):
    other = _spec(nodes=4)
    other["metadata"]["annotations"] = {SPEC_DIGEST: spec_digest(other)}
    k8s.put(other)
    with pytest.raises(JobFailedError, match=r"exists with a different spec \(running\): delete it \(kubectl delete "
                                             r"trainjobs.trainer.kubeflow.org -n ml-team spg-train-t1\)"):
        run_trainjob(k8s.api_client(), _spec(nodes=2), log=lambda _: None, **FAST)


def test_delete_flag_removes_the_job_after_it_ended(k8s):
    assert run_trainjob(k8s.api_client(), _spec(), log=lambda _: None, delete=True, **FAST) == "Complete"
    assert k8s.deletions == ["Foreground"]
    assert k8s.get("trainjobs", NS, "spg-train-t1") is None or k8s.get("trainjobs", NS, "spg-train-t1")[
        "metadata"].get("deletionTimestamp")


def test_timeout_gives_up_waiting_with_one_line(k8s):
    k8s.scripts.append(Script(outcome="never"))
    with pytest.raises(TimeoutError, match=r"did not finish within 0.5 s \(it keeps running"):
        run_trainjob(k8s.api_client(), _spec(), log=lambda _: None, timeout_s=0.5, **FAST)


def test_pytorchjob_path_succeeds_and_fails_on_its_conditions(k8s):
    spec = pytorchjob_spec(name="spg-train-v1", namespace=NS, image="img:1", nodes=3, gpus_per_node=4,
                           command=["python", "-m", "spg_lib.kubeflow.node_launch", "--accelerate-config", "c.yaml",
                                    "--", "train"], pvcs={"spg-checkpoints": "/mnt/checkpoints"})
    k8s.scripts += [Script(lines=["master line"]), Script(outcome="failed", reason="PyTorchJobFailed",
                                                           message="worker-1 exited with code 1")]
    out: list[str] = []
    assert run_trainjob(k8s.api_client(), spec, log=out.append, **FAST) == "Succeeded"
    assert _node0(out) == ["master line"]
    assert validation_errors(k8s.creates()[0], PYTORCHJOB_CRD) == []
    spec["metadata"]["name"] = "spg-train-v1b"
    with pytest.raises(JobFailedError, match="PyTorchJob ml-team/spg-train-v1b failed: PyTorchJobFailed: worker-1"):
        run_trainjob(k8s.api_client(), spec, log=lambda _: None, **FAST)


def test_a_spec_of_another_kind_is_refused():
    with pytest.raises(ValueError, match="apiVersion/kind batch/v1/Job is not one of"):
        run_trainjob(None, {"apiVersion": "batch/v1", "kind": "Job", "metadata": {}}, log=lambda _: None)


@pytest.mark.parametrize("controller", ["trainer", "training-operator"])
def test_launch_training_submits_the_tree_to_every_node(k8s, controller):
    kfp = KfpConfig(nodes=2, gpus=8, node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                    tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    cfg = dataclasses.replace(PipelineConfig(), kfp=kfp)
    out: list[str] = []
    result = launch_training(cfg, job_id="0b9c-run-7", out_dir="/mnt/checkpoints/0b9c-run-7/train", namespace=NS,
                             controller=controller, api=k8s.api_client(), log=out.append, poll_s=0.05)
    name = job_name("0b9c-run-7")
    assert result.pop("wall_time_s") > 0
    assert result == {"name": name, "namespace": NS, "controller": controller,
                      "state": "Complete" if controller == "trainer" else "Succeeded",
                      "out_dir": "/mnt/checkpoints/0b9c-run-7/train",
                      "final_model": "/mnt/checkpoints/0b9c-run-7/train/final",
                      "metrics_log": "/mnt/checkpoints/0b9c-run-7/train/metrics.jsonl"}
    (body,) = k8s.creates()
    assert validation_errors(body, TRAINJOB_CRD if controller == "trainer" else PYTORCHJOB_CRD) == []
    if controller == "trainer":
        container = body["spec"]["trainer"]
        assert container["numNodes"] == 2 and "runtimePatches" in body["spec"]
        assert container["resourcesPerNode"]["limits"] == {"nvidia.com/gpu": 8}
    else:
        pod = body["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]
        container = pod["containers"][0]
        assert {"name": "spg-checkpoints", "persistentVolumeClaim": {"claimName": "spg-checkpoints"}} in \
            pod["volumes"]
    assert container["command"] == ["python", "-m", "spg_lib.kubeflow.node_launch", "--accelerate-config",
                                    "/opt/spg/configs/accelerate/ddp.yaml", "--workdir", "/opt/spg",
                                    "--config-env", "SPG_CONFIG_JSON", "--", "train", "--resume", "--no-progress"]
    env = {e["name"]: e for e in container["env"]}
    tree = parse_pipeline_config(env["SPG_CONFIG_JSON"]["value"])
    assert tree.train.out_dir == "/mnt/checkpoints/0b9c-run-7/train" and tree.kfp.nodes == 2
    assert json.loads(env["SPG_CONFIG_JSON"]["value"])["train"]["algo"] == \
        json.loads(json.dumps(dataclasses.asdict(cfg.train.algo)))
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "spg-s3"
    assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["secretKeyRef"]["name"] == "spg-mlflow"


def test_launch_training_refuses_paths_the_nodes_cannot_see():
    cfg = dataclasses.replace(PipelineConfig(), kfp=KfpConfig(nodes=2))
    with pytest.raises(ValueError, match="out_dir 's3://b/run/train': every node writes checkpoints there"):
        launch_training(cfg, job_id="r", out_dir="s3://b/run/train", namespace=NS, api=object())
    local = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, model="/minio/mlpipeline/v2/base/model"))
    with pytest.raises(ValueError, match=r"train\.model '/minio/mlpipeline/v2/base/model' is an artifact path"):
        launch_training(local, job_id="r", out_dir="/mnt/checkpoints/r/train", namespace=NS, api=object())
