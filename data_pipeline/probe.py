"""Video metadata from the container and a packet scan, without decoding the stream.

Why a packet scan: headers lie or are missing (direct URLs give yt-dlp no duration; WebM often has
no frame count; variable-frame-rate files report a nominal rate). Demuxing every video packet costs
~0.15 s for 10 minutes of video and gives the true frame count, duration and frame-time spacing.
One frame is decoded to prove the stream is decodable, so a corrupt or unsupported input fails
here with a clear message rather than later inside a Ray task.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cluster.errors import InputError

_MAX_SCAN_PACKETS = 2_000_000  # ~9 h at 60 fps; bounds the scan on pathological inputs
_VFR_TOLERANCE = 0.10  # a frame gap >10% away from the median gap is 'off-rate'
_VFR_MIN_FRACTION = 0.02  # ...and >2% of gaps off-rate means variable frame rate


class AudioInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    codec: str
    sample_rate: int
    channels: int


class VideoMetadata(BaseModel):
    """The public metadata contract (`vidray probe --json`); extra yt-dlp fields are optional."""

    model_config = ConfigDict(extra="forbid")

    duration_s: float = Field(description="Presentation duration of the video stream in seconds.")
    width: int
    height: int
    rotation: int = Field(0, description="Display rotation in degrees (0, 90, 180, 270).")
    fps: float = Field(description="Average frames per second (frames / duration).")
    is_vfr: bool = Field(description="True when frame spacing varies (variable frame rate).")
    num_frames: int
    start_s: float = Field(0.0, description="Presentation time of the first frame.")
    video_codec: str
    bit_rate: int | None = None
    audio: AudioInfo | None
    container: str
    size_bytes: int
    sha256: str
    title: str | None = None
    uploader: str | None = None
    webpage_url: str | None = None
    upload_date: str | None = None
    source: str | None = Field(None, description="The URL or path the video came from.")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _rotation(path: Path) -> int:
    try:
        from torchcodec.decoders import VideoDecoder

        rot = VideoDecoder(str(path), seek_mode="approximate").metadata.rotation
    except Exception:  # rotation is informative; a decoder that cannot read it means none
        return 0
    return round(rot or 0) % 360


def probe(path: str | Path, *, sha256: str | None = None, info: dict[str, Any] | None = None) -> VideoMetadata:
    """Read `path`'s metadata; raise `InputError` for empty, corrupt, non-video or undecodable input.

    Args:
        path: a local media file.
        sha256: the content hash when the caller already computed it (ingest does, while downloading).
        info: yt-dlp info dict, whose title/uploader/webpage_url/upload_date are copied when present.
    """
    import av

    path = Path(path)
    name = path.name
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file; pass a path to a video file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{name} is empty (0 bytes); the download or upload did not complete")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise InputError(f"{name} is not a readable video container ({e}); check the file is a complete video") from e
    with container:
        if not container.streams.video:
            kind = "audio-only" if container.streams.audio else "not a video"
            raise InputError(f"{name} has no video stream ({kind}, format {container.format.name}); pass a video file")
        vs = container.streams.video[0]
        codec = vs.codec_context.name if vs.codec_context else None
        if not codec or vs.codec_context.width == 0:
            raise InputError(f"{name}: the video codec is not supported by this FFmpeg build; re-encode to H.264")
        audio = None
        if container.streams.audio:
            a = container.streams.audio[0]
            audio = AudioInfo(codec=a.codec_context.name, sample_rate=a.codec_context.sample_rate or 0,
                              channels=a.codec_context.channels or 0)
        pts: list[int] = []
        durations: list[int] = []
        try:
            for packet in container.demux(vs):
                if packet.pts is not None:
                    pts.append(packet.pts)
                    durations.append(packet.duration or 0)
                if len(pts) >= _MAX_SCAN_PACKETS:
                    break
        except av.error.FFmpegError as e:
            if not pts:
                raise InputError(f"{name} is corrupt: no video packet could be read ({e})") from e
        if not pts:
            raise InputError(f"{name} holds no video frames; the file is truncated or empty")
        _check_decodable(path, name)
        tb = float(vs.time_base) if vs.time_base else 1 / 90000
        order = sorted(range(len(pts)), key=pts.__getitem__)
        spts = [pts[i] for i in order]
        deltas = [b - a for a, b in itertools.pairwise(spts) if b > a]
        last_dur = durations[order[-1]] or (sorted(deltas)[len(deltas) // 2] if deltas else 0)
        start = spts[0] * tb
        duration = (spts[-1] + last_dur - spts[0]) * tb
        if duration <= 0:
            duration = (container.duration or 0) / 1e6
        is_vfr = False
        if len(deltas) >= 3:
            body = sorted(deltas[:-1])  # the last gap is often short at a cut-off end
            med = body[len(body) // 2]
            off = sum(1 for d in body if abs(d - med) > _VFR_TOLERANCE * med)
            # One odd gap (a muxer's start delay, a dropped frame) is not a variable frame rate.
            is_vfr = med > 0 and off > max(1, _VFR_MIN_FRACTION * len(body))
        fps = len(pts) / duration if duration > 0 else float(vs.average_rate or 0)
        return VideoMetadata(
            duration_s=round(duration, 6),
            width=vs.codec_context.width,
            height=vs.codec_context.height,
            rotation=_rotation(path),
            fps=round(fps, 4),
            is_vfr=is_vfr,
            num_frames=len(pts),
            start_s=round(start, 6),
            video_codec=codec,
            bit_rate=container.bit_rate or None,
            audio=audio,
            container=container.format.name,
            size_bytes=size,
            sha256=sha256 or sha256_file(path),
            **_info_fields(info),
        )


def _check_decodable(path: Path, name: str) -> None:
    import av

    try:
        with av.open(str(path)) as c:
            for _ in c.decode(video=0):
                return
    except av.error.FFmpegError as e:
        raise InputError(f"{name}: the video stream cannot be decoded ({e}); the file is corrupt") from e
    raise InputError(f"{name}: no video frame could be decoded; the file is truncated or corrupt")


def _info_fields(info: dict[str, Any] | None) -> dict[str, Any]:
    if not info:
        return {}
    out = {k: info.get(k) for k in ("title", "uploader", "webpage_url", "upload_date")}
    out["source"] = info.get("original_url") or info.get("webpage_url")
    return {k: (str(v) if v is not None else None) for k, v in out.items()}
