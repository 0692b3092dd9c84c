"""Loopback servers speaking the OpenAI chat-completions and Gemini (files + generateContent) protocols.

Why our own servers: the tests drive the *official* clients (`openai`, `google-genai`) over real
HTTP, so wire-format, header and error-mapping bugs show up, without any network beyond 127.0.0.1.
Each server replies from a script: push behaviours (`Reply`, `Status`, `Delay`, `Malformed`) and
they are used one per request; with the script empty it answers with a default reply.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    text: str = "ok"
    input_tokens: int = 11
    output_tokens: int = 7


@dataclass
class Status:
    code: int
    message: str = "error"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Delay:
    seconds: float
    then: Any = None  # behaviour after the delay (default reply)


@dataclass
class Malformed:
    pass


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    t: float


class _Server:
    """Shared machinery: a threaded HTTP server on 127.0.0.1 with a behaviour script and a request log."""

    def __init__(self) -> None:
        self.script: deque[Any] = deque()
        self.requests: list[Seen] = []
        self.default: Any = Reply()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except (ValueError, UnicodeDecodeError):
                    body = raw
                seen = Seen(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.time(),
                )
                with outer._lock:
                    outer.requests.append(seen)
                outer.handle(self, seen)

            do_GET = do_POST = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def next_behaviour(self) -> Any:
        with self._lock:
            return self.script.popleft() if self.script else self.default

    def push(self, *behaviours: Any) -> None:
        with self._lock:
            self.script.extend(behaviours)

    def calls(self, suffix: str) -> list[Seen]:
        return [r for r in self.requests if r.path.split("?")[0].endswith(suffix)]

    def handle(self, h: BaseHTTPRequestHandler, seen: Seen) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    @staticmethod
    def send(h: BaseHTTPRequestHandler, code: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(doc).encode()
        h.send_response(code)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeOpenAI(_Server):
    """`/v1/chat/completions` (plain and SSE streaming) and `/v1/models`."""

    def __init__(self, models: tuple[str, ...] = ("fake-model",)) -> None:
        self.models = models
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def handle(self, h: BaseHTTPRequestHandler, seen: Seen) -> None:
        if seen.path.startswith("/v1/models"):
            self.send(
                h,
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "me"} for m in self.models
                    ],
                },
            )
            return
        b = self.next_behaviour()
        if isinstance(b, Delay):
            time.sleep(b.seconds)
            b = b.then or self.default
        if isinstance(b, Status):
            self.send(h, b.code, {"error": {"message": b.message, "type": "fake", "code": b.code}}, b.headers)
            return
        model = (seen.body or {}).get("model", "fake-model")
        if isinstance(b, Malformed):
            self.send(
                h, 200, {"id": "x", "object": "chat.completion", "created": 0, "model": model, "choices": []}
            )
            return
        if (seen.body or {}).get("stream"):
            self._stream(h, b, model)
            return
        self.send(
            h,
            200,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": b.text}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": b.input_tokens,
                    "completion_tokens": b.output_tokens,
                    "total_tokens": b.input_tokens + b.output_tokens,
                },
            },
        )

    def _stream(self, h: BaseHTTPRequestHandler, b: Reply, model: str) -> None:
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("connection", "close")
        h.end_headers()
        for word in b.text.split(" "):
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}],
            }
            h.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            h.wfile.flush()
        h.wfile.write(b"data: [DONE]\n\n")
        h.wfile.flush()
        h.close_connection = True


class FakeGemini(_Server):
    """The Gemini REST surface the SDK uses: resumable uploads, files.get/delete, generateContent."""

    def __init__(self, polls_until_active: int = 2) -> None:
        self.polls_until_active = polls_until_active
        self.files: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, bytes] = {}
        self._polls: dict[str, int] = {}
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, h: BaseHTTPRequestHandler, seen: Seen) -> None:
        # the SDK picks the API version (v1beta, or v1 with a custom base_url): accept any
        path = re.sub(r"^(/upload)?/v1[a-z0-9]*/", r"\1/v/", seen.path.split("?")[0])
        if seen.method == "POST" and path == "/upload/v/files":
            fid = f"f{len(self.files) + 1}"
            meta = (seen.body or {}).get("file", {}) if isinstance(seen.body, dict) else {}
            self.files[fid] = {
                "name": f"files/{fid}",
                "mimeType": meta.get("mimeType")
                or meta.get("mime_type")
                or seen.headers.get("x-goog-upload-header-content-type", "application/octet-stream"),
                "uri": f"{self.url}/v/files/{fid}",
                "state": "PROCESSING",
            }
            self.send(
                h,
                200,
                {},
                {"x-goog-upload-url": f"{self.url}/upload-session/{fid}", "x-goog-upload-status": "active"},
            )
            return
        if seen.method == "POST" and path.startswith("/upload-session/"):
            fid = path.rsplit("/", 1)[1]
            self.uploads[fid] = self.uploads.get(fid, b"") + (
                seen.body if isinstance(seen.body, bytes) else json.dumps(seen.body).encode()
            )
            self.files[fid]["sizeBytes"] = str(len(self.uploads[fid]))
            self.send(h, 200, {"file": self.files[fid]}, {"x-goog-upload-status": "final"})
            return
        if path.startswith("/v/files/"):
            fid = path.rsplit("/", 1)[1]
            if seen.method == "DELETE":
                self.files.pop(fid, None)
                self.send(h, 200, {})
                return
            self._polls[fid] = self._polls.get(fid, 0) + 1
            if self._polls[fid] >= self.polls_until_active:
                self.files[fid]["state"] = "ACTIVE"
            self.send(h, 200, self.files[fid])
            return
        if ":generateContent" in path or ":streamGenerateContent" in path:
            b = self.next_behaviour()
            if isinstance(b, Delay):
                time.sleep(b.seconds)
                b = b.then or self.default
            if isinstance(b, Status):
                self.send(
                    h, b.code, {"error": {"code": b.code, "message": b.message, "status": "ERROR"}}, b.headers
                )
                return
            if isinstance(b, Malformed):
                self.send(h, 200, {"candidates": []})
                return
            doc = {
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": b.text}]}, "finishReason": "STOP"}
                ],
                "usageMetadata": {
                    "promptTokenCount": b.input_tokens,
                    "candidatesTokenCount": b.output_tokens,
                    "totalTokenCount": b.input_tokens + b.output_tokens,
                },
                "modelVersion": path.split("/models/")[1].split(":")[0],
            }
            if ":streamGenerateContent" in path:
                data = f"data: {json.dumps(doc)}\n\n".encode()
                h.send_response(200)
                h.send_header("content-type", "text/event-stream")
                h.send_header("content-length", str(len(data)))
                h.end_headers()
                h.wfile.write(data)
                return
            self.send(h, 200, doc)
            return
        self.send(h, 404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})


@contextmanager
def serving(server: _Server) -> Iterator[Any]:
    try:
        yield server
    finally:
        server.close()
