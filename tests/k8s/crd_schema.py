"""A JSON Schema from a CRD's ``openAPIV3Schema`` that rejects what the Kubernetes API server rejects.

A CRD's published schema is *structural*: every object lists its fields, and the API server drops (or, under
strict field validation, the default of ``kubectl apply`` since 1.27, refuses) any field it does not list. As
plain JSON Schema the same document admits unknown fields, so a typo such as ``numProcsPerNode`` would pass
``check-jsonschema``. `strict_crd_schema` closes that gap:

* every object node (``type: object`` or ``properties``) that neither sets ``additionalProperties`` (a map) nor
  carries ``x-kubernetes-preserve-unknown-fields: true`` gets ``additionalProperties: false`` -- also an object
  with no ``properties`` at all (``mlPolicy.jax: {type: object}`` holds no fields);
* ``x-kubernetes-int-or-string: true`` becomes ``anyOf: [integer, string]`` (the schema gives no ``type``);
* the root pins ``apiVersion`` and ``kind`` to the CRD's group/version and kind, and requires them;
* the root ``metadata`` (left open by the CRD: the API server validates ObjectMeta itself) gets the ObjectMeta
  fields a manifest sets (name, namespace, labels, annotations, ...), closed like the rest.

Not checked: the CEL rules (``x-kubernetes-validations``), list-map key uniqueness
(``x-kubernetes-list-map-keys``) and admission webhooks -- those need a cluster.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

__all__ = ["CRD_DIR", "TRAININGRUNTIME_CRD", "strict_crd_schema", "write_strict_schema"]

CRD_DIR = Path(__file__).parent / "crds"
TRAININGRUNTIME_CRD = CRD_DIR / "trainer.kubeflow.org_trainingruntimes.yaml"

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_OBJECT_META = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
    },
}


def _close(node: dict[str, Any]) -> None:
    """Apply the rules of the module docstring to schema ``node`` and its sub-schemas, in place.

    Walks the schema structure (properties, items, additionalProperties, the combinators), never a field map
    or a default value, so a field that happens to be called ``properties`` or ``type`` is not mistaken for one.
    """
    if node.get("x-kubernetes-int-or-string") and "type" not in node and "anyOf" not in node:
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    is_object = node.get("type") == "object" or "properties" in node
    if (is_object and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        node["additionalProperties"] = False
    children: list[Any] = list(node.get("properties", {}).values())
    children += [node[k] for k in ("items", "additionalProperties", "not") if isinstance(node.get(k), dict)]
    for k in ("anyOf", "allOf", "oneOf"):
        children += node.get(k, [])
    for child in children:
        _close(child)


def strict_crd_schema(crd_path: Path, version: str | None = None) -> dict[str, Any]:
    """The strict JSON Schema of version ``version`` (default: the storage version) of the CRD in ``crd_path``."""
    crd = yaml.load(crd_path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    spec = crd["spec"]
    versions = [v for v in spec["versions"] if (v["name"] == version if version else v.get("storage"))]
    if len(versions) != 1:
        raise ValueError(f"{crd_path}: no single version {version or '(storage)'} in the CRD")
    schema = copy.deepcopy(versions[0]["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = copy.deepcopy(_OBJECT_META)
    _close(schema)
    schema["properties"]["apiVersion"] = {"const": f"{spec['group']}/{versions[0]['name']}"}
    schema["properties"]["kind"] = {"const": spec["names"]["kind"]}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    return schema


def write_strict_schema(crd_path: Path, out: Path, version: str | None = None) -> Path:
    """`strict_crd_schema` written as JSON to ``out`` (for ``check-jsonschema --schemafile``)."""
    out.write_text(json.dumps(strict_crd_schema(crd_path, version)))
    return out
