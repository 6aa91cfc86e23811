"""The TrainJob / PyTorchJob spec builders: pure functions whose output validates against the vendored CRD schemas
(Kubeflow Trainer v2.3.0, Training Operator v1.9.4; tests/kubeflow/crds/), made strict so an unknown field fails."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from spg_lib.kubeflow.pytorchjob import pytorchjob_spec
from spg_lib.kubeflow.trainjob import CHECKPOINT_MOUNT, CHECKPOINT_PVC, job_name, job_spec, node_command, trainjob_spec
from spg_lib.pipeline.config import KfpConfig
from tests.k8s_api_standin import PYTORCHJOB_CRD, TRAINJOB_CRD, crd_schema, strict_schema, validation_errors

KFP = KfpConfig()
TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
               {"key": "dedicated", "operator": "Equal", "value": "training", "effect": "NoExecute",
                "tolerationSeconds": 600}]
COMMAND = node_command("/opt/spg/configs/accelerate/ddp.yaml", ["train", "--resume", "--no-progress"],
                       workdir="/opt/spg", config_env="SPG_CONFIG_JSON")


def _kwargs(nodes: int, gpus: int = 8) -> dict:
    return dict(name="spg-train-run-1-0a1b2c3d", namespace="ml-team", image=KFP.image, nodes=nodes,
                gpus_per_node=gpus, accelerator_type=KFP.accelerator_type, command=COMMAND,
                env={"SPG_CONFIG_JSON": "{}", "OMP_NUM_THREADS": "1"},
                secret_env={"spg-s3": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"], "spg-mlflow":
                            ["MLFLOW_TRACKING_URI"]},
                node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, tolerations=TOLERATIONS,
                pvcs={"spg-model-cache": "/mnt/models"}, cpu_request="8", memory_request="64Gi",
                labels={"app.kubernetes.io/part-of": "spg-pipeline"})


def _node_pod_patch(spec: dict) -> dict:
    (patch,) = spec["spec"]["runtimePatches"]
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == "node"
    return job["template"]["spec"]["template"]


@pytest.mark.parametrize("nodes", [1, 2, 4])
def test_trainjob_validates_against_the_crd(nodes):
    spec = trainjob_spec(**_kwargs(nodes))
    assert validation_errors(spec, TRAINJOB_CRD) == []
    trainer = spec["spec"]["trainer"]
    assert spec["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and spec["kind"] == "TrainJob"
    assert spec["spec"]["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "TrainingRuntime",
                                          "name": "spg-torchrun"}
    assert trainer["numNodes"] == nodes and trainer["numProcPerNode"] == 8
    assert trainer["resourcesPerNode"] == {"limits": {"nvidia.com/gpu": 8},
                                           "requests": {"cpu": "8", "memory": "64Gi"}}
    assert trainer["image"] == "ghcr.io/spg-pipeline/spg-cuda:0.1.0"
    assert trainer["command"][:3] == ["python", "-m", "spg_lib.kubeflow.node_launch"]
    assert trainer["command"][trainer["command"].index("--") + 1:] == ["train", "--resume", "--no-progress"]
    secret_refs = [e["valueFrom"]["secretKeyRef"] for e in trainer["env"] if "valueFrom" in e]
    assert {(r["name"], r["key"]) for r in secret_refs} == {("spg-s3", "AWS_ACCESS_KEY_ID"),
                                                            ("spg-s3", "AWS_SECRET_ACCESS_KEY"),
                                                            ("spg-mlflow", "MLFLOW_TRACKING_URI")}
    pod = _node_pod_patch(spec)  # placement goes to the nodes, through the v2.3.0 runtimePatches
    assert pod["metadata"]["labels"] == {"app.kubernetes.io/part-of": "spg-pipeline"}
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["spec"]["tolerations"] == TOLERATIONS
    assert pod["spec"]["volumes"] == [{"name": "spg-model-cache",
                                       "persistentVolumeClaim": {"claimName": "spg-model-cache"}}]
    assert pod["spec"]["containers"] == [{"name": "node", "volumeMounts": [{"name": "spg-model-cache",
                                                                             "mountPath": "/mnt/models"}]}]


@pytest.mark.parametrize("nodes", [1, 2, 4])
def test_pytorchjob_validates_against_the_crd(nodes):
    spec = pytorchjob_spec(**_kwargs(nodes), shm_size="16Gi")
    assert validation_errors(spec, PYTORCHJOB_CRD) == []
    replicas = spec["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1
    assert ("Worker" not in replicas) if nodes == 1 else replicas["Worker"]["replicas"] == nodes - 1
    assert spec["spec"]["nprocPerNode"] == "8"
    for replica in replicas.values():
        assert replica["restartPolicy"] == "Never"
        pod = replica["template"]["spec"]
        (container,) = pod["containers"]
        assert container["name"] == "pytorch" and container["resources"]["limits"] == {"nvidia.com/gpu": 8}
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
        assert pod["nodeSelector"] and pod["tolerations"] == TOLERATIONS


def test_cpu_nodes_run_one_process_without_an_accelerator_limit():
    spec = trainjob_spec(**{**_kwargs(2, gpus=0), "cpu_request": None, "memory_request": None})
    assert validation_errors(spec, TRAINJOB_CRD) == []
    assert spec["spec"]["trainer"]["numProcPerNode"] == 1 and "resourcesPerNode" not in spec["spec"]["trainer"]
    job = pytorchjob_spec(**_kwargs(2, gpus=0))
    assert job["spec"]["nprocPerNode"] == "1"
    assert "limits" not in job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0][
        "resources"]


def test_unknown_fields_fail_the_strict_schema_and_would_pass_the_published_one():
    spec = trainjob_spec(**_kwargs(2))
    bad_trainer = copy.deepcopy(spec)
    bad_trainer["spec"]["trainer"]["numGpus"] = 8          # not a TrainJob field
    bad_patch = copy.deepcopy(spec)
    _node_pod_patch(bad_patch)["spec"]["hostNetwork"] = True  # not patchable through runtimePatches in v2.3.0
    bad_toleration = copy.deepcopy(spec)
    _node_pod_patch(bad_toleration)["spec"]["tolerations"][0]["operatr"] = "Exists"
    loose = jsonschema.Draft7Validator(crd_schema(TRAINJOB_CRD))
    for bad, field in [(bad_trainer, "numGpus"), (bad_patch, "hostNetwork"), (bad_toleration, "operatr")]:
        errors = validation_errors(bad, TRAINJOB_CRD)
        assert errors and field in " ".join(errors)
        assert loose.is_valid(bad)  # the published schema alone does not refuse it: strictness is what tests it
    bad_job = pytorchjob_spec(**_kwargs(2))
    bad_job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["gpus"] = 8
    assert "gpus" in " ".join(validation_errors(bad_job, PYTORCHJOB_CRD))


def test_wrong_types_and_names_fail_validation():
    spec = trainjob_spec(**_kwargs(2))
    spec["spec"]["trainer"]["numNodes"] = "2"
    assert any("numNodes" in e for e in validation_errors(spec, TRAINJOB_CRD))
    spec = trainjob_spec(**_kwargs(2))
    spec["metadata"]["name"] = "Spg_Train"
    assert any(e.startswith("metadata.name") for e in validation_errors(spec, TRAINJOB_CRD))


def test_strict_schema_only_closes_objects_with_properties():
    schema = strict_schema({"type": "object", "properties": {
        "a": {"type": "object", "properties": {"b": {"type": "string"}}},
        "m": {"type": "object", "additionalProperties": {"type": "string"}},
        "p": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}},
        "free": {"type": "object"}}})
    assert schema["additionalProperties"] is False and schema["properties"]["a"]["additionalProperties"] is False
    assert schema["properties"]["m"]["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in schema["properties"]["p"]
    assert "additionalProperties" not in schema["properties"]["free"]


@pytest.mark.parametrize(("change", "field"), [
    ({"nodes": 0}, "nodes"), ({"gpus_per_node": -1}, "gpus_per_node"), ({"name": "Bad_Name"}, "name"),
    ({"name": "a" * 64}, "name"), ({"namespace": "Team"}, "namespace"), ({"command": []}, "command"),
    ({"image": ""}, "image"), ({"labels": {"app": "x" * 64}}, "labels"), ({"env": {"1BAD": "x"}}, "env"),
    ({"pvcs": {"cache": "relative/path"}}, "pvcs"), ({"secret_env": {"Bad Secret": ["K"]}}, "secret_env"),
    ({"accelerator_type": "gpu"}, "accelerator_type"),
])
def test_bad_arguments_name_the_argument(change, field):
    for build in (trainjob_spec, pytorchjob_spec):
        with pytest.raises(ValueError, match=rf"^{field}\b"):
            build(**{**_kwargs(2), **change})


def test_job_spec_selects_the_controller():
    kwargs = {**_kwargs(2), "runtime": "spg-torchrun", "shm_size": "8Gi"}
    assert job_spec("trainer", **kwargs)["kind"] == "TrainJob"
    job = job_spec("training-operator", **kwargs)
    assert job["kind"] == "PyTorchJob"
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}} in \
        job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["volumes"]
    with pytest.raises(ValueError, match="controller 'volcano'"):
        job_spec("volcano", **kwargs)


def test_job_names_are_deterministic_short_dns_labels():
    name = job_name("b5c1e0c2-9f3a-4a53-8d1e-6a3c2f7b9e10")
    assert name == job_name("b5c1e0c2-9f3a-4a53-8d1e-6a3c2f7b9e10") and len(name) <= 40
    assert name.startswith("spg-train-b5c1e0c2")
    assert job_name("RUN_1") != job_name("run-1")  # the hash keeps ids apart that read the same
    long = job_name("X" * 200)
    assert len(long) <= 40 and long[0].isalpha() and not long.endswith("-")
    with pytest.raises(ValueError, match="job_id"):
        job_name("")


def test_checkpoint_volume_constants_match_the_kfp_defaults():
    assert (CHECKPOINT_PVC, CHECKPOINT_MOUNT) == ("spg-checkpoints", "/mnt/checkpoints")
    assert KFP.image.startswith("ghcr.io/spg-pipeline/spg-cuda:")
