"""cluster/autoscaler.yaml is a valid `ray up` config and keeps Ray's ports private with token auth."""

from __future__ import annotations

import copy
import ipaddress
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "cluster" / "autoscaler.yaml"


def _config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


def _schema() -> dict[str, Any]:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def test_valid_against_rays_schema() -> None:
    jsonschema.validate(_config(), _schema())


def test_a_misspelt_key_is_caught() -> None:
    bad = copy.deepcopy(_config())
    bad["idle_timeout_minute"] = 5
    with pytest.raises(jsonschema.ValidationError, match="idle_timeout_minute"):
        jsonschema.validate(bad, _schema())


def test_cpu_and_gpu_worker_types() -> None:
    types = _config()["available_node_types"]
    head = types[_config()["head_node_type"]]
    assert head["resources"]["CPU"] == 0, "the head runs no tasks"
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    cpu = [t for n, t in types.items() if n != _config()["head_node_type"] and not t["resources"].get("GPU")]
    assert gpu and cpu
    assert all(t["min_workers"] == 0 for t in gpu), "GPU workers scale from zero"
    assert sum(t["max_workers"] for t in gpu + cpu) <= _config()["max_workers"] + 8


def test_token_auth_on_every_node_and_private_dashboard() -> None:
    cfg = _config()
    commands = " ".join(cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"])
    starts = [c for c in commands.split(";") if "ray start" in c]
    assert len(starts) == 2 and all("RAY_AUTH_MODE=token" in c for c in starts)
    assert "--dashboard-host=127.0.0.1" in " ".join(cfg["head_start_ray_commands"])
    assert "-e RAY_AUTH_MODE=token" in cfg["docker"]["run_options"]
    assert "/home/ray/.ray/auth_token" in cfg["file_mounts"]


def test_only_ssh_is_open_and_not_to_the_world() -> None:
    perms = _config()["provider"]["security_group"]["IpPermissions"]
    for p in perms:
        assert (p["FromPort"], p["ToPort"]) == (22, 22), p
        for r in p["IpRanges"]:
            assert ipaddress.ip_network(r["CidrIp"]).prefixlen >= 8, "SSH open to the whole internet"
