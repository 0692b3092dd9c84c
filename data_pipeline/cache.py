"""Content-addressed cache: each video's bytes are stored, probed and decoded once.

Why content addressing: the same video arrives as a URL, an upload and a local path, and many
jobs (transcript, QA, dataset export) want its scenes and frames. Keying everything by the sha256
of the bytes makes all of them share one copy and one set of derived results.

Layout under `root` (`settings.cache_dir`):

    videos/<sha[:2]>/<sha>/video.<ext>      the file (read-only) ...
    videos/<sha[:2]>/<sha>/metadata.json    ... and its probe result
    index/<key[:2]>/<key>.json              a source (URL + format options, or original bytes) -> sha
    artifacts/<sha[:2]>/<sha>/<kind>/<params-hash>/   derived results: files + .value.json + .params.json
    tmp/                                    staging: partial downloads and half-built artifacts
    locks/                                  one lock file per key being produced

Atomicity: everything is built in `tmp/` (same filesystem) and appears with one `os.rename`, so
readers see a complete entry or none. Concurrency: producers take a per-key `fcntl.flock`, so two
processes asking for the same thing produce it once and the second gets the first's result; the
rename is also safe on its own (a loser discards its copy).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster import metric_names as mn
from cluster.errors import InputError

logger = logging.getLogger("data_pipeline.cache")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KIND = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_STALE_TMP_S = 24 * 3600  # staging dirs older than a day belong to crashed processes


def canonical_key(doc: Mapping[str, Any]) -> str:
    """sha256 of `doc` as canonical JSON: the same options in any order give the same key."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CachedVideo:
    path: Path
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Artifact:
    """A derived result: `path` is its directory, `value` what `compute` returned (JSON)."""

    path: Path
    value: Any
    cached: bool


def _check_sha(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise InputError(f"{sha256!r} is not a sha256 hex digest (64 lowercase hex characters)")
    return sha256


def _write_json_atomic(path: Path, doc: Any, tmp_dir: Path) -> None:
    tmp = tmp_dir / f"{path.name}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


class Cache:
    """The cache rooted at `root`; cheap to construct, safe to share between processes."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.videos_dir = self.root / "videos"
        self.index_dir = self.root / "index"
        self.artifacts_dir = self.root / "artifacts"
        self.tmp_dir = self.root / "tmp"
        self.locks_dir = self.root / "locks"
        for d in (self.videos_dir, self.index_dir, self.artifacts_dir, self.tmp_dir, self.locks_dir):
            d.mkdir(parents=True, exist_ok=True)

    # --- bookkeeping ------------------------------------------------------------------------------

    def record(self, kind: str, hit: bool, **fields: Any) -> None:
        """Log one lookup and bump `vidray_cache_{hits,misses}_total{kind=...}`."""
        mn.get(mn.CACHE_HITS if hit else mn.CACHE_MISSES).labels(kind=kind).inc()
        logger.info(
            "cache %s", "hit" if hit else "miss", extra={"cache_kind": kind, "cache_hit": hit, **fields}
        )

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Exclusive cross-process lock for producing `name` (blocks until free; freed on crash)."""
        safe = hashlib.sha256(name.encode()).hexdigest()[:32]
        with open(self.locks_dir / f"{safe}.lock", "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def staging(self, prefix: str = "stage") -> Iterator[Path]:
        """A fresh directory under tmp/ (same filesystem as the cache), removed on exit."""
        path = self.tmp_dir / f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        path.mkdir()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def cleanup_stale(self, max_age_s: float = _STALE_TMP_S) -> int:
        """Remove staging leftovers of crashed processes; returns how many were removed."""
        removed = 0
        cutoff = time.time() - max_age_s
        for entry in self.tmp_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink()
                    removed += 1
        return removed

    # --- videos -----------------------------------------------------------------------------------

    def video_dir(self, sha256: str) -> Path:
        _check_sha(sha256)
        return self.videos_dir / sha256[:2] / sha256

    def get_video(self, sha256: str) -> CachedVideo | None:
        """The stored video with these bytes, or None. Does not count as a hit (callers decide)."""
        d = self.video_dir(sha256)
        try:
            metadata = json.loads((d / "metadata.json").read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return None
        path = d / str(metadata.get("_file", ""))
        if not metadata.get("_file") or not path.is_file():
            return None
        return CachedVideo(path, {k: v for k, v in metadata.items() if not k.startswith("_")})

    def put_video(
        self, src: Path, sha256: str, metadata: Mapping[str, Any], *, ext: str = "mp4"
    ) -> CachedVideo:
        """Move `src` (a file under tmp/) into the cache as the video with hash `sha256`.

        If another process stored the same bytes first, `src` is deleted and theirs is returned.
        """
        final = self.video_dir(sha256)
        ext = re.sub(r"[^a-z0-9]", "", ext.lower())[:8] or "bin"
        with self.lock(f"video:{sha256}"):
            existing = self.get_video(sha256)
            if existing is not None:
                src.unlink(missing_ok=True)
                return existing
            with self.staging("video") as stage:
                name = f"video.{ext}"
                os.replace(src, stage / name)
                os.chmod(stage / name, 0o444)
                doc = {**metadata, "_file": name, "_stored_at": time.time()}
                (stage / "metadata.json").write_text(json.dumps(doc, indent=1, sort_keys=True, default=str))
                final.parent.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(final, ignore_errors=True)  # an unreadable leftover (no valid metadata)
                os.rename(stage, final)
        stored = self.get_video(sha256)
        if stored is None:  # pragma: no cover - the rename above either succeeded or found a copy
            raise OSError(f"storing video {sha256} in {self.root} failed")
        return stored

    def remove_video(self, sha256: str) -> bool:
        """Drop a video and its artifacts (index entries pointing at it are then ignored).

        Each directory is first renamed into tmp/ (atomic), so readers never see half of it.
        Returns whether the video was stored.
        """
        found = False
        with self.lock(f"video:{sha256}"):
            for d in (self.video_dir(sha256), self.artifacts_dir / sha256[:2] / sha256):
                trash = self.tmp_dir / f"trash-{uuid.uuid4().hex[:12]}"
                try:
                    os.rename(d, trash)
                except FileNotFoundError:
                    continue
                found = found or d.parent.parent == self.videos_dir
                shutil.rmtree(trash, ignore_errors=True)
        return found

    def usage(self) -> dict[str, int]:
        """Bytes on disk per section (videos, artifacts, index, tmp): for status pages and eviction."""
        out: dict[str, int] = {}
        for name, d in (("videos", self.videos_dir), ("artifacts", self.artifacts_dir),
                        ("index", self.index_dir), ("tmp", self.tmp_dir)):  # fmt: skip
            total = 0
            for p in d.rglob("*"):
                with contextlib.suppress(FileNotFoundError):
                    if p.is_file():
                        total += p.stat().st_size
            out[name] = total
        return out

    # --- source index (URL + options, or original bytes -> sha) -----------------------------------

    def _index_path(self, key: str) -> Path:
        return self.index_dir / key[:2] / f"{key}.json"

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The index entry for `key` (see `canonical_key`) whose video is still stored, or None."""
        try:
            entry = json.loads(self._index_path(key).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not _SHA256.match(sha) or self.get_video(sha) is None:
            return None
        return dict(entry)

    def remember(self, key: str, sha256: str, **extra: Any) -> None:
        """Point `key` at the stored video `sha256` (with extra fields such as yt-dlp's title)."""
        _check_sha(sha256)
        path = self._index_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(path, {**extra, "sha256": sha256, "stored_at": time.time()}, self.tmp_dir)

    # --- derived artifacts ------------------------------------------------------------------------

    def artifact_dir(self, sha256: str, kind: str, params: Mapping[str, Any]) -> Path:
        _check_sha(sha256)
        if not _KIND.match(kind):
            raise InputError(f"artifact kind {kind!r} must be lowercase letters, digits, '_', '.', '-'")
        return self.artifacts_dir / sha256[:2] / sha256 / kind / canonical_key(params)[:24]

    def get_or_compute(
        self,
        sha256: str,
        kind: str,
        params: Mapping[str, Any],
        compute: Callable[[Path], Any],
    ) -> Artifact:
        """The artifact `kind` with `params` of video `sha256`; computed once across processes.

        `compute(out_dir)` writes files into the empty `out_dir` and may return a JSON-serialisable
        value (e.g. scene boundaries); both appear atomically at `Artifact.path`. If `compute`
        raises, nothing is stored and the error propagates.
        """
        final = self.artifact_dir(sha256, kind, params)
        found = self._read_artifact(final)
        if found is not None:
            self.record(kind, True, sha256=sha256, params=dict(params))
            return found
        with self.lock(f"artifact:{final.relative_to(self.root)}"):
            found = self._read_artifact(final)
            if found is not None:  # another process finished it while we waited
                self.record(kind, True, sha256=sha256, params=dict(params))
                return found
            self.record(kind, False, sha256=sha256, params=dict(params))
            with self.staging(f"art-{kind}") as stage:
                out = stage / "out"
                out.mkdir()
                value = compute(out)
                try:
                    text = json.dumps(value)
                except (TypeError, ValueError) as e:
                    raise TypeError(f"compute for artifact {kind!r} returned a non-JSON value: {e}") from e
                (out / ".params.json").write_text(json.dumps(dict(params), sort_keys=True, default=str))
                (out / ".value.json").write_text(text)
                final.parent.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(final, ignore_errors=True)  # an unreadable leftover (no .value.json)
                os.rename(out, final)
        return Artifact(final, value, cached=False)

    @staticmethod
    def _read_artifact(path: Path) -> Artifact | None:
        try:
            value = json.loads((path / ".value.json").read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return None
        return Artifact(path, value, cached=True)
