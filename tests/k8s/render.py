"""Render the kustomize overlays of k8s/ once per test session, with the kubectl that requirements.lock installs.

    docs = rendered("dev")                       # the overlay's objects, as `kubectl kustomize` prints them
    find(docs, "Deployment", "mlflow")           # one object by kind and name
    pod_specs(docs)                              # (object, pod spec) of every pod template in them
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

__all__ = ["K8S", "KUBECTL", "OVERLAYS", "find", "pod_specs", "rendered", "split_by_validator"]

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
KUBECTL = Path(sys.executable).parent / "kubectl"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())

# API groups whose kinds kubernetes-validate knows (the built-in API); anything else is a custom resource.
CORE_GROUPS = {"", "apps", "batch", "policy", "rbac.authorization.k8s.io", "networking.k8s.io", "autoscaling"}


def kustomize(path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize path`` as a list of objects (raises with kubectl's message on failure)."""
    result = subprocess.run([str(KUBECTL), "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path}: {result.stderr.strip()}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@functools.cache
def _rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(kustomize(K8S / "overlays" / overlay))


def rendered(overlay: str) -> list[dict[str, Any]]:
    """The objects of ``k8s/overlays/<overlay>`` (rendered once; callers get fresh copies to mutate)."""
    return yaml.safe_load(yaml.safe_dump(list(_rendered(overlay))))


def group(obj: dict[str, Any]) -> str:
    api = obj["apiVersion"]
    return api.split("/", 1)[0] if "/" in api else ""


def split_by_validator(docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(built-in kinds, custom resources) of ``docs``."""
    core = [d for d in docs if group(d) in CORE_GROUPS]
    return core, [d for d in docs if group(d) not in CORE_GROUPS]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{len(matches)} objects {kind}/{name}"
    return matches[0]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(object, pod spec) of every pod template: Deployments, Jobs, CronJobs and TrainingRuntime node jobs."""
    for d in docs:
        spec = d.get("spec", {})
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield d, spec["template"]["spec"]
        elif d["kind"] == "CronJob":
            yield d, spec["jobTemplate"]["spec"]["template"]["spec"]
        elif d["kind"] in ("TrainingRuntime", "ClusterTrainingRuntime"):
            for job in spec["template"]["spec"]["replicatedJobs"]:
                yield d, job["template"]["spec"]["template"]["spec"]
