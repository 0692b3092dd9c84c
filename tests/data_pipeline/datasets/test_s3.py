"""A dataset on a real S3-compatible server (moto in server mode on 127.0.0.1), end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.errors import InputError, NotFoundError
from data_pipeline.datasets.io_formats import export
from data_pipeline.datasets.location import resolve, s3_storage_options
from data_pipeline.datasets.reader import ClipDataset
from data_pipeline.datasets.schema import ClipSpec
from data_pipeline.datasets.store import VideoDataset

pytest.importorskip("lance")


def test_storage_options_from_aws_environment() -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_REGION": "eu-west-1",
    }
    assert s3_storage_options(env) == {
        "aws_endpoint": "http://127.0.0.1:9000",
        "allow_http": "true",
        "aws_access_key_id": "k",
        "aws_secret_access_key": "s",
        "aws_region": "eu-west-1",
    }
    assert "allow_http" not in s3_storage_options({"AWS_ENDPOINT_URL": "https://s3.example.com"})
    assert resolve("s3://b/p/", storage_options={"x": "1"}).table_uri == "s3://b/p/items.lance"


def test_s3_round_trip(s3_server, dmedia, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Configure through the standard AWS variables, as a user would.
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    for k, v in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(k, v)
    uri = f"s3://{s3_server.bucket}/team/pets"
    with pytest.raises(NotFoundError):
        VideoDataset.open(uri)
    ds = VideoDataset.create(uri)
    with pytest.raises(InputError, match="already exists"):
        VideoDataset.create(uri)
    r = ds.add_video(
        dmedia.a, clips=[ClipSpec(start=0, end=2, label="bars"), ClipSpec(start=2, end=4, label="x")]
    )
    ds.tag("v1")
    ds.delete_video(r.video_sha256)
    ds.add_video(dmedia.b, clips=[ClipSpec(start=0, end=3, label="smpte")])

    keys = [o["Key"] for o in s3_server.client.list_objects_v2(Bucket=s3_server.bucket)["Contents"]]
    assert any(k.startswith("team/pets/items.lance/_versions/") for k in keys)
    assert any(k.endswith(".blob") or k.endswith(".lance") for k in keys)

    again = VideoDataset.open(uri)  # a fresh handle reads everything back from the server
    assert [c.label for c in again.clips()] == ["smpte"]
    assert again.video_bytes(again.videos()[0].sha256) == dmedia.b.read_bytes()
    old = again.checkout("v1")
    assert sorted(str(c.label) for c in old.clips()) == ["bars", "x"]
    assert old.video_bytes(r.video_sha256) == dmedia.a.read_bytes()
    d = again.diff("v1")
    assert d.removed_videos == [r.video_sha256] and len(d.added_clips) == 1

    out = export(old, tmp_path / "old.jsonl")
    assert out["records"] == 2
    item = ClipDataset(uri, version="v1", num_frames=2, size=16)[0]
    assert item["frames"].shape == (2, 16, 16, 3)
