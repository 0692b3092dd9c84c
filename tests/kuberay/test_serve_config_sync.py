"""The RayService runs exactly serve/configs/cluster.yaml (kuberay/sync_serve_config.py keeps them equal)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.kuberay import _k8s


def _sync() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_serve_config", _k8s.KUBERAY / "sync_serve_config.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sync_serve_config", module)
    spec.loader.exec_module(module)
    return module


def test_rayservice_embeds_serve_cluster_config() -> None:
    sync = _sync()
    if not sync.SERVE_CONFIG.is_file():
        pytest.skip(f"{sync.SERVE_CONFIG.relative_to(_k8s.ROOT)} does not exist yet (SERVE engineer's file)")
    source = sync.SERVE_CONFIG.read_text()
    embedded = sync.embedded(sync.RAYSERVICE.read_text())
    assert yaml.safe_load(embedded) == yaml.safe_load(source), "run: python kuberay/sync_serve_config.py"
    assert embedded == source.rstrip("\n") + "\n", "run: python kuberay/sync_serve_config.py"


def test_render_replaces_only_the_block(tmp_path: Path) -> None:
    sync = _sync()
    manifest = sync.RAYSERVICE.read_text()
    config = "applications:\n  - name: a\n\n    import_path: x:y  # note\nproxy_location: EveryNode\n"
    out = sync.render(manifest, config)
    assert sync.embedded(out) == config
    (s0, e0), (s1, e1) = _span(manifest), _span(out)
    assert out[:s1] == manifest[:s0] and out[e1:] == manifest[e0:], "text outside the block changed"
    assert sync.render(out, config) == out  # idempotent
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert not [e for d in docs for e in _k8s.errors(d)]


def _span(text: str) -> tuple[int, int]:
    m = _sync()._BLOCK.search(text)
    assert m
    return m.start("body"), m.end("body")


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    sync = _sync()
    manifest = tmp_path / "rayservice.yaml"
    manifest.write_text(sync.RAYSERVICE.read_text())
    config = tmp_path / "cluster.yaml"
    config.write_text("applications:\n  - name: other\n    import_path: a:b\n")
    args = ["--serve-config", str(config), "--manifest", str(manifest)]
    assert sync.main([*args, "--check"]) == 1
    assert sync.main(args) == 0
    assert sync.main([*args, "--check"]) == 0
    with pytest.raises(ValueError, match="empty"):
        sync.render(manifest.read_text(), "  \n")
