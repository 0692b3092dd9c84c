"""SSRF guard: refusals decided before connecting, and the same rule on every connection yt-dlp makes.

All traffic stays on 127.0.0.0/8: the refused addresses (10.x, 169.254.169.254, ...) are literals or
resolve locally, and are refused before any socket opens.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster.config import load_settings
from cluster.errors import InputError, PolicyError
from data_pipeline import net_guard
from data_pipeline.ingest import ingest
from data_pipeline.net_guard import AllowList, check_url, guarded_downloads, yt_dlp_params
from vidray import samples


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.0.0.2:8080/x.mp4", "loopback"),
        ("http://localhost/video.mp4", "loopback"),
        ("http://2130706433/", "loopback"),  # decimal form of 127.0.0.1
        ("http://0x7f.1/", "loopback"),  # inet_aton's hex/short form
        ("http://10.1.2.3/v.mp4", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.10/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[fd00:ec2::254]/latest/", "cloud metadata"),
        ("http://100.100.100.200/", "cloud metadata"),
        ("http://169.254.10.10/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", r"loopback address \(the IPv4 address 127\.0\.0\.1 inside it\)"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
        ("http://[64:ff9b::a00:1]/", "NAT64"),  # NAT64 of 10.0.0.1
        ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 of 127.0.0.1
        ("http://0.0.0.0:8000/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://100.64.0.1/", "non-public"),  # carrier-grade NAT
        ("https://user:pw@192.168.0.1:443/a", "private"),
    ],
)
def test_non_public_addresses_are_refused(url: str, why: str) -> None:
    with pytest.raises(PolicyError, match=why) as e:
        check_url(url)
    assert "ingest.allow_hosts" in str(e.value) and "VIDRAY_ALLOW_HOSTS" in str(e.value)


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/v.mp4", "data:video/mp4;base64,AAAA", "gopher://x/",
     "javascript:alert(1)", "//example.com/v.mp4", "HTTP+unix://x"],
)  # fmt: skip
def test_non_http_schemes_are_refused(url: str) -> None:
    with pytest.raises(PolicyError, match=r"scheme is refused; vidray fetches only http:// and https://"):
        check_url(url)


def test_public_addresses_pass_without_any_connection() -> None:
    check_url("http://93.184.216.34/v.mp4")
    check_url("https://[2606:4700:4700::1111]:8443/x")
    check_url("HTTPS://1.1.1.1/")


def test_bad_urls_are_input_errors() -> None:
    with pytest.raises(InputError, match="no host"):
        check_url("http:///nohost")
    with pytest.raises(InputError, match="not a valid URL"):
        check_url("http://[::1/")
    with pytest.raises(InputError, match="cannot be resolved"):
        check_url("http://no-such-host.invalid/")


def test_allow_hosts_names_and_cidrs() -> None:
    check_url("http://127.0.0.1:9000/x", ["127.0.0.1"])
    check_url("http://10.20.30.40/x", ["10.0.0.0/8"])
    check_url("http://[::1]:80/", ["[::1]"])
    check_url("http://localhost/", ["localhost"])  # a name entry trusts the name, whatever it resolves to
    with pytest.raises(PolicyError, match="private"):
        check_url("http://192.168.0.1/", ["10.0.0.0/8", "127.0.0.1"])
    with pytest.raises(PolicyError, match="loopback"):
        check_url("http://127.0.0.2/", ["127.0.0.1"])
    allow = AllowList.parse([" 127.0.0.1 ", "Media.Internal.", "fd00::/8", ""])
    assert allow.names == {"media.internal"} and len(allow.networks) == 2
    assert allow.allows_name("MEDIA.internal")
    with pytest.raises(InputError, match="neither a hostname nor an IP/CIDR"):
        AllowList.parse(["127.0.0.1:8080"])


def test_allow_hosts_from_the_environment(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("VIDRAY_ALLOW_HOSTS", "127.0.0.1, 10.0.0.0/8")
    s = load_settings()
    check_url("http://10.9.9.9/", s.ingest.allow_hosts)
    check_url("http://127.0.0.1/", s.ingest.allow_hosts)


# --- layer 2: connections made by yt-dlp ---------------------------------------------------------


class _Redirector(http.server.BaseHTTPRequestHandler):
    target = ""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", _Redirector.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Counting(samples._RangeHandler):
    hits: list[str] = []  # noqa: RUF012 - read by the tests

    def send_head(self) -> Any:
        _Counting.hits.append(self.path)
        return super().send_head()


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("guard")
    samples.make_video(d / "clip.mp4", duration=1, size=(96, 64), fps=5, acodec=None)
    return d


def _serve(handler: Any, host: str) -> tuple[http.server.ThreadingHTTPServer, str]:
    srv = http.server.ThreadingHTTPServer((host, 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://{host}:{srv.server_address[1]}"


@pytest.fixture(scope="module")
def victim(clip_dir: Path) -> Iterator[str]:
    """A server on 127.0.0.2 (not allowed) that would happily serve the clip."""
    import functools

    srv, url = _serve(functools.partial(_Counting, directory=str(clip_dir)), "127.0.0.2")
    try:
        yield url
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def redirector() -> Iterator[str]:
    srv, url = _serve(_Redirector, "127.0.0.1")
    try:
        yield url
    finally:
        srv.shutdown()
        srv.server_close()


def _urlopen(url: str) -> bytes:
    import yt_dlp

    with yt_dlp.YoutubeDL({"quiet": True, "socket_timeout": 5, **yt_dlp_params()}) as ydl:
        return bytes(ydl.urlopen(url).read())


def test_redirect_to_a_disallowed_address_is_refused_at_connect(redirector: str, victim: str) -> None:
    _Redirector.target = victim
    _Counting.hits.clear()
    check_url(redirector, ["127.0.0.1"])  # the first hop is allowed ...
    with guarded_downloads(["127.0.0.1"]) as guard, pytest.raises(Exception, match=r"127\.0\.0\.2"):
        _urlopen(f"{redirector}/clip.mp4")
    assert guard.refusals and "127.0.0.2 is a loopback address" in str(guard.refusals[0])
    assert _Counting.hits == []  # ... and the redirect target never saw a request


def test_redirect_refusal_through_ingest(
    redirector: str, victim: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDRAY_ALLOW_HOSTS", "127.0.0.1")
    _Redirector.target = victim
    _Counting.hits.clear()
    with pytest.raises(PolicyError, match=r"127\.0\.0\.2 is a loopback address"):
        ingest(f"{redirector}/clip.mp4", load_settings())
    assert _Counting.hits == []
    assert not list((data_dir / "cache" / "videos").rglob("*.mp4"))


def test_redirect_to_another_scheme_is_refused(redirector: str) -> None:
    _Redirector.target = "ftp://127.0.0.1:1"
    with guarded_downloads(["127.0.0.1"]) as guard, pytest.raises(Exception, match="ftp"):
        _urlopen(f"{redirector}/x")
    assert guard.refusals and "follows only http:// and https://" in str(guard.refusals[0])


def test_dns_rebinding_is_caught_at_connect(victim: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first DNS answer is allowed, the one at connect time is not: the connect is refused.

    getaddrinfo is replaced for one made-up name because real DNS cannot be rebound here.
    """
    port = int(victim.rsplit(":", 1)[1])
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", "127.0.0.2", "127.0.0.2", "127.0.0.2"])

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            return real(next(answers), *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    _Counting.hits.clear()
    url = f"http://rebind.test:{port}/clip.mp4"
    check_url(url, ["127.0.0.1"])  # resolves to 127.0.0.1: allowed
    with guarded_downloads(["127.0.0.1"]) as guard, pytest.raises(Exception, match=r"127\.0\.0\.2"):
        _urlopen(url)
    assert "rebind.test resolves to 127.0.0.2" in str(guard.refusals[0])
    assert _Counting.hits == []


def test_allowed_connections_work_and_no_guard_means_no_change(victim: str) -> None:
    _Counting.hits.clear()
    with guarded_downloads(["127.0.0.2"]) as guard:
        assert _urlopen(f"{victim}/clip.mp4")[4:8] == b"ftyp"
    assert guard.refusals == [] and _Counting.hits == ["/clip.mp4"]
    with guarded_downloads([]), pytest.raises(Exception, match="loopback"):
        _urlopen(f"{victim}/clip.mp4")
    assert _urlopen(f"{victim}/clip.mp4")[4:8] == b"ftyp"  # outside any block: yt-dlp as shipped
    assert net_guard._active.get() is None


def test_only_the_urllib_handler_is_offered_under_the_guard() -> None:
    import yt_dlp
    from yt_dlp.networking.common import Request

    with yt_dlp.YoutubeDL({"quiet": True, **yt_dlp_params()}) as ydl:
        director = ydl._request_director
        with guarded_downloads([]):
            keys = {h.RH_KEY for h in director._get_handlers(Request("https://example.com/"))}
        assert keys == {"Urllib"}
        outside = {h.RH_KEY for h in director._get_handlers(Request("https://example.com/"))}
        assert "Urllib" in outside


def test_yt_dlp_params_disable_bypasses() -> None:
    p = yt_dlp_params()
    assert p["compat_opts"] == ["prefer-legacy-http-handler"]
    assert p["proxy"] == "" and p["external_downloader"] == {"default": "native"}
    assert p["concurrent_fragment_downloads"] == 1 and p["enable_file_urls"] is False


def test_page_whose_video_lives_on_a_disallowed_host_is_refused(
    clip_dir: Path, victim: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDRAY_ALLOW_HOSTS", "127.0.0.1")
    (clip_dir / "page.html").write_text(f'<html><body><video src="{victim}/clip.mp4"></video></body></html>')
    _Counting.hits.clear()
    with samples.serve_directory(clip_dir) as base, pytest.raises(PolicyError, match=r"127\.0\.0\.2"):
        ingest(f"{base}/page.html", load_settings())
    assert _Counting.hits == []


def test_hls_segments_on_a_disallowed_host_are_refused(
    clip_dir: Path, victim: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The playlist is on an allowed host; its segments point at 127.0.0.2."""
    monkeypatch.setenv("VIDRAY_ALLOW_HOSTS", "127.0.0.1")
    samples._ffmpeg(["-i", str(clip_dir / "clip.mp4"), "-c", "copy", "-f", "hls", "-hls_time", "1",
                     "-hls_playlist_type", "vod", "-hls_base_url", f"{victim}/",
                     "-hls_segment_filename", str(clip_dir / "seg%d.ts"), str(clip_dir / "foreign.m3u8")])  # fmt: skip
    assert f"{victim}/seg0.ts" in (clip_dir / "foreign.m3u8").read_text()
    _Counting.hits.clear()
    with samples.serve_directory(clip_dir) as base, pytest.raises(PolicyError, match=r"127\.0\.0\.2"):
        ingest(f"{base}/foreign.m3u8", load_settings())
    assert _Counting.hits == []
    assert not list((data_dir / "cache" / "videos").rglob("*.mp4"))
