"""Every kuberay/ manifest, alone and after each overlay's merge, against the KubeRay v1.7 CRDs.

Strict like `kubectl apply --validate=strict`: an unknown or misspelt field anywhere fails. Then
the rules the schema cannot express: token auth everywhere, nothing exposes the dashboard, every
container is sized, GPU groups exist and ask for GPUs, the RayJob is the README's command.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kuberay import _k8s

pytestmark = pytest.mark.skipif(not _k8s.CRD_DIR.is_dir(), reason=f"KubeRay CRDs not found at {_k8s.CRD_DIR}")

OVERLAYS = ["base", "overlays/dev", "overlays/prod"]
TRAIN_ENTRYPOINT = "python -m train.run --config train/configs/action_tiny_cpu.yaml"
SECRETS = _k8s.KUBERAY / "secrets" / "secrets.example.yaml"


def _resource_files() -> list[Path]:
    base = yaml.safe_load((_k8s.KUBERAY / "base" / "kustomization.yaml").read_text())
    return [_k8s.KUBERAY / "base" / r for r in base["resources"]] + [SECRETS]


def _rendered(overlay: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in _k8s.build(_k8s.KUBERAY / overlay)}


@pytest.mark.parametrize("path", _resource_files(), ids=lambda p: p.name)
def test_each_file_is_valid(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs, f"{path} holds no manifest"
    problems = [e for d in docs for e in _k8s.errors(d)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_overlay_is_valid(overlay: str) -> None:
    docs = _rendered(overlay)
    kinds = {"ServiceAccount", "ConfigMap", "PersistentVolumeClaim", "RayService", "RayJob", "RayCluster"}
    assert {k for k, _ in docs} == kinds | ({"NetworkPolicy"} if overlay == "overlays/prod" else set())
    problems = [e for d in docs.values() for e in _k8s.errors(d)]
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl not installed: cannot compare with kustomize"
)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_fallback_renderer_matches_kubectl_kustomize(overlay: str) -> None:
    ours = sorted(_k8s.build(_k8s.KUBERAY / overlay), key=lambda d: (d["kind"], d["metadata"]["name"]))
    theirs = sorted(
        _k8s.kubectl_build(_k8s.KUBERAY / overlay), key=lambda d: (d["kind"], d["metadata"]["name"])
    )
    assert ours == theirs


def _break(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value
    return doc


@pytest.mark.parametrize(
    ("kind", "path", "value", "expected"),
    [
        (
            "RayService",
            "spec.rayClusterConfig.headGroupSpec.rayStartParamz",
            {},
            "'rayStartParamz' was unexpected",
        ),
        (
            "RayService",
            "spec.rayClusterConfig.workerGroupSpecs.1.template.spec.containers.0.resourcez",
            {},
            "'resourcez' was unexpected",
        ),
        (
            "RayService",
            "spec.rayClusterConfig.workerGroupSpecs.0.maxReplicas",
            "10",
            "is not of type 'integer'",
        ),
        ("RayService", "spec.rayClusterConfig.authOptions.mode", "on", "is not one of"),
        ("RayJob", "spec.shutdownAfterJobFinish", True, "'shutdownAfterJobFinish' was unexpected"),
        (
            "RayJob",
            "spec.rayClusterSpec.headGroupSpec.template.spec.containers.0.resources.limits.cpu",
            "4 cores",
            "does not match",
        ),
        ("RayCluster", "spec.upgradeStrategy", {"type": "NewCluster"}, "is not one of ['Recreate', 'None']"),
        ("RayCluster", "metadata.labelz", {}, "'labelz' was unexpected"),
        ("PersistentVolumeClaim", "spec.acessModes", ["ReadWriteMany"], "'acessModes' was unexpected"),
        ("NetworkPolicy", "spec.ingress.0.form", [], "'form' was unexpected"),
    ],
)
def test_a_wrong_field_is_caught(kind: str, path: str, value: Any, expected: str) -> None:
    (doc,) = [d for (k, _), d in _rendered("overlays/prod").items() if k == kind]
    problems = _k8s.errors(_break(doc, path, value))
    assert any(expected in p for p in problems), problems


def test_a_bad_overlay_patch_is_caught(tmp_path: Path) -> None:
    """A typo introduced by an overlay (not the base) fails after the merge."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [str(_k8s.KUBERAY / "base")],
                "patches": [
                    {
                        "target": {"kind": "RayCluster", "name": "vidray-batch"},
                        "patch": "- {op: add, path: /spec/workerGroupSpecs/1/maxReplica, value: 3}",
                    }
                ],
            }
        )
    )
    problems = [e for d in _k8s.build(overlay) for e in _k8s.errors(d)]
    assert any("'maxReplica' was unexpected" in p for p in problems), problems


def test_unknown_kind_is_refused() -> None:
    assert _k8s.errors({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}})


# --- what the schema cannot say ------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_token_auth_and_no_exposed_dashboard(overlay: str) -> None:
    specs = [s for d in _rendered(overlay).values() for s in _k8s.ray_cluster_specs(d)]
    assert len(specs) == 3
    for spec in specs:
        assert spec["authOptions"] == {"mode": "token", "secretName": "vidray-ray-auth"}
        head = spec["headGroupSpec"]
        # The dashboard/jobs API (8265) stays inside the cluster: no LoadBalancer, NodePort or Ingress.
        assert head.get("serviceType", "ClusterIP") == "ClusterIP"
        assert not head.get("enableIngress", False)
        # dashboard-host 0.0.0.0 is only acceptable because the token guards it.
        assert head["rayStartParams"]["num-cpus"] == "0"


def _containers(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    groups = [("head", spec["headGroupSpec"])] + [
        (g["groupName"], g) for g in spec.get("workerGroupSpecs", [])
    ]
    return [(name, c) for name, g in groups for c in g["template"]["spec"]["containers"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_sized(overlay: str) -> None:
    for doc in _rendered(overlay).values():
        for spec in _k8s.ray_cluster_specs(doc):
            for group, c in _containers(spec):
                res = c["resources"]
                for key in ("cpu", "memory"):
                    assert key in res["requests"] and key in res["limits"], (doc["kind"], group, key)
                gpu = res["limits"].get("nvidia.com/gpu")
                assert (gpu is not None) == (group == "gpu"), (doc["kind"], group)
                if gpu is not None:
                    # GPUs cannot be overcommitted: Kubernetes requires requests == limits.
                    assert res["requests"]["nvidia.com/gpu"] == gpu


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaling_groups_include_gpu(overlay: str) -> None:
    docs = _rendered(overlay)
    for key in [("RayService", "vidray-serve"), ("RayCluster", "vidray-batch")]:
        (spec,) = _k8s.ray_cluster_specs(docs[key])
        assert spec["enableInTreeAutoscaling"] is True
        groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
        assert set(groups) == {"cpu", "gpu"}
        for g in groups.values():
            assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], (key, g["groupName"])
        assert groups["gpu"]["minReplicas"] == 0, "GPU groups scale to zero"
        assert groups["gpu"]["maxReplicas"] >= 1


def test_rayservice_rolls_out_without_downtime() -> None:
    spec = _rendered("overlays/prod")[("RayService", "vidray-serve")]["spec"]
    assert spec["upgradeStrategy"]["type"] == "NewCluster"
    timeout = yaml.safe_load(spec["serveConfigV2"])["http_options"]["request_timeout_s"]
    assert spec["rayClusterDeletionDelaySeconds"] >= timeout, (
        "the old cluster must outlive its longest request"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rayjob_is_the_readme_command_and_cleans_up(overlay: str) -> None:
    spec = _rendered(overlay)[("RayJob", "vidray-train")]["spec"]
    assert spec["entrypoint"] == TRAIN_ENTRYPOINT
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] > 0
    assert spec["activeDeadlineSeconds"] > 0


def test_documented_submit_command_is_the_rayjob_entrypoint() -> None:
    """README (when it has one) and the recipe's own header submit exactly the RayJob's entrypoint."""
    docs = [_k8s.ROOT / "README.md", _k8s.ROOT / "train" / "configs" / "action_tiny_cpu.yaml"]
    found = []
    for path in docs:
        text = path.read_text() if path.is_file() else ""
        found += [
            f.rstrip(" \\")
            for f in re.findall(r"ray job submit[^\n]*?--\s+(python -m train\.run[^\n`]*)", text)
        ]
    if not found:
        pytest.skip("neither README.md nor the recipe header has a `ray job submit ... train.run` line yet")
    assert TRAIN_ENTRYPOINT in [f.strip() for f in found], found


def test_rayjob_runs_in_the_image_repo_and_shares_the_recipe_paths() -> None:
    spec = _rendered("overlays/prod")[("RayJob", "vidray-train")]["spec"]
    workdir = re.search(r"^WORKDIR\s+(\S+)", (_k8s.KUBERAY / "Dockerfile").read_text(), re.M)
    assert workdir and yaml.safe_load(spec["runtimeEnvYAML"]) == {"working_dir": workdir.group(1)}
    for _, c in _containers(spec["rayClusterSpec"]):
        assert {"name": "data", "mountPath": "/home/ray/.cache/vidray", "subPath": "vidray"} in c[
            "volumeMounts"
        ]


def test_training_config_exists_once_train_lands() -> None:
    if not (_k8s.ROOT / "train" / "run.py").is_file():
        pytest.skip("train/run.py has not landed yet")
    assert (_k8s.ROOT / "train" / "configs" / "action_tiny_cpu.yaml").is_file()


def test_every_referenced_secret_is_documented() -> None:
    documented = {
        d["metadata"]["name"]: set(d["stringData"]) for d in yaml.safe_load_all(SECRETS.read_text())
    }
    refs: set[tuple[str, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                refs.add((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for doc in _rendered("overlays/prod").values():
        walk(doc)
        for spec in _k8s.ray_cluster_specs(doc):
            refs.add((spec["authOptions"]["secretName"], "auth_token"))
    assert {("vidray-api-keys", "OPENAI_API_KEY"), ("vidray-api-keys", "GEMINI_API_KEY")} <= refs
    for name, key in refs:
        assert key in documented.get(name, set()), f"{name}/{key} is used but not in {SECRETS.name}"


def test_pods_mount_the_shared_volume_and_storage_settings() -> None:
    docs = _rendered("overlays/prod")
    assert docs[("PersistentVolumeClaim", "vidray-data")]["spec"]["accessModes"] == ["ReadWriteMany"]
    data = docs[("ConfigMap", "vidray-storage")]["data"]
    code = "\n".join(
        p.read_text()
        for pkg in ("cluster", "data_pipeline", "serve", "train")
        for p in (_k8s.ROOT / pkg).rglob("*.py")
    )
    read_by_libraries = {"AWS_REGION", "HF_HOME"}  # boto3/Lance, huggingface_hub
    unread = [k for k in data if k not in read_by_libraries and f'"{k}"' not in code]
    assert not unread, f"ConfigMap keys nothing reads: {unread}"
    assert all(v != "" for v in data.values()), "empty env values (botocore rejects AWS_ENDPOINT_URL='')"
    for doc in docs.values():
        for spec in _k8s.ray_cluster_specs(doc):
            for group, c in _containers(spec):
                assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"], (doc["kind"], group)
                assert {"configMapRef": {"name": "vidray-storage"}} in c["envFrom"]


def _cpus(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _serve_demand(serve_config: dict[str, Any], which: str) -> tuple[float, int]:
    """(CPUs, GPUs) the Serve apps ask for with every deployment at its min or max replicas."""
    cpus, gpus = 0.0, 0
    for app in serve_config["applications"]:
        for dep in app.get("deployments", []):
            replicas = dep.get("autoscaling_config", {}).get(f"{which}_replicas", dep.get("num_replicas", 1))
            cpus += replicas * dep.get("ray_actor_options", {}).get("num_cpus", 1)
        for llm in app.get("args", {}).get("llm_configs", []):
            auto = llm.get("deployment_config", {}).get("autoscaling_config", {})
            gpus += auto.get(f"{which}_replicas", 1) * llm.get("engine_kwargs", {}).get(
                "tensor_parallel_size", 1
            )
    return cpus, gpus


def _capacity(spec: dict[str, Any]) -> tuple[float, int]:
    cpus, gpus = 0.0, 0
    for g in spec["workerGroupSpecs"]:
        limits = g["template"]["spec"]["containers"][0]["resources"]["limits"]
        cpus += g["maxReplicas"] * _cpus(str(limits["cpu"]))
        gpus += g["maxReplicas"] * int(limits.get("nvidia.com/gpu", 0))
    return cpus, gpus


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_serve_apps_fit_the_worker_groups(overlay: str) -> None:
    """min_replicas must fit, or the app never turns RUNNING and a NewCluster upgrade never switches over."""
    doc = _rendered(overlay)[("RayService", "vidray-serve")]
    serve_config = yaml.safe_load(doc["spec"]["serveConfigV2"])
    cap_cpu, cap_gpu = _capacity(doc["spec"]["rayClusterConfig"])
    min_cpu, min_gpu = _serve_demand(serve_config, "min")
    assert min_cpu <= cap_cpu and min_gpu <= cap_gpu, ((min_cpu, min_gpu), (cap_cpu, cap_gpu))
    if overlay == "overlays/prod":  # prod: every Serve autoscaling ceiling is reachable
        max_cpu, max_gpu = _serve_demand(serve_config, "max")
        assert max_cpu <= cap_cpu and max_gpu <= cap_gpu, ((max_cpu, max_gpu), (cap_cpu, cap_gpu))


def test_prod_network_policy_admits_only_listed_sources_to_ray_ports() -> None:
    policy = _rendered("overlays/prod")[("NetworkPolicy", "vidray-ray-ingress")]["spec"]
    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "vidray"}}
    for rule in policy["ingress"]:
        sources = rule["from"]
        if sources == [{"podSelector": {}}]:
            continue  # pods of the same namespace (Ray's own traffic)
        assert all("namespaceSelector" in s for s in sources) and rule.get("ports"), rule
        # Outside the namespace nobody reaches the GCS (6379) or the Ray client (10001).
        assert not {p["port"] for p in rule["ports"]} & {6379, 10001}, rule


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_template_carries_the_selector_labels(overlay: str) -> None:
    """KubeRay does not copy a resource's labels to its pods; NetworkPolicy/PodMonitor need them on pods."""
    for doc in _rendered(overlay).values():
        for spec in _k8s.ray_cluster_specs(doc):
            groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
            for g in groups:
                labels = g["template"].get("metadata", {}).get("labels", {})
                assert labels.get("app.kubernetes.io/part-of") == "vidray", (
                    doc["kind"],
                    g.get("groupName", "head"),
                )
