"""Decode video frames with true timestamps: torchcodec first, PyAV where torchcodec cannot open a file.

Start here: `VideoReader(path, max_side=...)` opens one video stream; `frames_at(times)` returns the
frame *displayed* at each time (seek when sparse, decode through when dense: torchcodec decides per
request from the keyframe index), `iter_frames()` decodes every frame in chunks (bounded memory) and
`keyframe_times()` reads keyframe positions from the packet index without decoding anything.

Why these paths (measured on this machine, 720p H.264, 1 decode thread, see benchmarks/README.md):
- Full decode walks frames one at a time (`seek_to_pts` + `get_next_frame` from torchcodec's core
  ops). torchcodec's batch call `get_frames_in_range` allocates one tensor per batch; above ~32 MB
  glibc serves that with a fresh mmap, so every batch page-faults in again: 64-frame batches cost
  ~2x the CPU of per-frame tensors (1.2 M page faults per 1800 frames vs 0.1 M). Per-frame tensors
  are recycled by malloc and stay within ~0.8x of `ffmpeg -f null`.
- A full decode that also shrinks the frames (`max_side` set: scene detection at 96 px, motion at
  320 px) goes through PyAV instead: its `to_ndarray(width=, height=)` is one swscale call from YUV
  straight to small RGB, while torchcodec 0.13's `Resize` transform costs 2.5-3x the CPU for the
  same frames (1517 720p frames to 96 px: 2.8 vs 6.3 CPU-s; to 320 px: 3.6 vs 8.2 CPU-s).
- Sampling uses `get_frames_played_at` (one call per group of times): it skips decoding between
  samples when a keyframe lies between them and decodes straight through when not.
- One FFmpeg thread per decoder by default (`threads=0`): frame threading adds CPU per frame, and the
  Ray pipeline already runs one decoder per core. Pass `threads=2` for lower latency on one video.

Timestamps are presentation times in seconds taken from each decoded frame, so they are exact on
variable-frame-rate video. Streams that start after 0 (edit lists, trimmed MP4s) keep their real
times; requests before `begin_s` or after the last frame are clamped to the stream.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from cluster.errors import InputError

log = logging.getLogger(__name__)

Backend = Literal["auto", "torchcodec", "pyav"]
_PTS_SLACK = 1e-6  # seconds; far below any frame duration
_SKIP_MARGIN_S = 0.5  # decode every frame from this long before a requested time
_SAMPLE_GROUP = 32  # frames per get_frames_played_at call: bounds one call's memory (~90 MB at 720p)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its presentation time, RGB pixels and (when known) its index in the stream."""

    t: float
    image: np.ndarray = field(repr=False)
    index: int | None = None


def output_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) after shrinking so the longer side is at most `max_side`; never enlarges.

    The aspect ratio is kept to within rounding; both sides stay >= 2 and even so every encoder
    downstream (JPEG, H.264 re-encode) accepts the frame.
    """
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    w = max(2, round(width * scale / 2) * 2)
    h = max(2, round(height * scale / 2) * 2)
    return min(w, max_side), min(h, max_side)


class _PacketIndex:
    """Sorted presentation times of every video packet and which are keyframes (PyAV demux, no decode)."""

    def __init__(self, path: Path) -> None:
        import av

        pts: list[int] = []
        key: list[int] = []
        with av.open(str(path), metadata_errors="ignore") as c:
            vs = c.streams.video[0]
            tb = float(vs.time_base) if vs.time_base else 1 / 90000
            for packet in c.demux(vs):
                if packet.pts is None:
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    key.append(packet.pts)
        self.times = [p * tb for p in sorted(pts)]
        self.keyframes = [p * tb for p in sorted(key)]

    def index_of(self, t: float) -> int:
        """Index of the frame whose pts is `t` (or the last one at or before it)."""
        return max(0, bisect.bisect_right(self.times, t + 1e-6) - 1)

    def first_at_or_after(self, t: float) -> int:
        return bisect.bisect_left(self.times, t - 1e-6)


class VideoReader:
    """Random and sequential access to one video's frames, resized on decode.

    Attributes:
        backend: "torchcodec" or "pyav", whichever opened the file.
        duration_s: presentation duration of the video stream.
        begin_s: pts of the first frame (often 0; later in trimmed files).
        fps: average frame rate (frames / duration); nominal only on variable-frame-rate video.
        width, height: the size of the frames returned, after `max_side` resizing.
    """

    backend: str
    duration_s: float
    begin_s: float
    fps: float
    width: int
    height: int

    def __init__(self, path: str | Path, *, max_side: int | None = None, threads: int = 0,
                 backend: Backend = "auto") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path} does not exist or is not a file; pass a path to a video file")
        if max_side is not None and max_side < 2:
            raise InputError(f"max_side={max_side} is too small; pass an integer >= 2 (e.g. 512) or omit it")
        if backend not in ("auto", "torchcodec", "pyav"):
            raise InputError(f"backend={backend!r} is not one of auto, torchcodec, pyav")
        self.max_side = max_side
        self.threads = threads if threads > 0 else 1
        self._index: _PacketIndex | None = None
        self._seq: _PyAVImpl | None = None
        self._impl: _TorchcodecImpl | _PyAVImpl
        if backend in ("auto", "torchcodec"):
            try:
                self._impl = _TorchcodecImpl(self.path, max_side, self.threads)
            except Exception as e:
                if backend == "torchcodec":
                    raise InputError(f"{self.path.name}: torchcodec cannot open this video ({e}); "
                                     "try backend='pyav' or re-encode to H.264") from e
                log.info("torchcodec could not open %s (%s); using PyAV", self.path.name, e)
                self._impl = _PyAVImpl(self.path, max_side, self.threads)
        else:
            self._impl = _PyAVImpl(self.path, max_side, self.threads)
        self.backend = self._impl.name
        if isinstance(self._impl, _PyAVImpl):
            self._index = self._impl.index  # already scanned: no second demux pass
        self.begin_s = self._impl.begin_s
        self.duration_s = max(0.0, self._impl.end_s - self._impl.begin_s)
        self.fps = self._impl.num_frames / self.duration_s if self.duration_s > 0 else 0.0
        self.width, self.height = output_size(self._impl.src_width, self._impl.src_height, max_side)

    # -- context manager -------------------------------------------------------------------------
    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the decoders (file handles, FFmpeg contexts)."""
        self._impl.close()
        if self._seq is not None:
            self._seq.close()
            self._seq = None

    @property
    def end_s(self) -> float:
        """End of the stream: pts of the last frame plus its duration."""
        return self.begin_s + self.duration_s

    @property
    def num_frames(self) -> int:
        return self._impl.num_frames

    def packet_index(self) -> _PacketIndex:
        if self._index is None:
            self._index = _PacketIndex(self.path)
        return self._index

    # -- access ----------------------------------------------------------------------------------
    def clamp(self, t: float) -> float:
        """`t` moved inside [begin_s, last frame]; NaN is refused."""
        if not math.isfinite(t):
            raise InputError(f"{self.path.name}: frame time {t} is not a finite number of seconds")
        last = self.end_s - min(1e-3, 0.5 / max(self.fps, 1.0))
        return min(max(t, self.begin_s), max(self.begin_s, last))

    def frames_at(self, times: Sequence[float]) -> list[Frame]:
        """The frame displayed at each of `times` (seconds, clamped to the stream), in request order.

        Each returned `Frame.t` is the true pts of the decoded frame, which is at or before the request.
        """
        if not times:
            return []
        # +1 µs: a request exactly at a frame's pts must get that frame even when seconds -> pts
        # conversion rounds down (1/12800 s time bases are inexact in binary floating point).
        clamped = [self.clamp(float(t) + _PTS_SLACK) for t in times]
        out: list[Frame] = []
        for i in range(0, len(clamped), _SAMPLE_GROUP):
            group = clamped[i:i + _SAMPLE_GROUP]
            out += self._impl.frames_at(group)
        index = self.packet_index()
        return [Frame(f.t, f.image, index.index_of(f.t)) for f in out]

    def iter_frames(self, start: float | None = None, end: float | None = None,
                    chunk: int = 64) -> Iterator[list[Frame]]:
        """Decode every frame with `start <= pts < end`, yielding lists of at most `chunk` frames.

        Memory is bounded by one chunk (plus what the caller keeps): the video is never held whole.
        """
        if chunk < 1:
            raise InputError(f"chunk={chunk} must be >= 1 frame")
        first = 0
        if start is not None and start > self.begin_s:
            first = self.packet_index().first_at_or_after(start)
        else:
            start = None
        batch: list[Frame] = []
        for n, (t, img) in enumerate(self._sequential().iter_from(start), start=first):
            if end is not None and t >= end:
                break
            batch.append(Frame(t, img, n))
            if len(batch) >= chunk:
                yield batch
                batch = []
        if batch:
            yield batch

    def _sequential(self) -> _TorchcodecImpl | _PyAVImpl:
        """The decoder for full passes: PyAV when frames are shrunk (module docstring), else the opener."""
        if self.max_side is None or isinstance(self._impl, _PyAVImpl):
            return self._impl
        if (self.width, self.height) == (self._impl.src_width, self._impl.src_height):
            return self._impl  # no resize happens: torchcodec's own full decode is the cheap one
        if self._seq is None:
            try:
                self._seq = _PyAVImpl(self.path, self.max_side, self.threads)
            except InputError as e:  # torchcodec opened it, so keep using torchcodec
                log.info("PyAV cannot open %s for a full pass (%s); using torchcodec", self.path.name, e)
                return self._impl
            self._index = self._index or self._seq.index
        return self._seq

    def keyframe_times(self) -> list[float]:
        """Presentation times of the keyframes, from the packet index (demux only, no decode)."""
        return list(self.packet_index().keyframes)


class _TorchcodecImpl:
    name = "torchcodec"

    def __init__(self, path: Path, max_side: int | None, threads: int) -> None:
        from torchcodec.decoders import VideoDecoder

        probe = VideoDecoder(str(path), seek_mode="approximate")
        w, h = int(probe.metadata.width or 0), int(probe.metadata.height or 0)
        del probe
        if w <= 0 or h <= 0:
            raise ValueError("the stream reports no frame size")
        transforms: list[Any] = []
        ow, oh = output_size(w, h, max_side)
        if (ow, oh) != (w, h):
            from torchcodec.transforms import Resize

            transforms.append(Resize((oh, ow)))
        self.dec = VideoDecoder(str(path), dimension_order="NHWC", num_ffmpeg_threads=threads,
                                seek_mode="exact", transforms=transforms or None)
        m = self.dec.metadata
        self.src_width, self.src_height = w, h
        self.begin_s = float(m.begin_stream_seconds or 0.0)
        self.end_s = float(m.end_stream_seconds or 0.0)
        self.num_frames = int(m.num_frames or 0)
        if self.num_frames <= 0 or self.end_s <= self.begin_s:
            raise ValueError("the stream has no frames")

    def frames_at(self, times: list[float]) -> list[Frame]:
        batch = self.dec.get_frames_played_at(times)
        data = batch.data.numpy()
        return [Frame(float(t), data[i]) for i, t in enumerate(batch.pts_seconds.tolist())]

    def iter_from(self, start: float | None) -> Iterator[tuple[float, np.ndarray]]:
        # Core ops (pinned torchcodec 0.13): seek_to_pts + get_next_frame yields frames with
        # pts >= start, one tensor per frame; see the module docstring for why not batches.
        from torchcodec._core import ops

        ops.seek_to_pts(self.dec._decoder, self.begin_s if start is None else start)
        while True:
            try:
                data, pts, _ = ops.get_next_frame(self.dec._decoder)
            except IndexError:  # torchcodec signals the end of the stream this way
                return
            except RuntimeError as e:
                raise InputError(f"decoding failed mid-stream ({e}); the file is corrupt or truncated") from e
            yield float(pts.item()), data.numpy()

    def close(self) -> None:
        self.dec = None  # type: ignore[assignment]  # the decoder is freed with its last reference


class _PyAVImpl:
    """PyAV fallback: containers/codecs torchcodec refuses. Seeks to the keyframe before each request."""

    name = "pyav"

    def __init__(self, path: Path, max_side: int | None, threads: int) -> None:
        import av

        try:
            self.container = av.open(str(path), metadata_errors="ignore")
        except (av.error.FFmpegError, UnicodeDecodeError) as e:
            raise InputError(f"{path.name} is not a readable video ({e}); check the file is a complete video") from e
        if not self.container.streams.video:
            self.container.close()
            raise InputError(f"{path.name} has no video stream; pass a video file")
        self.stream = self.container.streams.video[0]
        self.stream.thread_count = threads
        self.path = path
        cc = self.stream.codec_context
        self.src_width, self.src_height = int(cc.width), int(cc.height)
        if self.src_width <= 0:
            raise InputError(f"{path.name}: the video codec is not supported by this FFmpeg build; re-encode to H.264")
        self.size = output_size(self.src_width, self.src_height, max_side)
        self.tb = float(self.stream.time_base or 1 / 90000)
        index = _PacketIndex(path)
        if not index.times:
            raise InputError(f"{path.name} holds no video frames; the file is truncated or empty")
        gaps = np.diff(index.times)
        last = float(np.median(gaps)) if len(gaps) else 1 / 25
        self.begin_s = index.times[0]
        self.end_s = index.times[-1] + last
        self.num_frames = len(index.times)
        self.keyframes = index.keyframes or [self.begin_s]
        self.frame_s = last
        self.index = index

    def _rgb(self, frame: Any) -> np.ndarray:
        w, h = self.size
        if (w, h) == (self.src_width, self.src_height):
            img = frame.to_ndarray(format="rgb24")
        else:
            img = frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")
        # Display-matrix rotation (phone video), counter-clockwise degrees as FFmpeg reports it;
        # torchcodec applies it too. Not exercised in tests: this FFmpeg 5.1 cannot write one.
        rot = int(getattr(frame, "rotation", 0) or 0) % 360
        return np.ascontiguousarray(np.rot90(img, rot // 90)) if rot in (90, 180, 270) else img

    def _decode_from(self, t: float) -> Iterator[tuple[float, Any]]:
        import av

        self.container.seek(int(t / self.tb), stream=self.stream, backward=True, any_frame=False)
        try:
            for frame in self.container.decode(self.stream):
                if frame.pts is None:
                    continue
                yield frame.pts * self.tb, frame
        except av.error.FFmpegError as e:
            raise InputError(f"{self.path.name}: decoding failed mid-stream ({e}); the file is corrupt") from e

    def frames_at(self, times: list[float]) -> list[Frame]:
        """Serve sorted requests in one decode run while they share a GOP; re-seek across keyframes.

        On the way to a request more than `_SKIP_MARGIN_S` ahead, non-reference frames are not
        decoded (`skip_frame=NONREF`): nothing else depends on them, and it saves ~30% of the CPU
        of a seek-and-decode (benchmarks/README.md). Decoding is complete again from
        `_SKIP_MARGIN_S` before each request, far more than any decoder's reorder delay.
        """
        cc = self.stream.codec_context
        margin = max(_SKIP_MARGIN_S, 16 * self.frame_s)
        order = sorted(range(len(times)), key=times.__getitem__)
        result: dict[int, Frame] = {}
        i = 0
        try:
            while i < len(order):
                prev: tuple[float, Any] | None = None
                target = times[order[i]]
                # Skip only when the target is far past its keyframe: frames already queued in the
                # decoder when we switch back are lost, so the switch needs `margin` of headroom.
                far = target - self._keyframe_before(target) > 2 * margin
                cc.skip_frame = "NONREF" if far else "DEFAULT"
                served = i  # re-seek only after this run served a request: progress even when a
                # container's seek lands earlier than the keyframe asked for (some concatenated MP4s)
                for t, frame in self._decode_from(times[order[i]]):
                    if cc.skip_frame != "DEFAULT" and t >= times[order[i]] - margin:
                        cc.skip_frame = "DEFAULT"
                    while i < len(order) and t > times[order[i]] + 1e-6 and prev is not None:
                        result[order[i]] = Frame(prev[0], self._rgb(prev[1]))  # prev is on screen then
                        i += 1
                    if i >= len(order):
                        break
                    if i > served and self._keyframe_before(times[order[i]]) > t + 1e-6:
                        break  # a keyframe lies between here and the next request: seeking is cheaper
                    prev = (t, frame)
                    if cc.skip_frame == "DEFAULT" and times[order[i]] - t > 2 * margin:
                        cc.skip_frame = "NONREF"
                else:
                    while i < len(order) and prev is not None:  # past the last frame: it stays on screen
                        result[order[i]] = Frame(prev[0], self._rgb(prev[1]))
                        i += 1
                    if prev is None:
                        raise InputError(f"{self.path.name}: no frame could be decoded at {times[order[i]]:.3f}s")
        finally:
            cc.skip_frame = "DEFAULT"
        return [result[k] for k in range(len(times))]

    def _keyframe_before(self, t: float) -> float:
        k = bisect.bisect_right(self.keyframes, t + 1e-6) - 1
        return self.keyframes[k] if k >= 0 else self.begin_s

    def iter_from(self, start: float | None) -> Iterator[tuple[float, np.ndarray]]:
        t0 = self.begin_s if start is None else start
        for t, frame in self._decode_from(t0):
            if t >= t0 - 1e-6:
                yield t, self._rgb(frame)

    def close(self) -> None:
        self.container.close()
