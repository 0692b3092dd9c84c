"""Fixtures for dataset tests: small generated videos and a real S3-compatible server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vidray import samples

COLORS = ("red", "green", "blue")  # one second each in `rgb`, so a frame's colour tells its time


@dataclass
class DatasetMedia:
    a: Path  # 4 s testsrc2 + sine, 320x240
    b: Path  # 3 s smptebars, no audio
    rgb: Path  # 1 s red, 1 s green, 1 s blue (160x120, 25 fps)
    scenes: samples.SceneVideo  # cuts at known times


@pytest.fixture(scope="session")
def dmedia(tmp_path_factory: pytest.TempPathFactory) -> DatasetMedia:
    d = tmp_path_factory.mktemp("dataset-media")
    rgb = d / "rgb.mp4"
    inputs: list[str] = []
    for c in COLORS:
        inputs += ["-f", "lavfi", "-i", f"color=c={c}:s=160x120:r=25:d=1"]
    samples._ffmpeg(
        [
            *inputs,
            "-filter_complex",
            "[0][1][2]concat=n=3:v=1:a=0",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "25",
            str(rgb),
        ]
    )
    return DatasetMedia(
        a=samples.make_video(d / "a.mp4", duration=4),
        b=samples.make_video(d / "b.mp4", duration=3, source="smptebars", acodec=None),
        rgb=rgb,
        scenes=samples.make_scene_video(d / "scenes.mp4"),
    )


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    storage_options: dict[str, str]
    client: object  # boto3 S3 client


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 in server mode on 127.0.0.1 (a real HTTP S3 API, not an in-process mock)."""
    pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds)
        client.create_bucket(Bucket="vidray-datasets")
        yield S3Server(
            endpoint=endpoint,
            bucket="vidray-datasets",
            client=client,
            storage_options={
                "aws_endpoint": endpoint,
                "allow_http": "true",
                "aws_region": "us-east-1",
                **creds,
            },
        )
    finally:
        server.stop()
