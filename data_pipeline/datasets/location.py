"""Where a dataset lives: a name under the data dir, a local path, or an s3:// URL.

Why a resolver: the CLI and the HTTP API accept a short name (`clips`), a path (`./data/clips`) or
a URL (`s3://bucket/prefix/clips`); everything below them wants one table URI plus the storage
options Lance (and Ray Data's `read_lance`) pass to the object store. S3 credentials and the
endpoint come from the standard AWS variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...) or an
explicit `storage_options` dict, so a MinIO/Ceph/moto endpoint works the same as AWS.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cluster.config import Settings
from cluster.errors import InputError
from data_pipeline.datasets.schema import TABLE_NAME

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REMOTE_SCHEMES = ("s3://", "s3a://", "gs://", "az://", "memory://")


@dataclass(frozen=True)
class Location:
    """A resolved dataset root, its Lance table and the options the object store needs."""

    root: str
    storage_options: dict[str, str] = field(default_factory=dict)

    @property
    def table_uri(self) -> str:
        return f"{self.root.rstrip('/')}/{TABLE_NAME}"

    @property
    def is_remote(self) -> bool:
        return self.root.startswith(_REMOTE_SCHEMES)


def s3_storage_options(env: dict[str, str] | None = None) -> dict[str, str]:
    """Lance/object_store options from the standard AWS environment variables.

    `allow_http` is set only for an explicit http:// endpoint (a local S3-compatible server); AWS
    itself is always https.
    """
    env = dict(os.environ) if env is None else env
    opts: dict[str, str] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        opts["aws_endpoint"] = endpoint
        if endpoint.startswith("http://"):
            opts["allow_http"] = "true"
    for var, key in (
        ("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
        ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
        ("AWS_SESSION_TOKEN", "aws_session_token"),
    ):
        if env.get(var):
            opts[key] = env[var]
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        opts["aws_region"] = region
    return opts


def resolve(
    uri: str | Path, settings: Settings | None = None, storage_options: dict[str, str] | None = None
) -> Location:
    """Turn a dataset name, path or URL into a `Location`.

    A bare name (letters, digits, `._-`) means `<data_dir>/datasets/<name>`; anything with a `/` is
    a path; `s3://...` is remote and gets storage options from the environment, overridden by
    `storage_options`.
    """
    text = str(uri).strip()
    if not text:
        raise InputError("dataset is empty; pass a name (e.g. 'clips'), a path or an s3://bucket/prefix URL")
    if text.startswith(_REMOTE_SCHEMES):
        opts = s3_storage_options() if text.startswith(("s3://", "s3a://")) else {}
        opts.update(storage_options or {})
        return Location(root=text.rstrip("/"), storage_options=opts)
    if "://" in text:
        raise InputError(
            f"dataset URL {text!r} has an unsupported scheme; use a local path or s3://bucket/prefix"
        )
    if "/" not in text and not text.startswith("."):
        if not _NAME.match(text):
            raise InputError(f"dataset name {text!r} may only hold letters, digits, '.', '_' and '-'")
        from cluster.config import load_settings

        settings = settings or load_settings()
        return Location(
            root=str(settings.data_dir / "datasets" / text), storage_options=dict(storage_options or {})
        )
    return Location(root=str(Path(text).expanduser().resolve()), storage_options=dict(storage_options or {}))
