from __future__ import annotations

from pathlib import Path

import pytest

from cluster.config import load_settings, parse_overrides
from cluster.errors import InputError, UnavailableError
from cluster.optional import available, require


def test_precedence_file_env_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ingest:\n  max_height: 480\n  allow_hosts: [a.example]\noffline: false\n")
    s = load_settings(cfg, env={"VIDRAY_ALLOW_HOSTS": "127.0.0.1, 10.0.0.0/8", "VIDRAY_OFFLINE": "1"})
    assert s.ingest.max_height == 480
    assert s.ingest.allow_hosts == ["127.0.0.1", "10.0.0.0/8"]  # env beats the file
    assert s.offline is True
    s = load_settings(cfg, ["ingest.max_height=720", "ingest.allow_hosts=[x]"], env={})
    assert s.ingest.max_height == 720 and s.ingest.allow_hosts == ["x"]


def test_unknown_key_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ingest:\n  max_hieght: 480\n")
    with pytest.raises(InputError, match="ingest.max_hieght"):
        load_settings(cfg, env={})


def test_bad_values_and_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="ingest.max_download_bytes"):
        load_settings(None, ["ingest.max_download_bytes=-1"], env={})
    with pytest.raises(InputError, match="does not exist"):
        load_settings(tmp_path / "missing.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(InputError, match="mapping"):
        load_settings(bad, env={})
    with pytest.raises(InputError, match="key=value"):
        parse_overrides(["novalue"])


def test_optional_names_the_extra() -> None:
    assert available("json")
    assert not available("definitely_not_a_module_xyz")
    with pytest.raises(UnavailableError, match=r"pip install 'vidray\[gpu\]'"):
        require("definitely_not_a_module_xyz", "gpu")
