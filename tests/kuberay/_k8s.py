"""Offline stand-ins for the API server and kustomize, used by the kuberay/ tests.

Why: there is no cluster here, yet a manifest that `kubectl apply --validate=strict` would reject
must fail a test. `schema_for(kind)` turns the KubeRay CRD's OpenAPI v3 schema into a strict JSON
schema (every object without `additionalProperties` or `x-kubernetes-preserve-unknown-fields`
rejects unknown keys, as the API server's strict field validation does). `build(dir)` renders a
kustomization with the subset of kustomize that kuberay/ uses (resources, namespace, labels,
images, strategic-merge patches of maps, JSON 6902 patches); a test checks it against
`kubectl kustomize` wherever kubectl exists, so this fallback cannot drift silently.
"""

from __future__ import annotations

import copy
import functools
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "kuberay"
CRD_DIR = ROOT.parent / "shared" / "kuberay-crds"
CRD_FILES = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayService": "ray.io_rayservices.yaml",
}

_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {"name": _NAME, "namespace": _NAME, "labels": _STR_MAP, "annotations": _STR_MAP},
}


def _core(spec_props: dict[str, Any], api_version: str = "v1") -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"type": "string"},
            "metadata": OBJECT_META,
            **spec_props,
        },
    }


_QUANTITY = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?|[mk])?$"}
# The few core kinds kuberay/ ships, reduced to the fields it may use (strict like the CRDs).
CORE_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceAccount": _core({"automountServiceAccountToken": {"type": "boolean"}}),
    "ConfigMap": _core({"data": _STR_MAP}),
    "Secret": _core({"type": {"type": "string"}, "stringData": _STR_MAP, "data": _STR_MAP}),
    "PersistentVolumeClaim": _core(
        {
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["accessModes", "resources"],
                "properties": {
                    "accessModes": {
                        "type": "array",
                        "items": {
                            "enum": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]
                        },
                    },
                    "storageClassName": {"type": "string"},
                    "resources": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "requests": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"storage": _QUANTITY},
                                "required": ["storage"],
                            }
                        },
                    },
                },
            }
        }
    ),
    "NetworkPolicy": _core(
        {
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["podSelector"],
                "properties": {
                    "podSelector": {"$ref": "#/definitions/selector"},
                    "policyTypes": {"type": "array", "items": {"enum": ["Ingress", "Egress"]}},
                    "ingress": {"type": "array", "items": {"$ref": "#/definitions/rule"}},
                },
            }
        },
        api_version="networking.k8s.io/v1",
    )
    | {
        "definitions": {
            "selector": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"matchLabels": _STR_MAP, "matchExpressions": {"type": "array"}},
            },
            "rule": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "from": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "podSelector": {"$ref": "#/definitions/selector"},
                                "namespaceSelector": {"$ref": "#/definitions/selector"},
                            },
                        },
                    },
                    "ports": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "protocol": {"enum": ["TCP", "UDP", "SCTP"]},
                                "port": {"type": ["integer", "string"]},
                            },
                        },
                    },
                },
            },
        }
    },
}


def make_strict(node: Any) -> Any:
    """Copy of an OpenAPI v3 schema where every object schema forbids keys it does not declare."""
    if isinstance(node, list):
        return [make_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = dict(node)
    if "properties" in node:
        out["properties"] = {k: make_strict(v) for k, v in node["properties"].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            out[key] = make_strict(node[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            out[key] = [make_strict(n) for n in node[key]]
    is_object = node.get("type") == "object" or "properties" in node
    if (
        is_object
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_schema(kind: str) -> dict[str, Any]:
    """The strict schema of a KubeRay kind's served storage version (ray.io/v1)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 1 MB each: 10x faster in C
    crd = yaml.load((CRD_DIR / CRD_FILES[kind]).read_text(), Loader=loader)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = make_strict(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = OBJECT_META  # the API server checks ObjectMeta itself
    schema["properties"]["apiVersion"] = {"const": "ray.io/v1"}
    schema["properties"]["kind"] = {"const": kind}
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    return schema


@functools.cache
def _validator(kind: str) -> jsonschema.Draft7Validator:
    schema = crd_schema(kind) if kind in CRD_FILES else CORE_SCHEMAS[kind]
    return jsonschema.Draft7Validator(schema)


def errors(doc: dict[str, Any]) -> list[str]:
    """Every schema violation in one manifest, as `path: message` lines (empty when valid)."""
    kind = doc.get("kind")
    if kind not in CRD_FILES and kind not in CORE_SCHEMAS:
        return [f"kind {kind!r} has no schema here: add one to tests/kuberay/_k8s.py or drop the resource"]
    validator = _validator(str(kind))
    return [
        f"{kind}/{doc.get('metadata', {}).get('name')} {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


# --- kustomize subset -------------------------------------------------------------------------


def _load_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge for maps (None deletes); lists are replaced, as for CRDs without merge keys."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(base.get(key), value)
    return out


def _json_patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if op["op"] == "add":
                parent.insert(index, op["value"])
            elif op["op"] == "replace":
                parent[index] = op["value"]
            elif op["op"] == "remove":
                del parent[index]
            else:
                raise ValueError(f"JSON patch op {op['op']!r} not supported here")
        else:
            if op["op"] in ("replace", "remove") and last not in parent:
                raise KeyError(f"JSON patch {op['op']} {op['path']}: no such field")
            if op["op"] in ("add", "replace"):
                parent[last] = op["value"]
            elif op["op"] == "remove":
                del parent[last]
            else:
                raise ValueError(f"JSON patch op {op['op']!r} not supported here")
    return doc


def _matches(doc: dict[str, Any], target: dict[str, Any]) -> bool:
    return all((doc.get("kind") if k == "kind" else doc["metadata"].get(k)) == v for k, v in target.items())


def _set_images(node: Any, images: list[dict[str, Any]]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for c in value:
                    for img in images:
                        if isinstance(c, dict) and c.get("image", "").split(":")[0] == img["name"]:
                            c["image"] = f"{img.get('newName', img['name'])}:{img['newTag']}"
            _set_images(value, images)
    elif isinstance(node, list):
        for value in node:
            _set_images(value, images)


def build(directory: Path) -> list[dict[str, Any]]:
    """Render `directory/kustomization.yaml` like `kubectl kustomize` does for kuberay/."""
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "resources", "patches", "namespace", "labels", "images"}
    if set(k) - known:
        raise ValueError(
            f"{directory}: kustomization fields {sorted(set(k) - known)} not supported by _k8s.build"
        )
    docs: list[dict[str, Any]] = []
    for res in k.get("resources", []):
        path = directory / res
        docs += build(path) if path.is_dir() else _load_docs(path.read_text())
    for patch in k.get("patches", []):
        text = (directory / patch["path"]).read_text() if "path" in patch else patch["patch"]
        loaded = yaml.safe_load_all(text)
        parsed = [p for p in loaded if p is not None]
        if parsed and isinstance(parsed[0], list):  # JSON 6902
            hits = [i for i, d in enumerate(docs) if _matches(d, patch["target"])]
            if not hits:
                raise ValueError(f"{directory}: patch target {patch['target']} matches nothing")
            for i in hits:
                docs[i] = _json_patch(docs[i], parsed[0])
        else:
            for p in parsed:
                hits = [
                    i
                    for i, d in enumerate(docs)
                    if _matches(d, {"kind": p["kind"], "name": p["metadata"]["name"]})
                ]
                if not hits:
                    raise ValueError(
                        f"{directory}: patch for {p['kind']}/{p['metadata']['name']} matches nothing"
                    )
                for i in hits:
                    docs[i] = _merge(docs[i], p)
    for doc in docs:
        meta = doc.setdefault("metadata", {})
        if "namespace" in k:
            meta["namespace"] = k["namespace"]
        for label in k.get("labels", []):
            meta["labels"] = {**meta.get("labels", {}), **label["pairs"]}
        _set_images(doc, k.get("images", []))
    return docs


def kubectl_build(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize directory`, parsed (the tests skip this when kubectl is absent)."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(directory)], check=True, capture_output=True, text=True, timeout=60
    )
    return _load_docs(out.stdout)


def ray_cluster_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The RayCluster spec inside any KubeRay resource (RayService/RayJob embed one)."""
    kind, spec = doc.get("kind"), doc.get("spec", {})
    if kind == "RayCluster":
        return [spec]
    if kind == "RayService":
        return [spec["rayClusterConfig"]]
    if kind == "RayJob" and "rayClusterSpec" in spec:
        return [spec["rayClusterSpec"]]
    return []
