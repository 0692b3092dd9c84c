"""Sample media made on this machine, and a loopback HTTP server to serve it.

Why here and not in tests/: the README's main job, the benchmarks and the tests all need the same
generated videos with known ground truth (scene cut times, frame timestamps, spoken words), so the
generators ship with vidray. Everything is made with the Debian `ffmpeg` and `espeak-ng` binaries.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socketserver
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Each scene source is visually distinct from the others so a cut is unambiguous.
SCENE_SOURCES = (
    "testsrc2=size={w}x{h}:rate={fps}",
    "smptebars=size={w}x{h}:rate={fps}",
    "mandelbrot=size={w}x{h}:rate={fps}",
    "rgbtestsrc=size={w}x{h}:rate={fps}",
    "cellauto=size={w}x{h}:rate={fps}:rule=110",
    "life=size={w}x{h}:rate={fps}:mold=10:ratio=0.3:death_color=#C83232:life_color=#00ff00",
    "testsrc=size={w}x{h}:rate={fps}",
    "yuvtestsrc=size={w}x{h}:rate={fps}",
)


def _ffmpeg(args: Sequence[str]) -> None:
    if not shutil.which("ffmpeg"):
        raise RuntimeError("ffmpeg is not installed; run scripts/setup.sh (Debian package 'ffmpeg')")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-nostdin", *args], check=True)


@dataclass(frozen=True)
class SceneVideo:
    path: Path
    cuts: list[float]  # true cut times in seconds (start of each scene after the first)
    fps: float
    duration: float


def make_scene_video(
    path: str | Path,
    scene_lengths: Sequence[float] = (2.0, 3.0, 2.5, 2.0),
    *,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
    vcodec: str = "libx264",
    audio: bool = True,
    extra: Sequence[str] = (),
) -> SceneVideo:
    """Concatenate distinct lavfi sources; cuts fall exactly at frame boundaries."""
    w, h = size
    inputs: list[str] = []
    for i, length in enumerate(scene_lengths):
        src = SCENE_SOURCES[i % len(SCENE_SOURCES)].format(w=w, h=h, fps=fps)
        frames = round(length * fps)
        inputs += ["-f", "lavfi", "-i", f"{src},format=yuv420p,trim=end_frame={frames},setpts=PTS-STARTPTS"]
    n = len(scene_lengths)
    filt = "".join(f"[{i}:v]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v]"
    total = sum(round(x * fps) for x in scene_lengths) / fps
    args = [*inputs]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={total}"]
    args += ["-filter_complex", filt, "-map", "[v]"]
    if audio:
        args += ["-map", f"{n}:a", "-c:a", "aac" if str(path).endswith((".mp4", ".mov", ".mkv")) else "libvorbis"]
    args += ["-c:v", vcodec, "-pix_fmt", "yuv420p", *extra, str(path)]
    _ffmpeg(args)
    cuts, t = [], 0
    for length in scene_lengths[:-1]:
        t += round(length * fps)
        cuts.append(t / fps)
    return SceneVideo(Path(path), cuts, float(fps), total)


def make_video(
    path: str | Path,
    *,
    duration: float = 4.0,
    size: tuple[int, int] = (320, 240),
    fps: float = 25,
    vcodec: str = "libx264",
    acodec: str | None = "aac",
    source: str = "testsrc2",
    extra: Sequence[str] = (),
) -> Path:
    """One lavfi source with an optional sine tone; `vcodec`/`acodec` pick the container's codecs."""
    w, h = size
    args = ["-f", "lavfi", "-i", f"{source}=size={w}x{h}:rate={fps}:duration={duration}"]
    if acodec:
        args += ["-f", "lavfi", "-i", f"sine=frequency=660:sample_rate=44100:duration={duration}"]
        args += ["-c:a", acodec]
    args += ["-c:v", vcodec, "-pix_fmt", "yuv420p", *extra, str(path)]
    _ffmpeg(args)
    return Path(path)


def make_vfr_video(path: str | Path, *, size: tuple[int, int] = (320, 240)) -> tuple[Path, list[float]]:
    """A variable-frame-rate MP4: 1 s at 10 fps then 1 s at 30 fps; returns its true frame times."""
    w, h = size
    path = Path(path)
    concat = path.with_suffix(".txt")
    parts = []
    for i, rate in enumerate((10, 30)):
        part = path.with_name(f"{path.stem}.part{i}.mp4")
        _ffmpeg(["-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={rate}:duration=1",
                 "-c:v", "libx264", "-pix_fmt", "yuv420p", "-video_track_timescale", "90000", str(part)])
        parts.append(part)
    concat.write_text("".join(f"file '{p.name}'\n" for p in parts))
    _ffmpeg(["-f", "concat", "-safe", "0", "-i", str(concat), "-c", "copy", "-fps_mode", "passthrough", str(path)])
    for p in [*parts, concat]:
        p.unlink()
    times = [i / 10 for i in range(10)] + [1 + i / 30 for i in range(30)]
    return path, times


def speak(text: str, wav: str | Path, *, speed: int = 150, voice: str = "en-us") -> Path:
    """Synthesize speech with espeak-ng into a WAV file."""
    if not shutil.which("espeak-ng"):
        raise RuntimeError("espeak-ng is not installed; run scripts/setup.sh (Debian package 'espeak-ng')")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True)
    return Path(wav)


def _wav_seconds(path: Path) -> float:
    import wave

    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def make_speech_video(path: str | Path, text: str, *, size: tuple[int, int] = (320, 240)) -> Path:
    """A still test pattern with an espeak-ng narration as its audio track."""
    path = Path(path)
    wav = speak(text, path.with_suffix(".speech.wav"))
    dur = _wav_seconds(wav) + 0.2
    _ffmpeg(["-f", "lavfi", "-i", f"smptebars=size={size[0]}x{size[1]}:rate=10", "-i", str(wav),
             "-af", "apad", "-t", f"{dur:.2f}", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)])
    wav.unlink()
    return path


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single-range support (yt-dlp and players ask for ranges)."""

    def log_message(self, format: str, *args: object) -> None:  # quiet in tests
        pass

    def send_head(self) -> Any:
        rng = self.headers.get("Range")
        path = self.translate_path(self.path)
        if not rng or not os.path.isfile(path) or not rng.startswith("bytes="):
            return super().send_head()
        size = os.path.getsize(path)
        start_s, _, end_s = rng[6:].partition("-")
        start = int(start_s or 0)
        end = min(int(end_s) if end_s else size - 1, size - 1)
        if start >= size:
            self.send_error(416)
            return None
        f = open(path, "rb")  # noqa: SIM115 - closed by the base class after copyfile
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = end - start + 1
        return f

    def copyfile(self, source: Any, outputfile: Any) -> None:
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        while remaining > 0:
            buf = source.read(min(65536, remaining))
            if not buf:
                break
            outputfile.write(buf)
            remaining -= len(buf)
        return None


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def serve_directory(directory: str | Path, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `directory` over HTTP on `host` (loopback) at a free port; yields the base URL."""
    handler = functools.partial(_RangeHandler, directory=str(directory))
    server = _Server((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
_MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"


def render_slide(path: str | Path, title: str, lines: Sequence[str] = (), *, size: tuple[int, int] = (1280, 720),
                 bg: tuple[int, int, int] = (250, 250, 250), fg: tuple[int, int, int] = (20, 20, 20)) -> Path:
    """A slide image: a large title and optional body lines (DejaVu Sans)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(img)
    scale = size[1] / 720
    draw.text((int(80 * scale), int(80 * scale)), title, fill=fg, font=ImageFont.truetype(_FONT, int(64 * scale)))
    body = ImageFont.truetype(_FONT, int(36 * scale))
    for i, line in enumerate(lines):
        draw.text((int(80 * scale), int((220 + 60 * i) * scale)), line, fill=fg, font=body)
    img.save(path)
    return Path(path)


@dataclass(frozen=True)
class TopicVideo:
    path: Path
    boundaries: list[float]  # true start time of each topic after the first
    spans: list[tuple[float, float]]  # (start, end) of each topic
    titles: list[str]


_PALETTE = [(250, 250, 250), (225, 240, 255), (255, 240, 220), (230, 255, 230), (245, 230, 255), (255, 255, 215)]


def make_topic_video(path: str | Path, topics: Sequence[tuple[str, str]], *, size: tuple[int, int] = (640, 360),
                     gap_s: float = 0.6, body: Sequence[Sequence[str]] | None = None) -> TopicVideo:
    """One slide per topic (title on screen) narrated by espeak-ng; topics joined with hard cuts.

    Args:
        topics: (title, narration) per topic.
        gap_s: silence after each narration before the next topic starts.
        body: optional body lines shown under each title.
    """
    path = Path(path)
    work = path.with_name(path.stem + "_parts")
    work.mkdir(parents=True, exist_ok=True)
    parts, spans, t = [], [], 0.0
    for i, (title, narration) in enumerate(topics):
        slide = render_slide(work / f"s{i}.png", title, (body[i] if body else ()), size=size,
                             bg=_PALETTE[i % len(_PALETTE)])
        wav = speak(narration, work / f"s{i}.wav")
        part = work / f"p{i}.mp4"
        # An explicit, frame-aligned length for both streams: `-shortest` overshoots the video by up to
        # seconds with a looped image, which desynchronises audio and video once parts are joined.
        dur = round((_wav_seconds(wav) + gap_s) * 25) / 25
        _ffmpeg(["-loop", "1", "-framerate", "25", "-i", str(slide), "-i", str(wav),
                 "-af", "apad", "-t", f"{dur:.2f}", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-tune", "stillimage",
                 "-c:a", "aac", "-ar", "44100", "-ac", "1", "-video_track_timescale", "12800", str(part)])
        parts.append(part)
        spans.append((t, t + dur))
        t += dur
    listing = work / "list.txt"
    listing.write_text("".join(f"file '{p.name}'\n" for p in parts))
    _ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(path)])
    shutil.rmtree(work, ignore_errors=True)
    return TopicVideo(path, [s for s, _ in spans[1:]], spans, [title for title, _ in topics])
