"""Downloading one URL with yt-dlp, inside the SSRF guard, with size/duration caps enforced live.

Why yt-dlp's Python API: it knows thousands of sites, and its generic extractor covers the rest
(a direct file link, an HTML page with a `<video>` tag). What vidray adds around it:

- every connection goes through `net_guard.guarded_downloads` (redirects and DNS re-checked);
- only yt-dlp's native downloaders run (HTTP, HLS, DASH): an external one (ffmpeg, aria2c)
  would connect outside the guard, so other protocols and live streams are refused;
- caps: a duration or size yt-dlp knows up front refuses before a byte moves; a Content-Length
  over the cap makes yt-dlp's `max_filesize` return without a file (it does not raise: checked
  here); bytes without a Content-Length are counted by the progress hook, which aborts the
  moment the count passes the cap;
- yt-dlp's errors become `InputError`s that name the URL and what to do.

The caller owns `stage` (a temp dir in the cache) and deletes it, partial files included.
"""

from __future__ import annotations

import logging
import re
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cluster import metric_names as mn
from cluster.config import IngestSettings
from cluster.errors import InputError, PolicyError, TooLargeError, VidrayError
from data_pipeline.net_guard import AllowList, guarded_downloads, yt_dlp_params

logger = logging.getLogger("data_pipeline.download")

Progress = Callable[[dict[str, Any]], None]

# yt-dlp protocols whose bytes flow through yt-dlp's own HTTP stack (and so through the guard).
_NATIVE_PROTOCOLS = frozenset(
    {"http", "https", "m3u8", "m3u8_native", "http_dash_segments", "http_dash_segments_generator"}
)
_MAX_PAGE_BYTES = 32 * 1024**2  # a web page read whole while looking for the video; real ones are < 5 MB
_NETWORK_RETRIES = 2  # each retry may wait a full socket timeout; bounds a stalled server's cost


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


def download(
    url: str,
    stage: Path,
    ing: IngestSettings,
    *,
    allow: AllowList | None = None,
    progress: Progress | None = None,
    deadline_s: float | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Download `url` into the directory `stage`; returns (the file, yt-dlp's info dict).

    Args:
        url: an http(s) URL already accepted by `net_guard.check_url`.
        stage: an empty directory the caller deletes afterwards (partial files land here).
        ing: caps, timeouts and format preferences.
        allow: the SSRF allow list; defaults to `ing.allow_hosts`.
        progress: called with `{"stage": "download", "downloaded_bytes", "total_bytes", ...}`.
        deadline_s: abort a download still running after this many seconds.

    Raises:
        PolicyError, TooLargeError, InputError: see the module docstring.
    """
    import yt_dlp
    from yt_dlp.utils import DownloadCancelled, YoutubeDLError

    class Abort(DownloadCancelled):
        """Raised from the progress hook; yt-dlp lets DownloadCancelled through untouched."""

        def __init__(self, error: VidrayError) -> None:
            super().__init__(str(error))
            self.error = error

    allow = allow if allow is not None else AllowList.parse(ing.allow_hosts)
    emit = progress or (lambda event: None)
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
    with guarded_downloads(allow, max_read_bytes=min(_MAX_PAGE_BYTES, cap)) as guard:
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
    fetched = sum(downloaded.values()) or files[0].stat().st_size
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    mn.get(mn.DOWNLOAD_BYTES).labels(source=scheme).inc(fetched)
    mn.get(mn.STAGE_SECONDS).labels(stage="download").observe(time.monotonic() - started)
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


def _shown(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."
