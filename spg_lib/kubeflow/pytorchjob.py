"""The PyTorchJob path (``kubeflow.org/v1``) for clusters still on Kubeflow Training Operator v1.

Written against Training Operator v1.9.4 (CRD in tests/kubeflow/crds/). There is no runtime object in v1, so the
job carries the whole pod: one ``Master`` replica (node 0) and ``nodes - 1`` ``Worker`` replicas, each a pod with
the container ``pytorch`` (the name the operator injects its environment and port into), the accelerator limit,
``/dev/shm`` as a memory-backed volume (NCCL, data loaders), the checkpoint PVC and the placement. The operator sets
``PET_NNODES``, ``PET_NPROC_PER_NODE``, ``PET_NODE_RANK`` and ``MASTER_ADDR`` / ``MASTER_PORT`` (the master's
Service), which spg_lib.kubeflow.node_launch maps to ``accelerate launch``. ``restartPolicy: Never`` and
``backoffLimit: 0``: a failed node fails the job, and the KFP task's retry resubmits it, resuming from the
checkpoints (a static rendezvous cannot take one restarted pod back anyway).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spg_lib.kubeflow.trainjob import (
    check_geometry,
    check_labels,
    env_list,
    node_resources,
    object_metadata,
    pvc_volumes,
)

__all__ = ["PYTORCHJOB_API_VERSION", "PYTORCH_CONTAINER", "PYTORCH_PORT", "pytorchjob_spec"]

PYTORCHJOB_API_VERSION = "kubeflow.org/v1"
PYTORCH_CONTAINER = "pytorch"  # kubeflowv1.PytorchJobDefaultContainerName
PYTORCH_PORT = 23456           # kubeflowv1.PytorchJobDefaultPort, named "pytorchjob-port"


def pytorchjob_spec(*, name: str, namespace: str, image: str, nodes: int, gpus_per_node: int,
                    command: Sequence[str], args: Sequence[str] = (), accelerator_type: str = "nvidia.com/gpu",
                    env: Mapping[str, str] | None = None, secret_env: Mapping[str, Sequence[str]] | None = None,
                    node_selector: Mapping[str, str] | None = None, tolerations: Sequence[Mapping[str, Any]] = (),
                    pvcs: Mapping[str, str] | None = None, cpu_request: str | None = None,
                    memory_request: str | None = None, shm_size: str | None = "16Gi",
                    service_account: str | None = None, labels: Mapping[str, str] | None = None,
                    annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A ``PyTorchJob``: Master (node 0) + ``nodes - 1`` Workers, ``nprocPerNode`` = ``gpus_per_node`` (1 on CPU).

    The same arguments as ``trainjob_spec`` (no runtime), plus ``shm_size`` for /dev/shm (None: no volume).

    Raises:
        ValueError: naming the argument that is invalid.
    """
    check_geometry(nodes, gpus_per_node, command)
    if not image:
        raise ValueError("image must not be empty")
    volumes, mounts = pvc_volumes(pvcs)
    if shm_size:
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_size}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    container: dict[str, Any] = {
        "name": PYTORCH_CONTAINER, "image": image, "command": list(command),
        "ports": [{"name": "pytorchjob-port", "containerPort": PYTORCH_PORT, "protocol": "TCP"}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if args:
        container["args"] = list(args)
    env_vars = env_list(env, secret_env)
    if env_vars:
        container["env"] = env_vars
    resources = node_resources(gpus_per_node, accelerator_type, cpu_request, memory_request)
    if resources:
        container["resources"] = resources
    if mounts:
        container["volumeMounts"] = mounts
    pod_spec: dict[str, Any] = {"containers": [container]}
    if volumes:
        pod_spec["volumes"] = volumes
    if node_selector:
        pod_spec["nodeSelector"] = {str(k): str(v) for k, v in node_selector.items()}
    if tolerations:
        pod_spec["tolerations"] = [dict(t) for t in tolerations]
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    template: dict[str, Any] = {"spec": pod_spec}
    if labels:
        template["metadata"] = {"labels": check_labels(labels)}

    def replica(count: int) -> dict[str, Any]:
        return {"replicas": count, "restartPolicy": "Never", "template": template}

    replicas = {"Master": replica(1)}
    if nodes > 1:
        replicas["Worker"] = replica(nodes - 1)
    return {"apiVersion": PYTORCHJOB_API_VERSION, "kind": "PyTorchJob",
            "metadata": object_metadata(name, namespace, labels, annotations),
            "spec": {"nprocPerNode": str(max(gpus_per_node, 1)),
                     "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 0},
                     "pytorchReplicaSpecs": replicas}}
