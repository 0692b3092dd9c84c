"""`vidray dataset ...` end to end through the CLI entry point, with --json output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vidray.cli import main

pytest.importorskip("lance")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code = main(["dataset", *argv, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_dataset_cli_flow(data_dir: Path, dmedia, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "create", "pets")
    added = run(
        capsys,
        "add",
        "pets",
        str(dmedia.a),
        "--clip",
        "0:2",
        "--clip",
        "2:4",
        "--label",
        "bars",
        "--span",
        "0.5:1:tone",
        "--frames",
        "2x16",
    )
    first, second = added["results"][0]["clip_ids"]
    sha = added["results"][0]["video_sha256"]
    run(capsys, "add", "pets", str(dmedia.scenes.path), "--split", "val")
    assert run(capsys, "tag", "pets", "v1")["tag"] == "v1"

    clips = run(capsys, "ls", "pets", "--label", "bars")
    assert [c["id"] for c in clips] == [first, second] and clips[0]["spans"][0]["label"] == "tone"
    assert len(run(capsys, "ls", "pets", "--videos")) == 2

    drafted = run(capsys, "label", "pets", "--auto", "--no-analysis")
    assert len(drafted["drafted"]) == 1
    draft_id = drafted["drafted"][0]
    assert [c["id"] for c in run(capsys, "ls", "pets", "--status", "draft")] == [draft_id]
    run(capsys, "label", "pets", draft_id, "--fix", "--label", "cuts", "--qa", "How many cuts?=3")
    run(capsys, "label", "pets", first, "--text", "colour bars with a tone", "--draft")
    assert run(capsys, "label", "pets", "--accept", "--all-drafts")["accepted"] == [first]

    diff = run(capsys, "diff", "pets", "v1")
    assert sorted(diff["changed_clips"]) == sorted([first, draft_id])
    versions = run(capsys, "versions", "pets")
    assert any(v["tags"] == ["v1"] for v in versions) and versions[-1]["operation"] == "Update"

    out = tmp_path / "exp" / "pets.jsonl"
    assert run(capsys, "export", "pets", str(out), "--with-videos")["records"] == 3
    assert run(capsys, "export", "pets", str(tmp_path / "exp" / "k.csv"))["records"] == 3
    assert run(capsys, "export", "pets", str(tmp_path / "exp" / "l.json"), "--version", "v1")["records"] == 0

    run(capsys, "create", "copy")
    rep = run(capsys, "import", "copy", str(out))
    assert rep["clips_added"] == 3 and rep["videos_added"] == 2

    old = run(capsys, "checkout", "pets", "v1")
    assert old["clips"] == 3 and old["status"] == {"accepted": 2, "unlabeled": 1}
    deleted = run(capsys, "rm", "pets", "--video", sha, "--purge", "--untag")
    assert deleted["clips_deleted"] == 2 and deleted["purged"]
    assert run(capsys, "info", "pets")["videos"] == 1 and run(capsys, "tag", "pets") == {}


def test_dataset_cli_errors(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dataset", "ls", "nothing-here"]) == 3
    assert "vidray dataset create" in capsys.readouterr().err
    assert main(["dataset", "create", "x"]) == 0
    assert main(["dataset", "add", "x", "/no/such.mp4"]) == 2
    assert main(["dataset", "add", "x", "--clip", "a:b", "/no/such.mp4"]) == 2
    assert main(["dataset", "label", "x"]) == 2
    assert "--auto" in capsys.readouterr().err
