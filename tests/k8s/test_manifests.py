"""What the rendered manifests promise the pipeline, checked object by object (tests/k8s/render.py renders them).

Names agree with the pipeline (KfpConfig's Secrets, the launcher's runtime and volume, the images docker/
builds); the Secret templates hold keys only; every Secret reference names a template key; the RBAC is exactly
what the pipeline needs; every pod runs non-root without privilege escalation on a read-only root filesystem;
the MLflow server's arguments parse with mlflow's own CLI and admit the in-cluster host names (and nothing
else); the kfp-launcher providers use KFP 2.17's field names; the CronJob submits with the real `spg kfp submit`
arguments and never overlaps itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from spg_lib.pipeline.config import KfpConfig, load_pipeline_config
from tests.k8s.render import K8S, OVERLAYS, find, pod_specs, rendered

ROOT = K8S.parent
KFP = KfpConfig()
SECRET_KEYS = {
    KFP.s3_secret: {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"},
    KFP.mlflow_secret: {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"},
    "spg-mlflow-db": {"MLFLOW_BACKEND_STORE_URI"},
}
RUNTIME, CHECKPOINT_PVC, CHECKPOINT_MOUNT = "spg-torchrun", "spg-checkpoints", "/mnt/checkpoints"


def _templates() -> dict[str, dict[str, Any]]:
    docs = [d for p in sorted((K8S / "secrets").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())]
    return {d["metadata"]["name"]: d for d in docs}


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return pod.get("initContainers", []) + pod["containers"]


def _expand(value: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion of a command argument."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), value)


# ---- names ----------------------------------------------------------------------------------------------------

def test_names_agree_with_the_launcher():
    """The runtime and volume the launcher (spg_lib/kubeflow/trainjob.py) references exist under these names."""
    from spg_lib.kubeflow import trainjob

    assert (trainjob.RUNTIME, trainjob.CHECKPOINT_PVC, trainjob.CHECKPOINT_MOUNT) == (
        RUNTIME, CHECKPOINT_PVC, CHECKPOINT_MOUNT)
    assert (trainjob.NODE_JOB, trainjob.NODE_CONTAINER) == ("node", "node")
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        find(docs, "TrainingRuntime", RUNTIME)
        find(docs, "PersistentVolumeClaim", CHECKPOINT_PVC)
        find(docs, "ServiceAccount", "spg-pipeline-runner")
        find(docs, "ConfigMap", "kfp-launcher")


def test_images_are_the_ones_docker_builds():
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        for obj, pod in pod_specs(docs):
            for container in _containers(pod):
                expected = KFP.image if obj["kind"] == "TrainingRuntime" else KFP.cpu_image
                assert container["image"] == expected, f"{overlay} {obj['kind']}/{obj['metadata']['name']}"


# ---- secrets --------------------------------------------------------------------------------------------------

def test_secret_templates_hold_keys_only():
    templates = _templates()
    assert set(templates) == set(SECRET_KEYS)
    for name, secret in templates.items():
        assert secret["kind"] == "Secret" and secret.get("type") == "Opaque" and "data" not in secret
        assert set(secret["stringData"]) == SECRET_KEYS[name], name
        assert all(v == "" for v in secret["stringData"].values()), f"{name}: a value is committed"
    for overlay in OVERLAYS:  # never applied with the overlays (an apply would blank the real ones)
        assert not [d for d in rendered(overlay) if d["kind"] == "Secret"], overlay


def _secret_references(docs: list[dict[str, Any]]) -> list[tuple[str, str | None, str]]:
    """(secret, key or None for a whole-Secret envFrom, where) of every Secret reference in ``docs``."""
    refs: list[tuple[str, str | None, str]] = []
    for obj, pod in pod_specs(docs):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        for container in _containers(pod):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.append((ref["name"], ref["key"], f"{where} env {env['name']}"))
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    refs.append((source["secretRef"]["name"], None, f"{where} envFrom"))
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                refs.append((volume["secret"]["secretName"], None, f"{where} volume {volume['name']}"))
    for doc in docs:
        if doc["kind"] == "Role":
            for rule in doc["rules"]:
                if "secrets" in rule["resources"]:
                    refs += [(n, None, f"Role/{doc['metadata']['name']}") for n in rule.get("resourceNames", [])]
    launcher = yaml.safe_load(find(docs, "ConfigMap", "kfp-launcher")["data"]["providers"])
    ref = launcher["s3"]["default"]["credentials"]["secretRef"]
    refs += [(ref["secretName"], ref[k], "kfp-launcher providers") for k in ("accessKeyKey", "secretKeyKey")]
    return refs


def test_every_secret_reference_names_a_template_key():
    for overlay in OVERLAYS:
        refs = _secret_references(rendered(overlay))
        assert {name for name, _, _ in refs} == set(SECRET_KEYS), overlay
        for name, key, where in refs:
            assert name in SECRET_KEYS, f"{overlay} {where}: Secret {name} has no template in k8s/secrets"
            assert key is None or key in SECRET_KEYS[name], f"{overlay} {where}: {name} has no key {key}"


# ---- RBAC -----------------------------------------------------------------------------------------------------

RUNNER_RULES = {
    ("trainer.kubeflow.org", "trainjobs", (), ("create", "delete", "get", "list", "watch")),
    ("kubeflow.org", "pytorchjobs", (), ("create", "delete", "get", "list", "watch")),
    ("", "pods", (), ("get", "list")),
    ("", "pods/log", (), ("get",)),
    ("", "secrets", (KFP.mlflow_secret, KFP.s3_secret), ("get",)),
}
SUBMITTER_RULES = {
    ("pipelines.kubeflow.org", "experiments", (), ("create", "get", "list")),
    ("pipelines.kubeflow.org", "runs", (), ("create", "get", "list")),
}


def _rules(role: dict[str, Any]) -> set[tuple]:
    return {(group, resource, tuple(sorted(rule.get("resourceNames", []))), tuple(sorted(rule["verbs"])))
            for rule in role["rules"] for group in rule["apiGroups"] for resource in rule["resources"]}


def test_rbac_is_exactly_what_the_pipeline_needs():
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        namespace = docs[0]["metadata"]["namespace"]
        assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")], overlay
        assert _rules(find(docs, "Role", "spg-pipeline-runner")) == RUNNER_RULES
        roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
        if "spg-retrain-submitter" in roles:
            assert _rules(roles["spg-retrain-submitter"]) == SUBMITTER_RULES
        for role in roles.values():
            for group, resource, names, verbs in _rules(role):
                assert "*" not in (group, resource, *verbs), f"{overlay} Role/{role['metadata']['name']}: wildcard"
                assert resource != "secrets" or names, f"{overlay}: secrets without resourceNames"
        for binding in (d for d in docs if d["kind"] == "RoleBinding"):
            name = binding["metadata"]["name"]
            assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
            find(docs, "ServiceAccount", name)


# ---- pod security ---------------------------------------------------------------------------------------------

def test_every_pod_runs_non_root_without_privileges_on_a_read_only_root():
    for overlay in OVERLAYS:
        for obj, pod in pod_specs(rendered(overlay)):
            where = f"{overlay} {obj['kind']}/{obj['metadata']['name']}"
            context = pod["securityContext"]
            assert context["runAsNonRoot"] is True and context["runAsUser"] == 1000, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert pod["automountServiceAccountToken"] is False, where  # none of these pods calls the API
            mounts = set()
            for container in _containers(pod):
                sc = container["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False and sc.get("privileged", False) is False, where
                assert sc["capabilities"] == {"drop": ["ALL"]}, where
                assert sc["readOnlyRootFilesystem"] is True, where
                assert {"requests"} <= set(container["resources"]), where
                assert "memory" in container["resources"].get("limits", {}), where
                mounts |= {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"
            for volume in pod.get("volumes", []):
                assert "hostPath" not in volume, where


# ---- training runtime and storage -----------------------------------------------------------------------------

def _node_pod(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    runtime = find(docs, "TrainingRuntime", RUNTIME)
    (job,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == "node"
    assert job["template"]["metadata"]["labels"]["trainer.kubeflow.org/trainjob-ancestor-step"] == "trainer"
    return runtime, job["template"]["spec"]["template"]["spec"]


def _quantity_gi(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi|Ti)", value).groups()
    return float(number) * {"Mi": 1 / 1024, "Gi": 1, "Ti": 1024}[unit]


@pytest.mark.parametrize("overlay, nodes, gpus, access", [("dev", 1, 1, "ReadWriteOnce"),
                                                           ("prod", 2, 8, "ReadWriteMany")])
def test_training_runtime_and_shared_volume(overlay, nodes, gpus, access):
    docs = rendered(overlay)
    runtime, pod = _node_pod(docs)
    assert runtime["spec"]["mlPolicy"] == {"numNodes": nodes, "torch": {}}
    (container,) = pod["containers"]
    assert container["name"] == "node" and container["command"] == ["torchrun"]
    resources = container["resources"]
    assert resources["limits"][KFP.accelerator_type] == resources["requests"][KFP.accelerator_type] == str(gpus)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    shm = volumes[mounts["/dev/shm"]["name"]]["emptyDir"]
    assert shm["medium"] == "Memory" and _quantity_gi(shm["sizeLimit"]) >= _quantity_gi(KFP.shm_size)
    assert volumes[mounts[CHECKPOINT_MOUNT]["name"]] == {
        "name": mounts[CHECKPOINT_MOUNT]["name"], "persistentVolumeClaim": {"claimName": CHECKPOINT_PVC}}
    env = {e["name"]: e.get("value") for e in container["env"]}
    cache = mounts[env["HF_HOME"]]
    assert cache["subPath"] == "model-cache" and volumes[cache["name"]]["persistentVolumeClaim"]
    assert {"NCCL_SOCKET_IFNAME", "NCCL_DEBUG", "TORCH_NCCL_ASYNC_ERROR_HANDLING"} <= set(env)
    assert container["args"][container["args"].index("--out-dir") + 1].startswith(CHECKPOINT_MOUNT + "/")
    assert "--resume" in container["args"]
    assert {"secretRef": {"name": KFP.s3_secret}} in container["envFrom"]
    pvc = find(docs, "PersistentVolumeClaim", CHECKPOINT_PVC)
    assert pvc["spec"]["accessModes"] == [access]


def test_the_fallback_training_command_parses():
    """The runtime's own command (the TrainJob usually replaces it) is a valid `spg train` invocation."""
    from spg_lib.cli import build_parser

    _, pod = _node_pod(rendered("dev"))
    args = pod["containers"][0]["args"]
    assert args[:2] == ["-m", "spg_lib.cli"]
    cli = [_expand(a, {"TRAIN_JOB_NAME": "job-1"}) for a in args[2:]]
    parsed = build_parser("train").parse_args(cli)
    assert parsed.command == "train" and parsed.resume
    load_pipeline_config(ROOT / parsed.config)


# ---- MLflow ---------------------------------------------------------------------------------------------------

def _mlflow(overlay: str) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    docs = rendered(overlay)
    deployment = find(docs, "Deployment", "mlflow")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    namespace = deployment["metadata"]["namespace"]
    config = find(docs, "ConfigMap", "spg-mlflow-server")["data"]
    env = {"POD_NAMESPACE": namespace, **config}
    for item in container["env"]:
        ref = item.get("valueFrom", {})
        if "fieldRef" in ref:
            assert ref["fieldRef"]["fieldPath"] == "metadata.namespace"
        elif "configMapKeyRef" in ref:
            assert ref["configMapKeyRef"]["name"] == "spg-mlflow-server"
    return container, [_expand(a, env) for a in container["args"]], env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_server_arguments_parse_and_proxy_artifacts_to_s3(overlay):
    from mlflow.cli import server

    container, args, _ = _mlflow(overlay)
    assert container["command"] == ["mlflow", "server"]
    ctx = server.make_context("server", list(args))  # mlflow's own option parser: an unknown flag fails here
    assert ctx.params["serve_artifacts"] is True
    assert ctx.params["artifacts_destination"].startswith("s3://")
    assert ctx.params["host"] == "0.0.0.0" and ctx.params["port"] == 5000
    env = {e["name"]: e.get("valueFrom", {}) for e in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["secretKeyRef"] == {"name": "spg-mlflow-db",
                                                               "key": "MLFLOW_BACKEND_STORE_URI"}
    assert not any("store-uri" in a for a in args)  # the database password stays out of the arguments
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    service = find(rendered(overlay), "Service", "mlflow")
    assert service["spec"]["ports"][0]["port"] == ctx.params["port"]
    assert container["ports"][0]["containerPort"] == ctx.params["port"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_admits_the_in_cluster_host_names_only(overlay):
    from mlflow.server.security_utils import is_allowed_host_header

    _, args, env = _mlflow(overlay)
    (hosts,) = [a.split("=", 1)[1].split(",") for a in args if a.startswith("--allowed-hosts=")]
    namespace = env["POD_NAMESPACE"]
    for host in ("mlflow:5000", f"mlflow.{namespace}:5000", f"mlflow.{namespace}.svc:5000",
                 f"mlflow.{namespace}.svc.cluster.local:5000", f"mlflow.{namespace}.svc.cluster.local"):
        assert is_allowed_host_header(hosts, host), host
    for host in ("evil.example.com", "mlflow.evil.example.com:5000", f"mlflow.other-{namespace}:5000", ""):
        assert not is_allowed_host_header(hosts, host), host
    assert "*" not in hosts


# ---- kfp-launcher ---------------------------------------------------------------------------------------------

# Field names of KFP 2.17.0's backend/src/v2/config/s3.go (S3ProviderConfig, S3ProviderDefault, S3Credentials,
# S3SecretRef, S3Override): an unknown or misspelt key would be ignored by the Go decoder, silently.
_REF_KEYS = ("secretName", "accessKeyKey", "secretKeyKey")
_SECRET_REF = {"type": "object", "additionalProperties": False, "required": list(_REF_KEYS),
               "properties": {k: {"type": "string", "minLength": 1} for k in _REF_KEYS}}
_CREDENTIALS = {"type": "object", "additionalProperties": False,
                "properties": {"fromEnv": {"type": "boolean"}, "secretRef": _SECRET_REF},
                "if": {"properties": {"fromEnv": {"const": False}}}, "then": {"required": ["secretRef"]}}
_COMMON = {"endpoint": {"type": "string"}, "region": {"type": "string"}, "disableSSL": {"type": "boolean"},
           "forcePathStyle": {"type": "boolean"}, "maxRetries": {"type": "integer"}, "credentials": _CREDENTIALS}
S3_PROVIDERS = {
    "type": "object", "additionalProperties": False, "required": ["s3"],
    "properties": {"s3": {"type": "object", "additionalProperties": False, "required": ["default"], "properties": {
        "default": {"type": "object", "additionalProperties": False, "required": ["endpoint", "credentials"],
                    "properties": _COMMON},
        "overrides": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["bucketName", "credentials"],
            "properties": {**_COMMON, "bucketName": {"type": "string"}, "keyPrefix": {"type": "string"}}}},
    }}},
}


def test_kfp_launcher_points_pipeline_artifacts_at_s3():
    for overlay in OVERLAYS:
        data = find(rendered(overlay), "ConfigMap", "kfp-launcher")["data"]
        assert set(data) == {"defaultPipelineRoot", "providers"}
        assert re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]+/\S+", data["defaultPipelineRoot"])
        providers = yaml.safe_load(data["providers"])
        jsonschema.validate(providers, S3_PROVIDERS)
        assert re.fullmatch(r"[a-z0-9.-]+:\d+", providers["s3"]["default"]["endpoint"])  # host:port, no scheme


def test_the_provider_schema_refuses_misspelt_keys():
    good = yaml.safe_load(find(rendered("dev"), "ConfigMap", "kfp-launcher")["data"]["providers"])
    bad = yaml.safe_load(yaml.safe_dump(good).replace("forcePathStyle", "forcePathstyle"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, S3_PROVIDERS)
    del good["s3"]["default"]["credentials"]["secretRef"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(good, S3_PROVIDERS)


# ---- scheduled retraining -------------------------------------------------------------------------------------

def _cronjob() -> dict[str, Any]:
    return find(rendered("prod"), "CronJob", "spg-retrain")


def test_cronjob_submits_one_run_at_a_time():
    cronjob = _cronjob()
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert len(spec["schedule"].split()) == 5 and spec["timeZone"]
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "spg-retrain-submitter"
    (container,) = pod["containers"]
    assert container["command"] == ["spg", "kfp", "submit"]
    env = {e["name"]: e for e in container["env"]}
    assert {"KFP_ENDPOINT", "KFP_NAMESPACE", "KFP_TOKEN_FILE"} <= set(env)
    assert env["KFP_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    token = Path(env["KFP_TOKEN_FILE"]["value"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(token.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    (source,) = volume["projected"]["sources"]
    assert source["serviceAccountToken"]["path"] == token.name
    assert source["serviceAccountToken"]["audience"] == "pipelines.kubeflow.org"
    args = container["args"]
    config = args[args.index("--config") + 1]
    load_pipeline_config(ROOT / config)  # the file exists in the image (/opt/spg) and loads
    assert args[args.index("--run-name") + 1].startswith("retrain-$(JOB_NAME)")
    assert env["JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['batch.kubernetes.io/job-name']"


def test_cronjob_arguments_are_accepted_by_spg_kfp_submit(tmp_path):
    """Run the CronJob's command line with the real CLI, without KFP_ENDPOINT: it must get past argument
    parsing (exit 2 naming KFP_ENDPOINT, the first thing it checks), not fail on the arguments themselves."""
    (container,) = _cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = [_expand(a, {"JOB_NAME": "spg-retrain-29000000"}) for a in container["args"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFP_")}
    result = subprocess.run([sys.executable, "-m", "spg_lib.cli", *container["command"][1:], *args],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "KFP_ENDPOINT" in result.stderr, result.stderr
    assert "usage:" not in result.stderr and "unrecognized arguments" not in result.stderr
