"""Multi-node training through Kubeflow Trainer: the TrainJob spec (a pure function) and the launcher entry point.

    spec = trainjob_spec(name="spg-train-ab12", namespace="team", image=KfpConfig().image, nodes=2, gpus_per_node=8,
                         command=node_command("configs/accelerate/ddp.yaml", ["train", "--resume"]))
    state = run_trainjob(kube_api(), spec)                  # spg_lib.kubeflow.k8s_watch: submit, stream, wait
    launch_training(cfg, job_id="run-123", out_dir="/mnt/checkpoints/run-123/train")   # all of it from the tree

Written against Kubeflow Trainer v2.3.0 (``trainer.kubeflow.org/v1alpha1``; CRD in tests/kubeflow/crds/). The job
references the namespace's ``TrainingRuntime`` ``spg-torchrun`` (torchrun-based, the project image, /dev/shm, NCCL
settings and the checkpoint PVC ``spg-checkpoints`` at /mnt/checkpoints: see k8s/). The TrainJob carries what
varies per run: ``trainer`` (image, command, env, ``numNodes``, ``numProcPerNode``, ``resourcesPerNode`` with the
accelerator limit) and, as v2.3.0's ``runtimePatches`` (the field that replaced ``podTemplateOverrides``), the
node selector, tolerations, extra PVC volumes and pod labels of the runtime's ``node`` replicated job / ``node``
container. Clusters still on Training Operator v1 get a PyTorchJob instead (spg_lib/kubeflow/pytorchjob.py,
``controller="training-operator"``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from spg_lib.pipeline.config import PipelineConfig

__all__ = [
    "CHECKPOINT_MOUNT",
    "CHECKPOINT_PVC",
    "CONFIG_ENV",
    "NODE_CONTAINER",
    "NODE_JOB",
    "RUNTIME",
    "TRAINER_API_VERSION",
    "Controller",
    "env_list",
    "job_name",
    "job_spec",
    "launch_training",
    "node_command",
    "node_resources",
    "pvc_volumes",
    "trainjob_spec",
]

TRAINER_API_VERSION = "trainer.kubeflow.org/v1alpha1"
RUNTIME = "spg-torchrun"                 # the TrainingRuntime of k8s/ (torchrun-based, the project image)
NODE_JOB = "node"                        # replicated job of Trainer's torch runtimes (one pod per node)
NODE_CONTAINER = "node"                  # its training container
PATCH_MANAGER = "spg-pipeline/launcher"  # owner of our runtimePatches entry
CHECKPOINT_PVC = "spg-checkpoints"       # shared checkpoint volume: a retried job resumes from it
CHECKPOINT_MOUNT = "/mnt/checkpoints"
CONFIG_ENV = "SPG_CONFIG_JSON"           # the resolved configuration tree, handed to every node
_KFP_LOCAL_ARTIFACTS = ("/gcs/", "/minio/", "/s3/")  # where a KFP v2 task sees its input artifacts locally
Controller = Literal["trainer", "training-operator"]

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# ---------------------------------------------------------------------------------------------- spec pieces
def check_name(name: str) -> str:
    """A job name the API accepts: an RFC 1035 label of at most 63 characters (the TrainJob CRD's CEL rule)."""
    if not isinstance(name, str) or len(name) > 63 or not _DNS1035.match(name):
        raise ValueError(f"name {name!r}: must be an RFC 1035 label (lowercase letters, digits and '-', starting "
                         f"with a letter, at most 63 characters)")
    return name


def check_labels(labels: Mapping[str, str] | None, what: str = "labels") -> dict[str, str]:
    """Kubernetes label keys/values (prefix/name of at most 63 characters, values at most 63)."""
    out = {}
    for key, value in (labels or {}).items():
        name = str(key).rsplit("/", 1)[-1]
        if not _LABEL_KEY.match(str(key)) or len(name) > 63:
            raise ValueError(f"{what}: {key!r} is not a Kubernetes label key")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            raise ValueError(f"{what}[{key!r}]: {value!r} is not a Kubernetes label value (at most 63 characters "
                             f"of letters, digits, '-', '_', '.')")
        out[str(key)] = value
    return out


def job_name(job_id: str, prefix: str = "spg-train") -> str:
    """A deterministic job name for pipeline job ``job_id``: a KFP retry of the task finds its job again.

    ``<prefix>-<readable part of the id>-<8 hex of sha256(id)>``, at most 40 characters, so that JobSet's pod host
    names (``<name>-node-<i>-0``) stay within 63.
    """
    if not job_id:
        raise ValueError("job_id must not be empty")
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:8]
    readable = re.sub(r"[^a-z0-9]+", "-", job_id.lower()).strip("-")
    head = f"{prefix}-{readable}"[: 40 - len(digest) - 1].rstrip("-")
    return check_name(f"{head}-{digest}")


def env_list(env: Mapping[str, str] | None = None,
             secret_env: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
    """Container ``env``: plain ``name=value`` pairs, then every key of each Secret as an (optional) variable."""
    out: list[dict[str, Any]] = []
    for name, value in (env or {}).items():
        if not _ENV_NAME.match(name):
            raise ValueError(f"env: {name!r} is not an environment variable name")
        out.append({"name": name, "value": str(value)})
    for secret, keys in (secret_env or {}).items():
        if len(secret) > 253 or not _DNS1123_SUBDOMAIN.match(secret):
            raise ValueError(f"secret_env: {secret!r} is not a Secret name")
        for key in keys:
            if not _ENV_NAME.match(key):
                raise ValueError(f"secret_env[{secret!r}]: {key!r} is not an environment variable name")
            out.append({"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}}})
    return out


def node_resources(gpus_per_node: int, accelerator_type: str, cpu_request: str | None = None,
                   memory_request: str | None = None) -> dict[str, Any]:
    """Per-node resources: the accelerator as a limit (extended resources are requested = limit), CPU/memory
    requests."""
    out: dict[str, Any] = {}
    if gpus_per_node:
        if not accelerator_type or "/" not in accelerator_type:
            raise ValueError(f"accelerator_type {accelerator_type!r}: expected an extended resource name such as "
                             f"nvidia.com/gpu")
        out["limits"] = {accelerator_type: gpus_per_node}
    requests = {k: v for k, v in (("cpu", cpu_request), ("memory", memory_request)) if v}
    if requests:
        out["requests"] = requests
    return out


def pvc_volumes(pvcs: Mapping[str, str] | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts) for ``{claim name: mount path}``; each volume is named after its claim."""
    volumes, mounts = [], []
    for claim, path in (pvcs or {}).items():
        if len(claim) > 63 or not _DNS1123_LABEL.match(claim):
            raise ValueError(f"pvcs: {claim!r} is not a claim name usable as a volume name (RFC 1123 label)")
        if not str(path).startswith("/"):
            raise ValueError(f"pvcs[{claim!r}]: mount path {path!r} must be absolute")
        volumes.append({"name": claim, "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": claim, "mountPath": str(path)})
    return volumes, mounts


def check_geometry(nodes: int, gpus_per_node: int, command: Sequence[str]) -> None:
    if not isinstance(nodes, int) or nodes < 1:
        raise ValueError(f"nodes must be an integer >= 1, got {nodes!r}")
    if not isinstance(gpus_per_node, int) or gpus_per_node < 0:
        raise ValueError(f"gpus_per_node must be an integer >= 0, got {gpus_per_node!r}")
    if not command or not all(isinstance(c, str) and c for c in command):
        raise ValueError(f"command must be a non-empty list of non-empty strings, got {command!r}")


def object_metadata(name: str, namespace: str, labels: Mapping[str, str] | None,
              annotations: Mapping[str, str] | None) -> dict[str, Any]:
    if not isinstance(namespace, str) or len(namespace) > 63 or not _DNS1123_LABEL.match(namespace):
        raise ValueError(f"namespace {namespace!r} is not a namespace name")
    meta: dict[str, Any] = {"name": check_name(name), "namespace": namespace}
    if labels:
        meta["labels"] = check_labels(labels)
    if annotations:
        meta["annotations"] = {str(k): str(v) for k, v in annotations.items()}
    return meta


# ---------------------------------------------------------------------------------------------- TrainJob
def trainjob_spec(*, name: str, namespace: str, image: str, nodes: int, gpus_per_node: int,
                  command: Sequence[str], args: Sequence[str] = (), accelerator_type: str = "nvidia.com/gpu",
                  env: Mapping[str, str] | None = None, secret_env: Mapping[str, Sequence[str]] | None = None,
                  node_selector: Mapping[str, str] | None = None, tolerations: Sequence[Mapping[str, Any]] = (),
                  pvcs: Mapping[str, str] | None = None, cpu_request: str | None = None,
                  memory_request: str | None = None, runtime: str = RUNTIME,
                  runtime_kind: Literal["TrainingRuntime", "ClusterTrainingRuntime"] = "TrainingRuntime",
                  service_account: str | None = None, labels: Mapping[str, str] | None = None,
                  annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A ``TrainJob`` (Kubeflow Trainer v2.3.0) running ``command`` on ``nodes`` nodes of the runtime's image slot.

    ``numProcPerNode`` = ``gpus_per_node`` (one process per accelerator; 1 on CPU nodes), so the controller's
    ``PET_NPROC_PER_NODE`` matches the accelerator limit. Placement (node selector, tolerations), extra PVCs and
    pod labels go into a ``runtimePatches`` entry for the runtime's ``node`` job, not into the launcher's own pod.

    Raises:
        ValueError: naming the argument that is invalid.
    """
    check_geometry(nodes, gpus_per_node, command)
    if not image:
        raise ValueError("image must not be empty")
    if not runtime:
        raise ValueError("runtime must name a TrainingRuntime")
    trainer: dict[str, Any] = {"image": image, "command": list(command), "numNodes": nodes,
                               "numProcPerNode": max(gpus_per_node, 1)}
    if args:
        trainer["args"] = list(args)
    env_vars = env_list(env, secret_env)
    if env_vars:
        trainer["env"] = env_vars
    resources = node_resources(gpus_per_node, accelerator_type, cpu_request, memory_request)
    if resources:
        trainer["resourcesPerNode"] = resources
    pod_spec: dict[str, Any] = {}
    if node_selector:
        pod_spec["nodeSelector"] = {str(k): str(v) for k, v in node_selector.items()}
    if tolerations:
        pod_spec["tolerations"] = [dict(t) for t in tolerations]
    volumes, mounts = pvc_volumes(pvcs)
    if volumes:
        pod_spec["volumes"] = volumes
        pod_spec["containers"] = [{"name": NODE_CONTAINER, "volumeMounts": mounts}]
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    pod_template: dict[str, Any] = {}
    if labels:
        pod_template["metadata"] = {"labels": check_labels(labels)}
    if pod_spec:
        pod_template["spec"] = pod_spec
    spec: dict[str, Any] = {
        "runtimeRef": {"apiGroup": "trainer.kubeflow.org", "kind": runtime_kind, "name": runtime},
        "trainer": trainer,
    }
    if pod_template:
        spec["runtimePatches"] = [{
            "manager": PATCH_MANAGER,
            "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [
                {"name": NODE_JOB, "template": {"spec": {"template": pod_template}}}]}}},
        }]
    return {"apiVersion": TRAINER_API_VERSION, "kind": "TrainJob",
            "metadata": object_metadata(name, namespace, labels, annotations), "spec": spec}


def job_spec(controller: Controller = "trainer", **kwargs: Any) -> dict[str, Any]:
    """``trainjob_spec`` (Kubeflow Trainer v2.3.0) or ``pytorchjob_spec`` (Training Operator v1.9.4) by
    ``controller``; ``runtime``/``runtime_kind`` apply to the first only, ``shm_size`` to the second only."""
    from spg_lib.kubeflow.pytorchjob import pytorchjob_spec

    if controller == "trainer":
        kwargs.pop("shm_size", None)
        return trainjob_spec(**kwargs)
    if controller == "training-operator":
        kwargs.pop("runtime", None)
        kwargs.pop("runtime_kind", None)
        return pytorchjob_spec(**kwargs)
    raise ValueError(f"controller {controller!r}: expected 'trainer' (Kubeflow Trainer v2, TrainJob) or "
                     f"'training-operator' (Training Operator v1, PyTorchJob)")


def node_command(accelerate_config: str, spg_args: Sequence[str], *, workdir: str | None = None,
                 config_env: str | None = None, python: str = "python") -> list[str]:
    """The command every node runs: ``python -m spg_lib.kubeflow.node_launch ... -- <spg_args>``."""
    cmd = [python, "-m", "spg_lib.kubeflow.node_launch", "--accelerate-config", accelerate_config]
    if workdir:
        cmd += ["--workdir", workdir]
    if config_env:
        cmd += ["--config-env", config_env]
    return [*cmd, "--", *spg_args]


# ---------------------------------------------------------------------------------------------- launcher
def launch_training(cfg: PipelineConfig, *, job_id: str, out_dir: str, namespace: str | None = None,
                    controller: Controller = "trainer", accelerate_config: str = "configs/accelerate/ddp.yaml",
                    runtime: str = RUNTIME, pvcs: Mapping[str, str] | None = None,
                    service_account: str | None = None, api: Any = None, log: Callable[[str], None] = print,
                    poll_s: float = 10.0, timeout_s: float | None = None, delete: bool = False) -> dict[str, Any]:
    """Train ``cfg`` (a ``PipelineConfig``) on ``cfg.kfp.nodes`` nodes as one TrainJob (or PyTorchJob) and wait.

    The job runs ``cfg.kfp.image`` with ``cfg.kfp.gpus`` accelerators per node (``cfg.kfp.accelerator_type``), the
    node selector, tolerations and CPU/memory requests of ``cfg.kfp``, and the S3/MLflow Secrets' keys as env. Each
    node gets the tree (with ``train.out_dir = out_dir``) in ``$SPG_CONFIG_JSON`` and runs
    ``node_launch --accelerate-config <accelerate_config> -- train --resume --no-progress``, so a retried KFP task
    (same ``job_id``, same job name) resumes from the checkpoints in ``out_dir``. Every path in the tree
    (``train.model``, ``train.train_data``, ``out_dir``) must be readable on the nodes: shared storage (the
    checkpoint PVC) or s3:// URIs. ``pvcs`` (``{claim: mount path}``): extra volumes; None mounts nothing extra on
    a TrainJob (the runtime mounts ``spg-checkpoints``) and ``spg-checkpoints`` at /mnt/checkpoints on a
    PyTorchJob (no runtime). Relative ``accelerate_config`` resolves against ``cfg.kfp.workdir``.

    Returns ``{"name", "namespace", "controller", "state", "out_dir", "final_model", "metrics_log",
    "wall_time_s"}`` (the final model and the log are on the shared storage, written by node 0); raises
    ``spg_lib.kubeflow.k8s_watch.JobFailedError`` (one line: the controller's reason and node 0's last error line) when
    the job fails, so the KFP task fails.
    """
    from spg_lib.kubeflow.k8s_watch import current_namespace, kube_api, run_trainjob
    from spg_lib.pipeline.config import dump_pipeline_config

    kfp = cfg.kfp
    if kfp.nodes < 1:
        raise ValueError(f"kfp.nodes must be >= 1, got {kfp.nodes}")
    if not str(out_dir).startswith("/"):
        raise ValueError(f"out_dir {out_dir!r}: every node writes checkpoints there, so it must be an absolute path "
                         f"on storage mounted on all nodes (e.g. {CHECKPOINT_MOUNT}/<job id>/train), not an s3:// "
                         f"URI or a relative path")
    for field in ("model", "train_data", "tokenizer"):
        value = str(getattr(cfg.train, field) or "")
        if value.startswith(_KFP_LOCAL_ARTIFACTS):
            raise ValueError(f"train.{field} {value!r} is an artifact path of this KFP pod, which the training "
                             f"nodes do not see: copy it to shared storage or pass its s3:// URI")
    start = time.monotonic()
    tree = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, out_dir=str(out_dir)))
    config_json = dump_pipeline_config(tree)
    launch_cfg = accelerate_config if accelerate_config.startswith("/") else f"{kfp.workdir}/{accelerate_config}"
    command = node_command(launch_cfg, ["train", "--resume", "--no-progress"], workdir=kfp.workdir,
                           config_env=CONFIG_ENV)
    if pvcs is None:
        pvcs = {} if controller == "trainer" else {CHECKPOINT_PVC: CHECKPOINT_MOUNT}
    name = job_name(job_id)
    labels = {"app.kubernetes.io/part-of": "spg-pipeline", "app.kubernetes.io/component": "train",
              "spg-pipeline/job": name}
    spec = job_spec(controller, name=name, namespace=namespace or current_namespace(), image=kfp.image,
                    nodes=kfp.nodes, gpus_per_node=kfp.gpus, accelerator_type=kfp.accelerator_type, command=command,
                    env={CONFIG_ENV: config_json, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
                    secret_env={kfp.s3_secret: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL",
                                                "AWS_DEFAULT_REGION"],
                                kfp.mlflow_secret: ["MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME",
                                                    "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"]},
                    node_selector=kfp.node_selector, tolerations=kfp.tolerations, pvcs=pvcs,
                    cpu_request=kfp.cpu_request, memory_request=kfp.memory_request, runtime=runtime,
                    shm_size=kfp.shm_size, service_account=service_account, labels=labels,
                    annotations={"spg-pipeline/pipeline-job-id": job_id})
    state = run_trainjob(api if api is not None else kube_api(), spec, log=log, poll_s=poll_s, timeout_s=timeout_s,
                         delete=delete)
    return {"name": name, "namespace": spec["metadata"]["namespace"], "controller": controller, "state": state,
            "out_dir": str(out_dir), "final_model": f"{out_dir}/final", "metrics_log": f"{out_dir}/metrics.jsonl",
            "wall_time_s": time.monotonic() - start}
