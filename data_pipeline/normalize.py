"""Optional re-encode of ingested videos to H.264/AAC in MP4 at a bounded height and bitrate.

Why: sources arrive as VP9/AV1 WebM, HEVC MKV, 4K MOV... Every later stage decodes the stored
file, often many times; a modest, uniformly encoded copy decodes faster on CPUs, plays in every
browser (the web UI) and bounds storage. It costs one encode at ingest, so it is off by default
(`ingest.normalize.enabled`) and skipped for files that already conform.

The Debian `ffmpeg` binary does the work (libx264 is not in PyAV's wheels on every platform);
the output is written beside the target and renamed in, so a failed encode leaves nothing behind.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from cluster.config import NormalizeSettings
from cluster.errors import InputError, UnavailableError
from data_pipeline.probe import VideoMetadata

_MP4_CONTAINERS = ("mov,mp4,m4a,3gp,3g2,mj2", "mp4", "mov")
_MIN_TIMEOUT_S = 120.0
_TIMEOUT_PER_MEDIA_S = 20.0  # generous: libx264 'veryfast' runs well above real time on 2 cores


def parse_bitrate(text: str) -> int:
    """ffmpeg-style bitrate ('2M', '800k', '128000') in bits per second."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", text)
    if not m:
        raise InputError(f"bitrate {text!r} is not like '2M', '800k' or '128000'; fix ingest.normalize")
    scale = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def needs_normalize(meta: VideoMetadata, settings: NormalizeSettings) -> bool:
    """False when the file is already H.264 (+AAC or silent) MP4 within the height and bitrate."""
    if not settings.enabled:
        return False
    if meta.video_codec != "h264" or meta.container not in _MP4_CONTAINERS:
        return True
    if meta.audio is not None and meta.audio.codec != "aac":
        return True
    shown_height = meta.width if meta.rotation in (90, 270) else meta.height
    if shown_height > settings.max_height:
        return True
    if settings.crf is None and meta.bit_rate:
        target = parse_bitrate(settings.video_bitrate) + parse_bitrate(settings.audio_bitrate)
        return meta.bit_rate > 1.5 * target  # re-encoding near the target only loses quality
    return False


def normalize_video(
    src: Path, dst: Path, settings: NormalizeSettings, *, duration_s: float | None = None
) -> Path:
    """Re-encode `src` into `dst` (an .mp4 path); returns `dst`.

    Scales so the height is at most `settings.max_height` (keeping aspect; ffmpeg applies the
    rotation tag first, so portrait phone videos stay portrait), H.264 `veryfast` at the target
    bitrate or CRF, AAC audio when there is audio, `+faststart` so players can start streaming.

    Raises:
        UnavailableError: no ffmpeg binary.
        InputError: ffmpeg could not decode or encode the file (message carries its last lines).
    """
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise UnavailableError(
            "ffmpeg is not installed; install the Debian package 'ffmpeg' (scripts/setup.sh)"
        )
    parse_bitrate(settings.video_bitrate)
    parse_bitrate(settings.audio_bitrate)
    h = settings.max_height
    # Never upscale; -2 keeps the width even, as libx264 with yuv420p requires.
    scale = f"scale=-2:'min({h},ih)':flags=bicubic"
    quality = (
        ["-crf", str(settings.crf)]
        if settings.crf is not None
        else [
            "-b:v",
            settings.video_bitrate,
            "-maxrate",
            settings.video_bitrate,
            "-bufsize",
            settings.video_bitrate,
        ]
    )
    tmp = dst.with_name(f".{dst.stem}.partial.mp4")
    cmd = [
        ffmpeg, "-v", "error", "-nostdin", "-y", "-i", str(src),
        "-map", "0:v:0", "-map", "0:a:0?", "-sn", "-dn",
        "-vf", scale, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", *quality,
        "-c:a", "aac", "-b:a", settings.audio_bitrate, "-ac", "2",
        "-movflags", "+faststart", "-f", "mp4", str(tmp),
    ]  # fmt: skip
    timeout = max(_MIN_TIMEOUT_S, _TIMEOUT_PER_MEDIA_S * (duration_s or 0.0))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{src.name}: re-encoding took over {timeout:.0f} s and was stopped") from e
    if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:]) or f"exit code {proc.returncode}"
        raise InputError(f"{src.name}: re-encoding to H.264/AAC failed ({tail}); the file may be corrupt")
    tmp.replace(dst)
    return dst
