"""ingest(): URLs (direct file, HTML page with <video>), paths and uploads; caps, bad input, the cache.

Every network test talks to loopback servers started here; VIDRAY_ALLOW_HOSTS=127.0.0.1 lets the
SSRF guard through for them (the guard itself is tested in test_net_guard.py).
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cluster import metrics
from cluster.config import Settings, load_settings
from cluster.errors import InputError, PolicyError, TooLargeError
from data_pipeline.ingest import IngestedVideo, format_options, ingest
from vidray import samples

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Files:
    dir: Path
    clip: Path  # 2 s H.264/AAC MP4
    webm: Path  # 2 s VP9/Opus WebM
    long: Path  # 6 s, for the duration cap


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    d = tmp_path_factory.mktemp("ingest-media")
    clip = samples.make_video(d / "clip.mp4", duration=2, size=(160, 120), fps=10)
    webm = samples.make_video(
        d / "clip.webm", duration=2, size=(160, 120), fps=10, vcodec="libvpx-vp9", acodec="libopus"
    )
    long = samples.make_video(d / "long.mp4", duration=6, size=(96, 64), fps=5, acodec=None)
    samples._ffmpeg(["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(d / "audio.m4a")])
    (d / "empty.mp4").write_bytes(b"")
    (d / "truncated.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])  # moov is at the end
    (d / "corrupt.mp4").write_bytes(os.urandom(40_000))
    (d / "notes.txt").write_text("just some text, not a video\n" * 50)
    (d / "page.html").write_text(
        "<html><head><title>Demo page</title></head><body><h1>Demo</h1>"
        '<video controls src="clip.mp4"></video></body></html>'
    )
    (d / "novideo.html").write_text(
        "<html><head><title>Nothing</title></head><body><p>No video here.</p></body></html>"
    )
    # Unsupported codec: a Matroska file whose codec id no FFmpeg knows (same length, so it stays valid).
    samples._ffmpeg(["-i", str(clip), "-c:v", "copy", "-an", "-f", "matroska", str(d / "tmp.mkv")])
    raw = (d / "tmp.mkv").read_bytes()
    assert b"V_MPEG4/ISO/AVC" in raw
    (d / "unknown_codec.mkv").write_bytes(raw.replace(b"V_MPEG4/ISO/AVC", b"V_VIDRAY/ISO/XX", 1))
    (d / "tmp.mkv").unlink()
    return Files(d, clip, webm, long)


@pytest.fixture(scope="module")
def server(files: Files) -> Iterator[str]:
    with samples.serve_directory(files.dir) as url:
        yield url


class _Tricky(http.server.BaseHTTPRequestHandler):
    """Misbehaving endpoints: oversize (chunked or Content-Length), stalls, redirects."""

    stop = threading.Event()
    hits: dict[str, int] = {}  # noqa: RUF012 - shared on purpose, read by the tests

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        _Tricky.hits[path] = _Tricky.hits.get(path, 0) + 1
        if path == "/chunked-big.mp4":  # no Content-Length: only counting bytes can stop it
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"\0" * 65536
            try:
                for _ in range(1600):  # 100 MiB at most, far past the 1 MiB cap used in the tests
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass  # the client hung up, as it should
        elif path == "/length-big.mp4":  # Content-Length over the cap: refused before the body
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(50 * 1024**3))
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass
        elif path == "/huge.html":  # an endless "page": extractors read pages whole
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"<html><body>" + b"<p>filler</p>" * 5000
            try:
                for _ in range(2000):  # ~130 MB at most
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
        elif path == "/bomb.html":  # 40 KB on the wire, 40 MB once inflated
            body = gzip.compress(b"<html><body>" + b" " * (40 * 1024**2), compresslevel=9)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)
        elif path == "/gzip-stream.html":  # an endless encoded body: read whole before inflating
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = os.urandom(65536)  # incompressible, so the wire carries the full size
            try:
                for _ in range(1600):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
        elif path == "/drip.mp4":  # a trickle that never trips a socket timeout
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(10 * 1024**2))
            self.end_headers()
            try:
                while not _Tricky.stop.wait(0.05):
                    self.wfile.write(b"\0" * 512)
                    self.wfile.flush()
            except OSError:
                pass
        elif path == "/stall.mp4":  # accepts the connection, never answers
            _Tricky.stop.wait(30)
        elif path == "/stall-body.mp4":  # answers headers and a few bytes, then stalls
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"\0" * 1000)
            self.wfile.flush()
            _Tricky.stop.wait(30)
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def tricky() -> Iterator[str]:
    _Tricky.stop.clear()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tricky)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        _Tricky.stop.set()
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def settings(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("VIDRAY_ALLOW_HOSTS", "127.0.0.1")
    return load_settings(overrides=["ingest.timeout_s=2"])


def _cache_files(s: Settings) -> list[Path]:
    return sorted(p for p in (s.cache_dir / "videos").rglob("*") if p.is_file())


def _tmp_leftovers(s: Settings) -> list[Path]:
    return list((s.cache_dir / "tmp").iterdir())


def _hits(kind: str) -> float:
    return metrics.value("vidray_cache_hits_total", {"kind": kind})


# --- sources --------------------------------------------------------------------------------------


def test_direct_url_is_downloaded_probed_and_cached_once(
    settings: Settings, server: str, files: Files, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[dict] = []
    first = ingest(f"{server}/clip.mp4", settings, progress=events.append)
    assert not first.cached
    assert first.video_id == first.metadata.sha256[:16]
    assert first.path.read_bytes() == files.clip.read_bytes()
    assert not os.access(first.path, os.W_OK) or os.geteuid() == 0  # stored read-only
    assert first.path.stat().st_mode & 0o222 == 0
    m = first.metadata
    assert (m.width, m.height, m.video_codec, m.audio and m.audio.codec) == (160, 120, "h264", "aac")
    assert m.duration_s == pytest.approx(2.0, abs=0.15)
    assert m.webpage_url == f"{server}/clip.mp4" and m.source == f"{server}/clip.mp4"
    assert m.title == "clip"
    stages = [e["stage"] for e in events]
    assert "download" in stages and "probe" in stages and stages[-1] == "done"
    assert events[-1] == {"stage": "done", "video_id": first.video_id, "cached": False}

    before = _hits("url")
    caplog.set_level("INFO", logger="data_pipeline")
    second = ingest(f"{server}/clip.mp4", settings)
    assert second.cached and second.video_id == first.video_id and second.path == first.path
    assert second.metadata == first.metadata
    assert _hits("url") == before + 1
    assert any(
        r.getMessage() == "cache hit" and getattr(r, "cache_kind", "") == "url" for r in caplog.records
    )
    assert len(_cache_files(settings)) == 2  # video + metadata.json, once
    assert _tmp_leftovers(settings) == []


def test_html_page_with_video_tag(settings: Settings, server: str) -> None:
    v = ingest(f"{server}/page.html", settings)
    assert v.metadata.video_codec == "h264"
    assert v.metadata.title and "Demo page" in v.metadata.title
    assert v.metadata.webpage_url == f"{server}/page.html"


def test_same_bytes_from_another_source_share_one_file(settings: Settings, server: str, files: Files) -> None:
    by_url = ingest(f"{server}/clip.mp4", settings)
    before = _hits("video")
    by_path = ingest(files.clip, settings)
    by_upload = ingest(files.clip.read_bytes(), settings, filename="my clip.mp4")
    assert by_path.cached and by_upload.cached
    assert by_path.video_id == by_upload.video_id == by_url.video_id
    assert by_path.source == str(files.clip.resolve())
    assert by_upload.source == "upload:my_clip.mp4" and by_upload.metadata.source == "upload:my_clip.mp4"
    assert _hits("video") == before + 2
    assert len(_cache_files(settings)) == 2


def test_path_and_upload_of_new_bytes(settings: Settings, files: Files) -> None:
    up = ingest(files.webm.read_bytes(), settings, filename="../../etc/x.webm")
    assert not up.cached and up.path.suffix == ".webm" and up.metadata.video_codec == "vp9"
    assert up.path.parent.parent.parent == settings.cache_dir / "videos"
    local = ingest(str(files.long), settings)
    assert not local.cached and local.metadata.audio is None
    assert files.long.stat().st_mode & 0o200  # the user's file is copied, not made read-only


def test_format_options_follow_settings() -> None:
    s = load_settings(
        overrides=[
            "ingest.max_height=480",
            "ingest.max_download_bytes=5000000",
            "ingest.preferred_formats=[webm]",
        ],
        env={},
    )
    opts = format_options(s.ingest)
    assert opts["format"].startswith("b[height<=?480][ext=webm][filesize<?5000000]/")
    assert "bv*[height<=?480][filesize<?5000000]+ba[filesize<?5000000]" in opts["format"]
    assert opts["format_sort"] == ["res:480"] and opts["merge_output_format"] == "webm/mkv"


def test_max_height_picks_the_smaller_source(settings: Settings, server: str, files: Files) -> None:
    """A page offering 240p and 120p sources: the cap picks 120p; no cap picks the best."""
    samples.make_video(files.dir / "big.mp4", duration=1, size=(320, 240), fps=10, acodec=None)
    samples.make_video(files.dir / "small.mp4", duration=1, size=(160, 120), fps=10, acodec=None)
    (files.dir / "multi.html").write_text(
        "<html><head><title>Multi</title></head><body><video controls>"
        '<source src="big.mp4" type="video/mp4" res="240"><source src="small.mp4" type="video/mp4" res="120">'
        "</video></body></html>"
    )
    assert ingest(f"{server}/multi.html", settings).metadata.height == 240
    settings.ingest.max_height = 200
    assert ingest(f"{server}/multi.html", settings).metadata.height == 120


def test_format_options_change_the_url_cache_key(settings: Settings, server: str) -> None:
    ingest(f"{server}/clip.mp4", settings)
    other = settings.model_copy(deep=True)
    other.ingest.max_height = 480
    again = ingest(f"{server}/clip.mp4", other)
    assert not again.cached  # new format options: fetched again (bytes still stored once)
    assert len(_cache_files(settings)) == 2


# --- caps -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/chunked-big.mp4", "/length-big.mp4"])
def test_download_over_the_size_cap_is_stopped_and_deleted(
    settings: Settings, tricky: str, path: str
) -> None:
    settings.ingest.max_download_bytes = 1024 * 1024
    t0 = time.monotonic()
    with pytest.raises(TooLargeError, match=r"max_download_bytes") as e:
        ingest(f"{tricky}{path}", settings)
    assert "1,048,576" in str(e.value)
    assert time.monotonic() - t0 < 15
    assert _cache_files(settings) == [] and _tmp_leftovers(settings) == []


def test_upload_over_the_size_cap(settings: Settings, files: Files) -> None:
    settings.ingest.max_download_bytes = 1000
    with pytest.raises(TooLargeError, match=r"upload clip\.mp4"):
        ingest(files.clip.read_bytes(), settings, filename="clip.mp4")


def test_duration_cap_after_probe(settings: Settings, server: str) -> None:
    settings.ingest.max_duration_s = 5
    with pytest.raises(TooLargeError, match=r"lasts 6 s, over the limit of 5 s"):
        ingest(f"{server}/long.mp4", settings)
    assert _cache_files(settings) == [] and _tmp_leftovers(settings) == []


def test_duration_cap_applies_to_cache_hits(settings: Settings, files: Files) -> None:
    ingest(files.long, settings)
    settings.ingest.max_duration_s = 5
    with pytest.raises(TooLargeError, match="max_duration_s"):
        ingest(files.long, settings)


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("empty.mp4", r"empty|0 bytes"),
        ("truncated.mp4", r"not a readable video container|truncated|corrupt"),
        ("corrupt.mp4", r"not a readable video container|corrupt"),
        ("notes.txt", r"no video found|not a readable video container|is text, not a video"),
        ("novideo.html", r"no video found"),
        ("audio.m4a", r"no video stream \(audio-only"),
        ("unknown_codec.mkv", r"codec is not supported"),
    ],
)
def test_bad_urls_give_clear_input_errors(settings: Settings, server: str, name: str, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern) as e:
        ingest(f"{server}/{name}", settings)
    assert not isinstance(e.value, PolicyError | TooLargeError)
    assert str(settings.cache_dir) not in str(e.value)  # no internal paths in user-facing messages
    assert _cache_files(settings) == [] and _tmp_leftovers(settings) == []


@pytest.mark.parametrize(
    "name", ["empty.mp4", "truncated.mp4", "corrupt.mp4", "audio.m4a", "unknown_codec.mkv"]
)
def test_bad_uploads_and_paths(settings: Settings, files: Files, name: str) -> None:
    data = (files.dir / name).read_bytes()
    with pytest.raises(InputError):
        ingest(data, settings, filename=name)
    with pytest.raises(InputError):
        ingest(files.dir / name, settings)
    assert _cache_files(settings) == [] and _tmp_leftovers(settings) == []


def test_missing_path_and_directory(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        ingest(tmp_path / "nope.mp4", settings)
    with pytest.raises(InputError, match="is a directory"):
        ingest(str(tmp_path), settings)
    with pytest.raises(InputError, match=r"write https://www\.youtube\.com/watch\?v=x"):
        ingest("www.youtube.com/watch?v=x", settings)


def test_still_images_are_not_videos(settings: Settings, tmp_path: Path) -> None:
    png = tmp_path / "still.png"
    samples._ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1", str(png)])
    with pytest.raises(InputError, match=r"still\.png is a still image \(png_pipe\), not a video"):
        ingest(png.read_bytes(), settings, filename="still.png")
    assert _cache_files(settings) == [] and _tmp_leftovers(settings) == []


def test_http_errors(settings: Settings, server: str) -> None:
    with pytest.raises(InputError, match="HTTP 404"):
        ingest(f"{server}/missing.mp4", settings)


@pytest.mark.parametrize("path", ["/stall.mp4", "/stall-body.mp4"])
def test_stalled_server_times_out(settings: Settings, tricky: str, path: str) -> None:
    settings.ingest.timeout_s = 1
    t0 = time.monotonic()
    with pytest.raises(InputError, match=r"did not answer within 1 s|timed out"):
        ingest(f"{tricky}{path}", settings)
    assert time.monotonic() - t0 < 20  # a socket timeout per try, a bounded number of tries
    assert _cache_files(settings) == [] and _tmp_leftovers(settings) == []


@pytest.mark.parametrize("path", ["/huge.html", "/bomb.html", "/gzip-stream.html"])
def test_huge_or_compressed_bomb_pages_are_refused(settings: Settings, tricky: str, path: str) -> None:
    settings.ingest.max_download_bytes = 4 * 1024**2  # the page limit is min(32 MiB, this)
    with pytest.raises(TooLargeError, match=r"sent a page over 4,194,304 bytes"):
        ingest(f"{tricky}{path}", settings)
    assert _tmp_leftovers(settings) == []


class _Cancelled(Exception):
    pass


def test_a_raising_progress_callback_cancels_cleanly(settings: Settings, server: str) -> None:
    """Job runners cancel by raising from `progress`: the exception comes back, nothing is kept."""

    def cancel(event: dict) -> None:
        if event["stage"] == "download":
            raise _Cancelled("job cancelled")

    with pytest.raises(_Cancelled):
        ingest(f"{server}/clip.webm", settings, progress=cancel)
    assert _cache_files(settings) == [] and _tmp_leftovers(settings) == []
    assert not ingest(f"{server}/clip.webm", settings).cached  # nothing half-stored to hit


def test_deadline_stops_a_slow_drip(settings: Settings, tricky: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(InputError, match=r"took longer than 1 s"):
        ingest(f"{tricky}/drip.mp4", settings, deadline_s=1)
    assert time.monotonic() - t0 < 10
    assert _tmp_leftovers(settings) == []


def test_hls_playlist_is_fetched_natively(settings: Settings, server: str, files: Files) -> None:
    hls = files.dir / "hls"
    hls.mkdir(exist_ok=True)
    samples._ffmpeg(["-i", str(files.clip), "-c", "copy", "-f", "hls", "-hls_time", "1",
                     "-hls_playlist_type", "vod", "-hls_segment_filename", str(hls / "seg%d.ts"),
                     str(hls / "index.m3u8")])  # fmt: skip
    v = ingest(f"{server}/hls/index.m3u8", settings)
    assert v.metadata.video_codec == "h264" and v.metadata.duration_s == pytest.approx(2.0, abs=0.3)


def test_file_object_uploads_stream_with_the_cap(settings: Settings, files: Files) -> None:
    with open(files.webm, "rb") as f:
        v = ingest(f, settings)
    assert v.source == "upload:clip.webm" and not v.cached
    with tempfile.SpooledTemporaryFile(max_size=1024) as spooled:  # what web frameworks hand over
        spooled.write(files.webm.read_bytes())
        spooled.seek(0)
        assert ingest(spooled, settings, filename="again.webm").cached  # type: ignore[arg-type]
    settings.ingest.max_download_bytes = 10_000
    with open(files.clip, "rb") as f, pytest.raises(TooLargeError, match="over the limit of 10,000 bytes"):
        ingest(f, settings)
    with pytest.raises(InputError, match="empty"):
        ingest(io.BytesIO(b""), settings, filename="nothing.mp4")
    assert _tmp_leftovers(settings) == []


def test_servers_can_refuse_local_paths(settings: Settings, files: Files) -> None:
    for source in (str(files.clip), files.clip, "/etc/passwd", "clip.mp4"):
        with pytest.raises(PolicyError, match="local paths are not accepted here"):
            ingest(source, settings, allow_paths=False)
    assert _cache_files(settings) == []


def test_loopback_is_refused_without_allow_hosts(
    data_dir: Path, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIDRAY_ALLOW_HOSTS", raising=False)
    with pytest.raises(PolicyError, match="loopback"):
        ingest(f"{server}/clip.mp4", load_settings())
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/x.mp4", "data:video/mp4;base64,AAAA"):
        with pytest.raises(PolicyError, match="scheme is refused"):
            ingest(url, load_settings())


# --- normalisation through ingest -----------------------------------------------------------------


@pytest.mark.slow
def test_normalize_on_ingest(settings: Settings, files: Files) -> None:
    settings.ingest.normalize.enabled = True
    settings.ingest.normalize.max_height = 64
    v = ingest(files.webm, settings)
    assert (v.metadata.video_codec, v.metadata.container.split(",")[0], v.metadata.height) == (
        "h264",
        "mov",
        64,
    )
    assert v.metadata.audio is not None and v.metadata.audio.codec == "aac"
    assert v.path.suffix == ".mp4"
    again = ingest(files.webm.read_bytes(), settings, filename="x.webm")
    assert again.cached and again.video_id == v.video_id  # original bytes map to the normalised copy


# --- two processes, one file ----------------------------------------------------------------------

_CHILD = """
import json, sys
from cluster.config import load_settings
from data_pipeline.ingest import ingest
v = ingest(sys.argv[1], load_settings())
print(json.dumps({"video_id": v.video_id, "cached": v.cached, "path": str(v.path)}))
"""


@pytest.mark.slow
def test_concurrent_ingests_from_two_processes_end_with_one_file(
    settings: Settings, server: str, data_dir: Path
) -> None:
    env = {**os.environ, "VIDRAY_DATA_DIR": str(data_dir), "VIDRAY_ALLOW_HOSTS": "127.0.0.1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, f"{server}/clip.webm"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert outs[0]["video_id"] == outs[1]["video_id"] and outs[0]["path"] == outs[1]["path"]
    assert sorted(o["cached"] for o in outs) == [False, True]  # the second waited for the first
    assert len(_cache_files(settings)) == 2 and _tmp_leftovers(settings) == []


def test_ingested_video_forbids_unknown_fields(settings: Settings, files: Files) -> None:
    v = ingest(files.clip, settings)
    with pytest.raises(ValueError, match="extra"):
        IngestedVideo.model_validate({**v.model_dump(), "surprise": 1})
