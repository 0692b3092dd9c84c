"""Ingest: any video a user points at (URL, local path, uploaded bytes) -> one cached, probed file.

Start here. `ingest()` sorts the source into one of three flows that end the same way:

    URL    check_url (SSRF) -> URL index hit? -> yt-dlp under guarded_downloads, caps enforced while
           downloading -> hash -> _finish
    path   hash -> bytes hit? -> copy into staging -> _finish
    bytes  size cap -> hash -> bytes hit? -> write into staging -> _finish
    _finish: probe (refuses non-video, corrupt, unsupported) -> duration cap -> optional normalise ->
           store in the content-addressed cache (atomic rename) -> remember the source

Everything is staged under the cache's tmp/ and renamed into place, so a refused, failed or
interrupted ingest leaves nothing behind. Sources being produced are locked across processes, so
two workers ingesting the same URL download it once.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from cluster import metrics
from cluster.config import IngestSettings, Settings, load_settings
from cluster.errors import InputError, PolicyError, TooLargeError, VidrayError
from data_pipeline.cache import Cache, CachedVideo, canonical_key
from data_pipeline.net_guard import AllowList, check_url, guarded_downloads, yt_dlp_params
from data_pipeline.normalize import needs_normalize, normalize_video
from data_pipeline.probe import VideoMetadata, probe, sha256_file

logger = logging.getLogger("data_pipeline.ingest")

Progress = Callable[[dict[str, Any]], None]

_INFO_FIELDS = ("title", "uploader", "webpage_url", "upload_date")
# yt-dlp protocols whose bytes flow through yt-dlp's own HTTP stack (and so through the guard).
_NATIVE_PROTOCOLS = frozenset(
    {"http", "https", "m3u8", "m3u8_native", "http_dash_segments", "http_dash_segments_generator"}
)
_NETWORK_RETRIES = 2  # each retry may wait a full socket timeout; bounds a stalled server's cost
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


def format_options(ingest: IngestSettings) -> dict[str, Any]:
    """yt-dlp format selection for the ingest settings (also part of the URL cache key).

    Order of preference: one file in a preferred container within the height and size caps (no
    merge needed; sizes a site reports up front); separate video+audio streams within the caps,
    merged by ffmpeg; anything within the caps; then anything at all, since caps on unknown sizes
    are enforced while downloading anyway. `?` in a filter lets formats with an unknown height or
    size pass, which is what direct file URLs look like (yt-dlp knows neither).
    """
    h = f"[height<=?{ingest.max_height}]" if ingest.max_height else ""
    s = f"[filesize<?{ingest.max_download_bytes}]"
    preferred = [
        e.lower().lstrip(".") for e in ingest.preferred_formats if re.fullmatch(r"\.?[A-Za-z0-9]+", e)
    ]
    choices = [f"b{h}[ext={e}]{s}" for e in preferred]
    choices += [f"bv*{h}{s}+ba{s}", f"b{h}{s}", "b", "bv*+ba", "bv*"]
    merge = [e for e in preferred if e in {"mp4", "webm", "mkv", "mov"}]
    return {
        "format": "/".join(dict.fromkeys(choices)),
        "format_sort": [f"res:{ingest.max_height}"] if ingest.max_height else [],
        "merge_output_format": "/".join(dict.fromkeys([*merge, "mkv"])),
    }


# --- entry point ----------------------------------------------------------------------------------


def ingest(
    source: str | Path | bytes,
    settings: Settings | None = None,
    *,
    filename: str | None = None,
    progress: Progress | None = None,
    deadline_s: float | None = None,
) -> IngestedVideo:
    """Fetch, check, probe and cache one video; the second time, answer from the cache.

    Args:
        source: an http(s) URL (a page any yt-dlp extractor knows, an HTML page with a `<video>`,
            or a direct file link), a local file path, or the raw bytes of an upload.
        settings: defaults to `load_settings()` (env and config file).
        filename: for bytes, the uploaded file's name (used in messages and the stored extension).
        progress: called with small dicts: `{"stage": "download", "downloaded_bytes", "total_bytes",
            "fraction", "speed", "eta"}`, `{"stage": "probe"}`, `{"stage": "normalize"}`,
            `{"stage": "done", "video_id", "cached"}`.
        deadline_s: abort a download still running after this many seconds (a slow-drip server
            never trips the per-read socket timeout).

    Raises:
        PolicyError: a refused URL (scheme, private/loopback/metadata address, redirect to one).
        TooLargeError: over `ingest.max_download_bytes` or `ingest.max_duration_s`.
        InputError: not found, not a video, corrupt, unsupported codec, unreachable or stalled.
    """
    settings = settings or load_settings()
    cache = Cache(settings.cache_dir)
    emit = _emitter(progress)
    start = time.perf_counter()
    if isinstance(source, bytes | bytearray | memoryview):
        kind, result = "upload", _ingest_bytes(bytes(source), filename, settings, cache, emit)
    elif isinstance(source, Path) or not _URL_LIKE.match(source.strip()):
        kind, result = "path", _ingest_path(Path(source), settings, cache, emit)
    else:
        kind, result = "url", _ingest_url(source.strip(), settings, cache, emit, deadline_s)
    metrics.counter(
        "vidray_ingest_total", "Videos ingested, by source kind and cache outcome.", ["source", "cached"]
    ).labels(source=kind, cached=str(result.cached).lower()).inc()
    metrics.histogram("vidray_ingest_seconds", "Wall time of ingest() calls.", ["source"]).labels(
        source=kind
    ).observe(time.perf_counter() - start)
    emit({"stage": "done", "video_id": result.video_id, "cached": result.cached})
    return result


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


def _ingest_bytes(
    data: bytes, filename: str | None, settings: Settings, cache: Cache, emit: Progress
) -> IngestedVideo:
    name = _safe_name(filename or "upload.bin")
    source = f"upload:{name}"
    if not data:
        raise InputError(f"the upload {name} is empty (0 bytes); send the video file's contents")
    cap = settings.ingest.max_download_bytes
    if len(data) > cap:
        raise TooLargeError(
            f"the upload {name} is {len(data):,} bytes, over the limit of {cap:,} "
            "(ingest.max_download_bytes); send a smaller file or raise the limit"
        )
    sha = hashlib.sha256(data).hexdigest()
    hit = _bytes_hit(cache, sha, settings, source=source, info=None)
    if hit is not None:
        return hit
    with cache.staging("upload") as stage:
        staged = stage / name
        staged.write_bytes(data)
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
            path, info = _download(url, stage, settings, allow, emit, deadline_s)
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
        try:
            meta = probe(staged, sha256=sha, info=info)
        except InputError as e:
            text = str(e).replace(str(staged), staged.name)  # no cache paths in user-facing messages
            raise InputError(f"{text} (source: {_shown(source)})") from e
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


# --- downloading with yt-dlp ----------------------------------------------------------------------


class _YtdlpLog:
    """Route yt-dlp's messages to our logger; keep them so an abort can be explained."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def debug(self, msg: str) -> None:
        self.lines.append(msg)
        logger.debug("yt-dlp: %s", msg)

    info = debug

    def warning(self, msg: str) -> None:
        self.lines.append(msg)
        logger.info("yt-dlp warning: %s", msg)

    def error(self, msg: str) -> None:
        self.lines.append(msg)
        logger.info("yt-dlp error: %s", msg)


def _download(
    url: str, stage: Path, settings: Settings, allow: AllowList, emit: Progress, deadline_s: float | None
) -> tuple[Path, dict[str, Any]]:
    """Download `url` into `stage` with caps and the SSRF guard; returns (file, yt-dlp info)."""
    import yt_dlp
    from yt_dlp.utils import DownloadCancelled, YoutubeDLError

    class Abort(DownloadCancelled):
        """Raised from the progress hook; yt-dlp lets DownloadCancelled through untouched."""

        def __init__(self, error: VidrayError) -> None:
            super().__init__(str(error))
            self.error = error

    ing = settings.ingest
    cap = ing.max_download_bytes
    started = time.monotonic()
    downloaded: dict[str, int] = {}  # per file: merged formats download video and audio separately

    def hook(d: dict[str, Any]) -> None:
        name = str(d.get("filename") or d.get("tmpfilename") or "")
        done = int(d.get("downloaded_bytes") or 0)
        downloaded[name] = done
        total_known = d.get("total_bytes")
        if total_known and int(total_known) > cap:
            raise Abort(
                TooLargeError(
                    f"{_shown(url)} is {int(total_known):,} bytes, over the download limit of {cap:,} "
                    "(ingest.max_download_bytes); pick a smaller video or raise the limit"
                )
            )
        if sum(downloaded.values()) > cap:
            raise Abort(
                TooLargeError(
                    f"{_shown(url)} sent more than {cap:,} bytes, the download limit "
                    "(ingest.max_download_bytes); the download was stopped and deleted"
                )
            )
        if deadline_s is not None and time.monotonic() - started > deadline_s:
            raise Abort(
                InputError(
                    f"{_shown(url)} took longer than {deadline_s:.0f} s to download and was "
                    "stopped; try again or raise the deadline"
                )
            )
        total = total_known or d.get("total_bytes_estimate")
        emit(
            {
                "stage": "download",
                "status": d.get("status"),
                "downloaded_bytes": done,
                "total_bytes": total,
                "fraction": (done / total) if total else None,
                "speed": d.get("speed"),
                "eta": d.get("eta"),
            }
        )

    log = _YtdlpLog()
    params: dict[str, Any] = {
        **yt_dlp_params(),
        **format_options(ing),
        "logger": log,
        "quiet": True,
        "noprogress": True,
        "progress_hooks": [hook],
        "paths": {"home": str(stage), "temp": str(stage)},
        "outtmpl": {"default": "download.%(ext)s"},
        "socket_timeout": ing.timeout_s,
        "retries": _NETWORK_RETRIES,
        "fragment_retries": _NETWORK_RETRIES,
        "extractor_retries": 0,
        "file_access_retries": 0,
        "max_filesize": cap,  # aborts silently on a Content-Length over the cap; detected below
        "noplaylist": True,
        "playlistend": 2,  # enough to tell one video from many without extracting a whole playlist
        "cachedir": False,
        "overwrites": True,
        "updatetime": False,
    }
    with guarded_downloads(allow) as guard:
        try:
            with yt_dlp.YoutubeDL(params) as ydl:
                info = _single_video(ydl.extract_info(url, download=False), url)
                _precheck(info, url, ing)
                info = ydl.process_ie_result(info, download=True)
        except Abort as e:
            raise e.error from None
        except (YoutubeDLError, OSError) as e:
            if guard.refusals:
                raise guard.refusals[0] from None
            raise _translate(e, url, ing) from None
        if guard.refusals:  # yt-dlp may have skipped past a refused request; refuse the whole ingest
            raise guard.refusals[0]
    files = [Path(str(r.get("filepath"))) for r in info.get("requested_downloads") or [] if r.get("filepath")]
    files = [p for p in files if p.is_file()]
    if files and files[0].stat().st_size == 0:
        raise InputError(f"{_shown(url)} sent an empty file (0 bytes); check the URL points at a video")
    if not files:
        said = next((line for line in log.lines if "larger than max-filesize" in line), None)
        if said is not None:  # yt-dlp saw a Content-Length over the cap and returned without a file
            m = re.search(r"\((\d+) bytes >", said)
            size = f" is {int(m.group(1)):,} bytes," if m else " is"
            raise TooLargeError(
                f"{_shown(url)}{size} over the download limit of {cap:,} bytes "
                "(ingest.max_download_bytes); pick a smaller video or raise the limit"
            )
        raise InputError(f"{_shown(url)} produced no file (the server sent nothing); check the URL")
    return files[0], info


def _single_video(info: dict[str, Any] | None, url: str) -> dict[str, Any]:
    if not info:
        raise InputError(f"no video found at {_shown(url)}")
    if info.get("_type") in ("playlist", "multi_video"):
        entries = [e for e in info.get("entries") or [] if e]
        if len(entries) != 1:
            raise InputError(
                f"{_shown(url)} holds {'several videos' if entries else 'no video'} (a playlist or "
                "a page with many); pass the URL of one video"
            )
        return dict(entries[0])
    return info


def _precheck(info: dict[str, Any], url: str, ing: IngestSettings) -> None:
    """Refuse what yt-dlp already knows is over a cap or outside the guard, before any byte moves."""
    if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming"):
        raise InputError(f"{_shown(url)} is a live stream; vidray ingests recorded videos only")
    duration = info.get("duration")
    if isinstance(duration, int | float) and duration > ing.max_duration_s:
        raise TooLargeError(
            f"{_shown(url)} lasts {duration:.0f} s, over the limit of {ing.max_duration_s:.0f} s "
            "(ingest.max_duration_s); pick a shorter video or raise the limit"
        )
    formats = info.get("requested_formats") or [info]
    size = sum(int(f.get("filesize") or f.get("filesize_approx") or 0) for f in formats)
    if size > ing.max_download_bytes:
        raise TooLargeError(
            f"{_shown(url)} is about {size:,} bytes, over the download limit of "
            f"{ing.max_download_bytes:,} (ingest.max_download_bytes); pick a smaller "
            "video, set ingest.max_height, or raise the limit"
        )
    for f in formats:
        proto = str(f.get("protocol") or "")
        if proto and proto not in _NATIVE_PROTOCOLS:
            raise PolicyError(
                f"{_shown(url)} is only offered over {proto}, which vidray does not fetch "
                "(http(s), HLS and DASH only)"
            )


def _translate(e: Exception, url: str, ing: IngestSettings) -> InputError:
    """A yt-dlp failure as a user-facing InputError that names the URL and what to do."""
    msg = re.sub(r"^(ERROR:\s*)?(\[[^\]]+\]\s*)?", "", str(e)).strip()
    low = msg.lower()
    shown = _shown(url)
    if "unsupported url" in low or "no video formats found" in low or "no video could be found" in low:
        return InputError(
            f"no video found at {shown}: the page has no video vidray can read; pass a "
            "video page or a direct link to a video file"
        )
    if "timed out" in low or "timeout" in low:
        return InputError(
            f"{shown} did not answer within {ing.timeout_s:.0f} s (ingest.timeout_s); the "
            "server stalled, try again later"
        )
    m = re.search(r"HTTP Error (\d{3})", msg)
    if m:
        return InputError(f"{shown} answered HTTP {m.group(1)}; check the URL is public and correct")
    if "requested format is not available" in low:
        return InputError(
            f"{shown} offers no format matching the ingest settings; relax ingest.max_height "
            "or ingest.preferred_formats"
        )
    host = urllib.parse.urlsplit(url).hostname or url
    return InputError(f"{shown} could not be fetched from {host}: {msg[:300]}")
