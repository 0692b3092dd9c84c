"""Ingest: any video a user points at (URL, local path, uploaded bytes) -> one cached, probed file.

Start here. `ingest()` sorts the source into one of three flows that end the same way:

    URL    check_url (SSRF) -> URL index hit? -> yt-dlp under guarded_downloads, caps enforced while
           downloading -> hash -> _finish
    path   hash -> bytes hit? -> copy into staging -> _finish
    upload (bytes or an open file) copy into staging under the size cap, hashing as it goes ->
           bytes hit? -> _finish
    _finish: probe (refuses non-video, corrupt, unsupported) -> duration cap -> optional normalise ->
           store in the content-addressed cache (atomic rename) -> remember the source

Everything is staged under the cache's tmp/ and renamed into place, so a refused, failed or
interrupted ingest leaves nothing behind. Sources being produced are locked across processes, so
two workers ingesting the same URL download it once.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import shutil
import time
import urllib.parse
from pathlib import Path
from typing import Any, BinaryIO, cast

from pydantic import BaseModel, ConfigDict

from cluster import metric_names as mn
from cluster.config import IngestSettings, Settings, load_settings
from cluster.errors import InputError, PolicyError, TooLargeError, VidrayError
from data_pipeline.cache import Cache, CachedVideo, canonical_key
from data_pipeline.download import Progress, download, format_options
from data_pipeline.net_guard import AllowList, check_url
from data_pipeline.normalize import needs_normalize, normalize_video
from data_pipeline.probe import VideoMetadata, probe, sha256_file

logger = logging.getLogger("data_pipeline.ingest")

_COPY_BLOCK = 1 << 20  # uploads are copied and hashed 1 MiB at a time
_INFO_FIELDS = ("title", "uploader", "webpage_url", "upload_date")
_URL_LIKE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:(//|[^\\/])")  # scheme:// or data:, mailto:...
_TEXT_CONTAINERS = frozenset({"tty", "srt", "ass", "webvtt", "lrc", "jacosub", "microdvd", "subviewer"})
_TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})
_CONTAINER_EXT = {
    "mov,mp4,m4a,3gp,3g2,mj2": "mp4",
    "avi": "avi",
    "flv": "flv",
    "mpegts": "ts",
    "mpeg": "mpg",
    "ogg": "ogv",
    "asf": "wmv",
    "gif": "gif",
}


class IngestedVideo(BaseModel):
    """One ingested video: where its (read-only) cached file is and what it is."""

    model_config = ConfigDict(extra="forbid")

    video_id: str
    path: Path
    metadata: VideoMetadata
    cached: bool
    source: str


def video_id_for(sha256: str) -> str:
    """The public id of a stored video: the first 16 hex characters of its content hash."""
    return sha256[:16]


# --- entry point ----------------------------------------------------------------------------------


def ingest(
    source: str | Path | bytes | BinaryIO,
    settings: Settings | None = None,
    *,
    filename: str | None = None,
    progress: Progress | None = None,
    deadline_s: float | None = None,
    allow_paths: bool = True,
) -> IngestedVideo:
    """Fetch, check, probe and cache one video; the second time, answer from the cache.

    Args:
        source: an http(s) URL (a page any yt-dlp extractor knows, an HTML page with a `<video>`,
            or a direct file link), a local file path, the raw bytes of an upload, or an open binary
            file (an upload spooled to disk; copied in chunks, the size cap checked as it goes).
        settings: defaults to `load_settings()` (env and config file).
        filename: for uploads, the file's name (used in messages and the stored extension).
        allow_paths: servers pass False so a string from a client can never name a file on the
            server (it must then be an http(s) URL); the CLI keeps the default.
        progress: called with small dicts: `{"stage": "download", "downloaded_bytes", "total_bytes",
            "fraction", "speed", "eta"}`, `{"stage": "probe"}`, `{"stage": "normalize"}`,
            `{"stage": "done", "video_id", "cached"}`. An exception it raises cancels the ingest
            (it propagates unchanged; nothing is stored).
        deadline_s: abort a download still running after this many seconds (a slow-drip server
            never trips the per-read socket timeout).

    Raises:
        PolicyError: a refused URL (scheme, private/loopback/metadata address, redirect to one).
        TooLargeError: over `ingest.max_download_bytes` or `ingest.max_duration_s`.
        InputError: not found, not a video, corrupt, unsupported codec, unreachable or stalled.
    """
    settings = settings or load_settings()
    cache = _cache(settings)
    emit = _emitter(progress)
    start = time.perf_counter()
    if isinstance(source, bytes | bytearray | memoryview) or hasattr(source, "read"):
        kind = "upload"
    elif isinstance(source, Path) or not _URL_LIKE.match(str(source).strip()):
        kind = "path"
    else:
        kind = "url"
    try:
        if kind == "path" and not allow_paths:
            raise PolicyError(
                f"{_shown(str(source))!r} is not an http(s) URL, and local paths are not accepted here; "
                "pass a full URL like https://example.com/video.mp4 or upload the file"
            )
        if isinstance(source, bytes | bytearray | memoryview):
            result = _ingest_upload(io.BytesIO(source), filename, settings, cache, emit)
        elif kind == "upload":
            result = _ingest_upload(cast(BinaryIO, source), filename, settings, cache, emit)
        elif kind == "path":
            result = _ingest_path(Path(cast(str | Path, source)), settings, cache, emit)
        else:
            result = _ingest_url(str(source).strip(), settings, cache, emit, deadline_s)
    except Exception as e:
        error = type(e).__name__ if isinstance(e, VidrayError) else "bug"
        mn.get(mn.STAGE_ERRORS).labels(stage="ingest", error=error).inc()
        raise
    mn.get(mn.INGEST_TOTAL).labels(source=kind, cached=str(result.cached).lower()).inc()
    mn.get(mn.INGEST_SECONDS).labels(source=kind).observe(time.perf_counter() - start)
    emit({"stage": "done", "video_id": result.video_id, "cached": result.cached})
    return result


_cleaned: set[Path] = set()


def _cache(settings: Settings) -> Cache:
    cache = Cache(settings.cache_dir)
    if cache.root not in _cleaned:  # once per process: staging left by crashed processes
        _cleaned.add(cache.root)
        cache.cleanup_stale()
    return cache


def _emitter(progress: Progress | None) -> Progress:
    def emit(event: dict[str, Any]) -> None:
        if progress is not None:
            progress(event)

    return emit


# --- the three flows ------------------------------------------------------------------------------


def _ingest_path(path: Path, settings: Settings, cache: Cache, emit: Progress) -> IngestedVideo:
    path = path.expanduser()
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        if not path.exists() and re.match(r"^(www\.)?[\w-]+(\.[\w-]+)+(/|$)", str(path)):
            raise InputError(f"{path} does not exist as a file; if it is a web address, write https://{path}")
        raise InputError(f"{path} {what}; pass a path to a video file, an http(s) URL, or upload the bytes")
    source = str(path.resolve())
    sha = sha256_file(path)
    hit = _bytes_hit(cache, sha, settings, source=source, info=None)
    if hit is not None:
        return hit
    with cache.staging("path") as stage:
        staged = stage / _safe_name(path.name)
        shutil.copyfile(path, staged)
        return _finish(cache, staged, sha, settings, source=source, info=None, emit=emit, cached_ok=True)


def _ingest_upload(
    stream: BinaryIO, filename: str | None, settings: Settings, cache: Cache, emit: Progress
) -> IngestedVideo:
    stream_name = getattr(stream, "name", None)  # an open file's path; an int for some temp files
    name = _safe_name(filename or (stream_name if isinstance(stream_name, str) else None) or "upload.bin")
    source = f"upload:{name}"
    cap = settings.ingest.max_download_bytes
    with cache.staging("upload") as stage:
        staged = stage / name
        digest = hashlib.sha256()
        size = 0
        with open(staged, "wb") as out:
            while block := stream.read(_COPY_BLOCK):
                size += len(block)
                if size > cap:
                    raise TooLargeError(
                        f"the upload {name} is over the limit of {cap:,} bytes "
                        "(ingest.max_download_bytes); send a smaller file or raise the limit"
                    )
                digest.update(block)
                out.write(block)
        if size == 0:
            raise InputError(f"the upload {name} is empty (0 bytes); send the video file's contents")
        sha = digest.hexdigest()
        hit = _bytes_hit(cache, sha, settings, source=source, info=None)
        if hit is not None:
            return hit
        return _finish(cache, staged, sha, settings, source=source, info=None, emit=emit, cached_ok=True)


def _ingest_url(
    url: str, settings: Settings, cache: Cache, emit: Progress, deadline_s: float | None
) -> IngestedVideo:
    allow = AllowList.parse(settings.ingest.allow_hosts)
    check_url(url, allow)
    key = canonical_key(
        {"v": 1, "url": url, **format_options(settings.ingest), "normalize": _normalize_key(settings)}
    )
    hit = _url_hit(cache, key, url, settings)
    if hit is not None:
        return hit
    with cache.lock(f"url:{key}"):
        hit = _url_hit(cache, key, url, settings)  # another process may have finished meanwhile
        if hit is not None:
            return hit
        cache.record("url", False, url=url)
        with cache.staging("download") as stage:
            path, info = download(
                url, stage, settings.ingest, allow=allow, progress=emit, deadline_s=deadline_s
            )
            # Named after the URL so probe's messages name what the user asked for.
            url_name = _safe_name(Path(urllib.parse.urlsplit(url).path).name or "download")
            if not Path(url_name).suffix:
                url_name += path.suffix
            path = path.rename(stage / url_name)
            sha = sha256_file(path)
            video = _finish(cache, path, sha, settings, source=url, info=info, emit=emit, cached_ok=False)
        cache.remember(key, video.metadata.sha256, source=url, **_info_fields(info))
        return video


# --- cache lookups --------------------------------------------------------------------------------


def _normalize_key(settings: Settings) -> dict[str, Any] | None:
    ns = settings.ingest.normalize
    return ns.model_dump() if ns.enabled else None


def _bytes_key(sha: str, settings: Settings) -> str:
    return canonical_key({"v": 1, "bytes": sha, "normalize": _normalize_key(settings)})


def _stored_for_bytes(cache: Cache, sha: str, settings: Settings) -> CachedVideo | None:
    if settings.ingest.normalize.enabled:
        entry = cache.lookup(_bytes_key(sha, settings))
        return cache.get_video(entry["sha256"]) if entry else None
    return cache.get_video(sha)


def _bytes_hit(
    cache: Cache, sha: str, settings: Settings, *, source: str, info: dict[str, Any] | None
) -> IngestedVideo | None:
    stored = _stored_for_bytes(cache, sha, settings)
    if stored is None:
        return None
    video = _from_cache(stored, source, info, settings, cached=True)
    cache.record("video", True, sha256=sha, source=source, video_id=video.video_id)
    return video


def _url_hit(cache: Cache, key: str, url: str, settings: Settings) -> IngestedVideo | None:
    entry = cache.lookup(key)
    stored = cache.get_video(entry["sha256"]) if entry else None
    if entry is None or stored is None:
        return None
    video = _from_cache(stored, url, entry, settings, cached=True)
    cache.record("url", True, url=url, video_id=video.video_id)
    return video


def _from_cache(
    stored: CachedVideo, source: str, info: dict[str, Any] | None, settings: Settings, *, cached: bool
) -> IngestedVideo:
    meta = VideoMetadata.model_validate(stored.metadata)
    update: dict[str, Any] = {"source": source}
    if info:
        update.update({k: info[k] for k in _INFO_FIELDS if info.get(k) is not None})
    meta = meta.model_copy(update=update)
    _check_duration(meta, settings.ingest, source)  # caps may be stricter than when it was stored
    return IngestedVideo(
        video_id=video_id_for(meta.sha256), path=stored.path, metadata=meta, cached=cached, source=source
    )


# --- the common ending ----------------------------------------------------------------------------


def _finish(
    cache: Cache,
    staged: Path,
    sha: str,
    settings: Settings,
    *,
    source: str,
    info: dict[str, Any] | None,
    emit: Progress,
    cached_ok: bool,
) -> IngestedVideo:
    """Probe, check, maybe normalise, and store `staged` (a file in a staging dir)."""
    with cache.lock(f"bytes:{sha}"):
        stored = _stored_for_bytes(cache, sha, settings)
        if stored is not None:  # same bytes as a video we hold (another URL, or a parallel ingest)
            cache.record("video", True, sha256=sha, source=source)
            return _from_cache(stored, source, info, settings, cached=cached_ok)
        cache.record("video", False, sha256=sha, source=source)
        emit({"stage": "probe"})
        t0 = time.perf_counter()
        try:
            meta = probe(staged, sha256=sha, info=info)
        except InputError as e:
            text = str(e).replace(str(staged), staged.name)  # no cache paths in user-facing messages
            raise InputError(f"{text} (source: {_shown(source)})") from e
        mn.get(mn.STAGE_SECONDS).labels(stage="probe").observe(time.perf_counter() - t0)
        meta = meta.model_copy(update={"source": source})
        _check_is_video(meta, staged.name, source)
        _check_duration(meta, settings.ingest, source)
        ns = settings.ingest.normalize
        if needs_normalize(meta, ns):
            emit({"stage": "normalize"})
            out = staged.with_name("normalized.mp4")
            normalize_video(staged, out, ns, duration_s=meta.duration_s)
            staged.unlink()
            meta = probe(out, info=info).model_copy(update={"source": source})
            staged, ext = out, "mp4"
        else:
            ext = _extension(meta, staged.name)
        stored = cache.put_video(staged, meta.sha256, meta.model_dump(mode="json"), ext=ext)
        if ns.enabled:
            cache.remember(_bytes_key(sha, settings), meta.sha256, source=source)
    logger.info(
        "ingested %s",
        _shown(source),
        extra={"video_id": video_id_for(meta.sha256), "size_bytes": meta.size_bytes},
    )
    return IngestedVideo(
        video_id=video_id_for(meta.sha256), path=stored.path, metadata=meta, cached=False, source=source
    )


def _check_is_video(meta: VideoMetadata, name: str, source: str) -> None:
    """FFmpeg 'decodes' text (the tty demuxer renders it as ANSI art) and single images; refuse those."""
    fmt = meta.container
    if fmt in _TEXT_CONTAINERS or meta.video_codec in _TEXT_CODECS:
        raise InputError(
            f"{name} is text, not a video (FFmpeg read it as {fmt}/{meta.video_codec}); "
            f"pass a video file (source: {_shown(source)})"
        )
    if (fmt.endswith("_pipe") or fmt == "image2") and meta.num_frames <= 1:
        raise InputError(
            f"{name} is a still image ({fmt}), not a video; pass a video file (source: {_shown(source)})"
        )


def _check_duration(meta: VideoMetadata, ingest_settings: IngestSettings, source: str) -> None:
    cap = ingest_settings.max_duration_s
    if meta.duration_s > cap:
        raise TooLargeError(
            f"{_shown(source)} lasts {meta.duration_s:.0f} s, over the limit of {cap:.0f} s "
            "(ingest.max_duration_s); trim the video or raise the limit"
        )


def _extension(meta: VideoMetadata, name: str) -> str:
    if meta.container in _CONTAINER_EXT:
        return _CONTAINER_EXT[meta.container]
    if meta.container == "matroska,webm":
        webm = meta.video_codec in {"vp8", "vp9", "av1"} and (
            meta.audio is None or meta.audio.codec in {"opus", "vorbis"}
        )
        return "webm" if webm else "mkv"
    suffix = Path(name).suffix.lstrip(".").lower()
    return suffix if re.fullmatch(r"[a-z0-9]{1,5}", suffix) else "bin"


def _safe_name(name: str) -> str:
    base = Path(name.replace("\\", "/")).name
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "upload.bin"
    return base[-100:]


def _shown(source: str) -> str:
    return source if len(source) <= 120 else source[:117] + "..."


def _info_fields(info: dict[str, Any] | None) -> dict[str, Any]:
    return {k: str(info[k]) for k in _INFO_FIELDS if info and info.get(k) is not None}
