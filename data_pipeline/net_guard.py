"""SSRF guard: vidray fetches URLs that users type, so it must never be talked into fetching
the machine's own services, the private network or a cloud metadata endpoint.

Start here. Two layers, one rule (`_refusal`):

1. `check_url(url, allow_hosts)` runs before any connection: only http(s) is accepted, and the
   host's DNS answers must all be public addresses (or allowed by `allow_hosts`).
2. `guarded_downloads(allow_hosts)` applies the same rule to every connection yt-dlp opens while
   the block runs: redirects, the `<video src>` a generic page points to, HLS/DASH fragments.
   Each connection re-resolves the host and the rule is checked on the addresses actually dialled
   (so a DNS answer that changes between the check and the connect - DNS rebinding - is caught),
   and the socket connects to the checked address itself, never to a name resolved again.

How layer 2 hooks yt-dlp (verified against yt-dlp 2026.11 `yt_dlp/networking`): the `urllib`
request handler builds every HTTP(S) connection through the module-level name
`_urllib.create_connection` (from `_helper`), looked up at call time. We replace that name (and
`_helper.create_connection`) with a wrapper that checks addresses when a policy is active in the
current context and otherwise behaves exactly like the original. Belt and braces around it: the
request director only offers the urllib handler while a policy is active (the `requests` and
`curl_cffi` handlers dial through urllib3/libcurl, which the wrapper cannot see), each request's
URL must be http(s) (urllib's FTP handler would dial through ftplib), and so must each redirect.
Callers also pass `compat_opts=['prefer-legacy-http-handler']` and disable proxies
(`yt_dlp_params()`), since a proxy would dial the target on our behalf.

With `max_read_bytes`, the block also bounds what is read whole (an extractor reading a page, a
gzip body inflated in one call), so a huge page or a compression bomb cannot exhaust memory.

The policy lives in a contextvar, so it covers the thread (or asyncio task) that entered the
block; yt-dlp downloads run in the caller's thread when `concurrent_fragment_downloads` is 1.
"""

from __future__ import annotations

import contextvars
import functools
import ipaddress
import socket
import threading
import urllib.parse
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cluster.errors import InputError, PolicyError, TooLargeError, UnavailableError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})
_READ_CHUNK = 1 << 20  # whole-body reads are done in 1 MiB steps so the limit is checked as they grow

# Cloud metadata services, named explicitly so the refusal says what the address is. Most also fall
# in a non-global range (link-local, ULA, CGNAT), which the generic rule refuses anyway.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (classic)
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class AllowList:
    """Hosts (exact names) and networks a deployment trusts although they are not public."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Sequence[str]) -> AllowList:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            if entry.startswith("[") and entry.endswith("]"):
                entry = entry[1:-1]
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if "/" in entry or ":" in entry or " " in entry:
                raise InputError(
                    f"allow_hosts entry {raw!r} is neither a hostname nor an IP/CIDR; "
                    "write e.g. 127.0.0.1, 10.0.0.0/8 or media.internal (no port, no scheme)"
                )
            names.add(entry)
        return cls(frozenset(names), tuple(networks))

    def allows_name(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.names

    def allows_ip(self, ip: IPAddress) -> bool:
        return any(ip.version == n.version and ip in n for n in self.networks)


def _refusal(ip: IPAddress) -> str | None:
    """Why `ip` may not be dialled by default, or None for a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            inner = _refusal(embedded)
            return f"{inner} (the IPv4 address {embedded} inside it)" if inner else None
        if ip in _NAT64:  # the IPv4 address is the low 32 bits
            v4 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            inner = _refusal(v4)
            return f"{inner} (the IPv4 address {v4} inside it, via NAT64)" if inner else None
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private-network address"),
        (not ip.is_global, "a non-public address"),
    )
    return next((why for bad, why in checks if bad), None)


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def check_ip(ip: str | IPAddress, allow: AllowList, *, host: str = "", url: str = "") -> None:
    """Raise `PolicyError` unless `ip` is public or allowed."""
    addr = ip if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address) else _parse_ip(ip)
    if addr is None:
        raise PolicyError(f"{url or host}: {ip!r} is not an IP address; refusing to connect")
    if allow.allows_ip(addr):
        return
    why = _refusal(addr)
    if why:
        target = url or host or str(addr)
        via = f" ({host} resolves to {addr})" if host and _parse_ip(host) != addr else ""
        raise PolicyError(
            f"{target} is refused: {addr} is {why}{via}; vidray only fetches public addresses. "
            f"To allow it on purpose, add the host or a CIDR to ingest.allow_hosts "
            f"(env VIDRAY_ALLOW_HOSTS={host or addr})"
        )


def _resolve(host: str, port: int) -> list[tuple[Any, ...]]:
    try:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise InputError(f"host {host!r} cannot be resolved ({e}); check the URL") from e


def check_url(url: str, allow_hosts: Sequence[str] | AllowList = ()) -> None:
    """Refuse `url` unless it is http(s) and its host resolves only to public or allowed addresses.

    Runs before anything connects, so refused URLs cause no traffic (a DNS lookup at most).

    Raises:
        PolicyError: bad scheme, or a loopback/private/link-local/multicast/reserved/metadata address.
        InputError: the URL is malformed or its host cannot be resolved.
    """
    allow = allow_hosts if isinstance(allow_hosts, AllowList) else AllowList.parse(allow_hosts)
    text = url.strip()
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise InputError(f"{url!r} is not a valid URL ({e})") from e
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = text if len(text) < 80 else text[:77] + "..."
        raise PolicyError(
            f"{shown!r}: the {scheme + ':' if scheme else 'missing'} scheme is refused; "
            "vidray fetches only http:// and https:// URLs (upload local files instead)"
        )
    host = parts.hostname
    if not host:
        raise InputError(f"{url!r} has no host; write a full URL like https://example.com/video.mp4")
    if allow.allows_name(host):
        return
    literal = _parse_ip(host)
    if literal is not None:
        check_ip(literal, allow, host=host, url=text)
        return
    for info in _resolve(host, port or (443 if scheme == "https" else 80)):
        check_ip(info[4][0], allow, host=host, url=text)


# --- layer 2: every connection yt-dlp makes -------------------------------------------------------


E = TypeVar("E", bound=InputError)


@dataclass
class GuardState:
    """The policy active inside one `guarded_downloads` block, and what it refused.

    `refusals` holds PolicyErrors (an address or scheme) and TooLargeErrors (a page over
    `max_read_bytes`); yt-dlp wraps the exception it saw, so callers raise these instead.
    """

    allow: AllowList
    max_read_bytes: int | None = None
    refusals: list[InputError] = field(default_factory=list)

    def refuse(self, error: E) -> E:
        self.refusals.append(error)
        return error


_active: contextvars.ContextVar[GuardState | None] = contextvars.ContextVar("vidray_net_guard", default=None)
_install_lock = threading.Lock()
_installed = False


class GuardRefused(ConnectionRefusedError):
    """Raised inside yt-dlp's networking; an OSError so yt-dlp reports it as a transport error."""

    def __init__(self, error: InputError) -> None:
        super().__init__(str(error))
        self.error = error


def _guarded_create_connection(original: Any) -> Any:
    @functools.wraps(original)
    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        state = _active.get()
        if state is None:
            return original(address, *args, **kwargs)
        host, port = address
        if state.allow.allows_name(host):
            return original(address, *args, **kwargs)
        # Resolve once, check every answer, then dial the checked addresses only: the original
        # tries each getaddrinfo entry in turn, so pin it to ours by resolving to literals.
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        for info in infos:
            try:
                check_ip(str(info[4][0]), state.allow, host=host)
            except PolicyError as e:
                raise GuardRefused(state.refuse(e)) from None
        err: OSError | None = None
        for info in infos:
            try:
                return original((str(info[4][0]), port), *args, **kwargs)
            except OSError as e:
                err = e
        raise err or OSError(f"no address to connect to for {host}")

    create_connection.__vidray_guard__ = True  # type: ignore[attr-defined]
    return create_connection


def _install() -> None:
    """Patch yt-dlp's networking once; fails closed if yt-dlp's internals moved."""
    global _installed
    with _install_lock:
        if _installed:
            return
        try:
            from yt_dlp.networking import _helper, _urllib
            from yt_dlp.networking.common import Request, RequestDirector
        except ImportError as e:  # pragma: no cover - yt-dlp is a core dependency
            raise UnavailableError(f"yt-dlp networking is unavailable ({e}); reinstall vidray") from e
        missing = [
            name
            for obj, name in (
                (_helper, "create_connection"),
                (_urllib, "create_connection"),
                (_urllib, "RedirectHandler"),
                (RequestDirector, "_get_handlers"),
                (RequestDirector, "send"),
                (_urllib, "UrllibResponseAdapter"),
                (_urllib, "HTTPHandler"),
            )
            if not hasattr(obj, name)
        ]
        if missing:
            raise UnavailableError(
                f"this yt-dlp version lacks {missing}; the SSRF guard cannot be installed, so URL "
                "ingest is disabled. Install the yt-dlp version pinned in pyproject.toml"
            )
        for module in (_helper, _urllib):
            current = module.create_connection
            if not getattr(current, "__vidray_guard__", False):
                module.create_connection = _guarded_create_connection(current)

        original_get_handlers = RequestDirector._get_handlers
        original_send = RequestDirector.send
        original_redirect = _urllib.RedirectHandler.redirect_request

        def _get_handlers(self: Any, request: Any) -> list[Any]:
            handlers = original_get_handlers(self, request)
            if _active.get() is not None:
                handlers = [h for h in handlers if getattr(h, "RH_KEY", "") == "Urllib"]
            return handlers

        def send(self: Any, request: Request) -> Any:
            _check_request_url(request.url)
            return original_send(self, request)

        def redirect_request(
            self: Any, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
        ) -> Any:
            _check_request_url(newurl)
            return original_redirect(self, req, fp, code, msg, headers, newurl)

        RequestDirector._get_handlers = _get_handlers
        RequestDirector.send = send
        _urllib.RedirectHandler.redirect_request = redirect_request
        _install_read_limits(_urllib)
        _installed = True


def _install_read_limits(_urllib: Any) -> None:
    """Bound whole-body reads and decompression while a policy with `max_read_bytes` is active.

    Why: extractors read a page whole (`response.read()`) before any progress hook runs, and
    yt-dlp's urllib handler inflates gzip/deflate bodies in one call; a huge or bomb-compressed
    "page" would otherwise exhaust memory. Reads of a given size (the downloader's blocks) are
    untouched: the download cap is the progress hook's job.
    """
    original_read = _urllib.UrllibResponseAdapter.read
    original_http_response = _urllib.HTTPHandler.http_response

    def read(self: Any, amt: int | None = None) -> bytes:
        state = _active.get()
        if state is None or state.max_read_bytes is None or (amt is not None and amt >= 0):
            return bytes(original_read(self, amt))
        try:
            return _read_bounded(functools.partial(original_read, self), state, str(getattr(self, "url", "")))
        except GuardRefused:
            self.close()
            raise

    def http_response(self: Any, req: Any, resp: Any) -> Any:
        # An encoded body is read whole (then inflated) before yt-dlp sees the response: bound it.
        state = _active.get()
        if state is not None and state.max_read_bytes is not None and resp.headers.get("Content-Encoding"):
            raw_read = resp.read
            url = str(getattr(resp, "url", "") or req.get_full_url())

            def bounded_read(amt: int | None = None) -> bytes:
                if amt is not None and amt >= 0:
                    return bytes(raw_read(amt))
                return _read_bounded(raw_read, state, url)

            resp.read = bounded_read
        return original_http_response(self, req, resp)

    def bounded(original: Callable[[bytes], bytes], wbits: tuple[int, ...]) -> Any:
        def decompress(data: bytes) -> bytes:
            state = _active.get()
            if state is None or state.max_read_bytes is None or not data:
                return original(data)
            limit = state.max_read_bytes
            error: zlib.error | None = None
            for wb in wbits:  # deflate bodies come raw or zlib-wrapped; try both like yt-dlp does
                try:
                    out = zlib.decompressobj(wb).decompress(data, limit + 1)
                except zlib.error as e:
                    error = e
                    continue
                if len(out) > limit:
                    raise GuardRefused(state.refuse(_page_too_large("a compressed response", limit)))
                return out
            raise error or zlib.error("cannot decompress")

        return staticmethod(decompress)

    _urllib.UrllibResponseAdapter.read = read
    _urllib.HTTPHandler.http_response = _urllib.HTTPHandler.https_response = http_response
    _urllib.HTTPHandler.gz = bounded(_urllib.HTTPHandler.gz, (zlib.MAX_WBITS | 16,))
    _urllib.HTTPHandler.deflate = bounded(_urllib.HTTPHandler.deflate, (-zlib.MAX_WBITS, zlib.MAX_WBITS))
    # Brotli stays unbounded: yt-dlp only offers it when the optional brotli module is installed.


def _read_bounded(read: Callable[[int], bytes], state: GuardState, what: str) -> bytes:
    """Read to the end in 1 MiB steps; refuse once the total passes `state.max_read_bytes`."""
    limit = state.max_read_bytes or 0
    chunks: list[bytes] = []
    total = 0
    while block := read(_READ_CHUNK):
        total += len(block)
        if total > limit:
            raise GuardRefused(state.refuse(_page_too_large(what, limit)))
        chunks.append(block)
    return b"".join(chunks)


def _page_too_large(what: str, limit: int) -> TooLargeError:
    return TooLargeError(
        f"{what} sent a page over {limit:,} bytes while looking for the video; "
        "pass a direct link to the video or a smaller page"
    )


def _check_request_url(url: str) -> None:
    """Scheme check for each request and redirect while a policy is active (addresses: at connect)."""
    state = _active.get()
    if state is None:
        return
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = url if len(url) < 80 else url[:77] + "..."
        raise GuardRefused(
            state.refuse(
                PolicyError(
                    f"{shown!r}: a {scheme}: URL was requested during a download (a redirect or a link in the "
                    "page); vidray follows only http:// and https://"
                )
            )
        )


@contextmanager
def guarded_downloads(
    allow_hosts: Sequence[str] | AllowList = (), *, max_read_bytes: int | None = None
) -> Iterator[GuardState]:
    """Apply the SSRF rule to every connection yt-dlp opens inside the block, in this context.

    Args:
        allow_hosts: names, IPs or CIDRs trusted although not public.
        max_read_bytes: refuse a whole-body read (a web page) or a decompressed body above this.

    Yields the `GuardState`, whose `refusals` tell a caller that a yt-dlp error (yt-dlp wraps
    network failures in its own exceptions) was really a refusal.
    """
    _install()
    allow = allow_hosts if isinstance(allow_hosts, AllowList) else AllowList.parse(allow_hosts)
    state = GuardState(allow, max_read_bytes)
    token = _active.set(state)
    try:
        yield state
    finally:
        _active.reset(token)


def yt_dlp_params() -> dict[str, Any]:
    """yt-dlp options the guard relies on: the urllib handler, no proxy, native downloaders only."""
    return {
        "compat_opts": ["prefer-legacy-http-handler"],
        "proxy": "",  # a proxy would dial the target itself, past the address check
        "external_downloader": {"default": "native"},  # ffmpeg/aria2c would dial outside the guard
        "concurrent_fragment_downloads": 1,  # fragments stay in this thread, under the contextvar
        "enable_file_urls": False,
    }
