"""The OpenAI, vLLM and Gemini backends on the wire: what the official clients send to loopback servers."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cluster.config import BackendConfig, ModelsSettings
from models.base import ChatMessage, Kind, TimedFrame
from models.errors import MalformedOutput, MissingCredentials, RateLimited, TransientError
from models.gemini_backend import GeminiBackend
from models.openai_backend import OpenAIBackend
from models.router import Router
from models.vllm_backend import VLLMBackend
from tests.models.api_fakes import FakeGemini, FakeOpenAI, Malformed, Reply, Status

pytest.importorskip("openai")
pytest.importorskip("google.genai")

KEY = "AIza-test-key-0123456789"


def frames(n: int, size: int = 48) -> list[TimedFrame]:
    out = []
    for i in range(n):
        img = np.zeros((size, size, 3), np.uint8)
        img[:, :, i % 3] = 200  # a different colour per frame so images are distinguishable
        out.append(TimedFrame(0.5 * i + 0.25, img))
    return out


def decode_data_url(url: str) -> np.ndarray:
    head, data = url.split(",", 1)
    assert head == "data:image/jpeg;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))


def field(doc: dict[str, Any], camel: str) -> Any:
    """A JSON field the SDK may spell camelCase or snake_case (both are valid proto JSON)."""
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return doc.get(camel, doc.get(snake))


@pytest.fixture
def oai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    monkeypatch.setenv("VIDRAY_TEST_KEY", KEY)
    s = FakeOpenAI(models=("tiny-vlm",))
    yield s
    s.close()


@pytest.fixture
def gem(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGemini]:
    monkeypatch.setenv("VIDRAY_TEST_KEY", KEY)
    s = FakeGemini(polls_until_active=3)
    yield s
    s.close()


def openai_backend(url: str, **options: Any) -> OpenAIBackend:
    cfg = BackendConfig(
        type="openai", base_url=url, api_key_env="VIDRAY_TEST_KEY", model="gpt-test", options=options
    )
    return OpenAIBackend(cfg, name="openai")


def gemini_backend(url: str, **options: Any) -> GeminiBackend:
    opts = {"poll_s": 0.01, **options}
    cfg = BackendConfig(
        type="gemini", base_url=url, api_key_env="VIDRAY_TEST_KEY", model="gemini-test", options=opts
    )
    return GeminiBackend(cfg, name="gemini")


# ------------------------------------------------------------------ OpenAI


def test_openai_sends_each_frame_after_its_timestamp(oai: FakeOpenAI) -> None:
    b = openai_backend(oai.url)
    msgs = [ChatMessage("system", "Be brief."), ChatMessage("user", "What colours appear?")]
    g = b.generate(msgs, frames(3), max_tokens=20)
    assert g.text == "ok" and g.usage.input_tokens == 11 and g.model == "gpt-test"
    body = oai.calls("/chat/completions")[0].body
    assert body["model"] == "gpt-test" and body["max_tokens"] == 20
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    parts = body["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"] * 3 + ["text"]
    assert parts[0]["text"] == "Frame at t=0.25s:" and parts[4]["text"] == "Frame at t=1.25s:"
    assert parts[-1]["text"] == "What colours appear?"
    img = decode_data_url(parts[3]["image_url"]["url"])  # second frame: green
    assert img.shape == (48, 48, 3) and img[..., 1].mean() > 150 and img[..., 0].mean() < 50
    assert oai.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_openai_batches_many_frames_and_sums_usage(oai: FakeOpenAI) -> None:
    b = openai_backend(oai.url, max_frames=2)
    oai.push(
        Reply("0.25s red", 100, 10), Reply("1.25s red", 100, 10), Reply("2.25s red", 60, 10), Reply("final")
    )
    g = b.generate([ChatMessage("user", "When is it red?")], frames(5))
    calls = oai.calls("/chat/completions")
    assert len(calls) == 4  # 3 batches of <= 2 frames, then one text-only combine call
    n_images = [sum(p["type"] == "image_url" for p in c.body["messages"][-1]["content"]) for c in calls[:3]]
    assert n_images == [2, 2, 1]
    assert "0.25s red" in calls[3].body["messages"][-1]["content"]
    assert g.text == "final" and g.usage.input_tokens == 100 + 100 + 60 + 11 and g.usage.output_tokens == 37
    est = b.estimate_usage([ChatMessage("user", "When is it red?")], frames(5), 50)
    assert est.output_tokens == 200  # four calls, each up to max_tokens


def test_openai_error_mapping(oai: FakeOpenAI) -> None:
    b = openai_backend(oai.url)
    q = [ChatMessage("user", "hi")]
    oai.push(Status(429, "slow", {"retry-after": "7"}))
    with pytest.raises(RateLimited) as ei:
        b.generate(q)
    assert ei.value.retry_after == 7.0
    oai.push(Status(502))
    with pytest.raises(TransientError):
        b.generate(q)
    oai.push(Malformed())
    with pytest.raises(MalformedOutput):
        b.generate(q)
    oai.push(Status(401, f"bad key {KEY}"))
    with pytest.raises(MissingCredentials) as mc:
        b.generate(q)
    assert KEY not in str(mc.value) and "VIDRAY_TEST_KEY" in str(mc.value)


def test_openai_streams_deltas(oai: FakeOpenAI) -> None:
    oai.default = Reply("one two three")
    assert "".join(openai_backend(oai.url).stream([ChatMessage("user", "count")])).split() == [
        "one",
        "two",
        "three",
    ]


def test_openai_availability_names_the_missing_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    b = OpenAIBackend(BackendConfig(type="openai", api_key_env="OPENAI_API_KEY"))
    assert not b.availability().ok and "OPENAI_API_KEY" in b.availability().reason
    secret = tmp_path / "key"
    secret.write_text("sk-from-a-file\n")
    b = OpenAIBackend(BackendConfig(type="openai", api_key_env="OPENAI_API_KEY", api_key_file=secret))
    assert b.availability().ok
    assert Kind.VISION_LANGUAGE in b.serves() and Kind.TEXT_GENERATION in b.serves()


# ------------------------------------------------------------------ vLLM


def test_vllm_discovers_its_model_and_needs_no_key(oai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    b = VLLMBackend(BackendConfig(type="vllm", base_url=oai.url, api_key_env="VLLM_API_KEY"), name="vllm")
    assert b.availability().ok
    g = b.generate([ChatMessage("user", "hi")], max_tokens=5)
    assert g.text == "ok" and b.model == "tiny-vlm"
    assert oai.calls("/chat/completions")[0].body["model"] == "tiny-vlm"
    assert not VLLMBackend(BackendConfig(type="vllm")).availability().ok


def test_vllm_video_url_mode_sends_one_clip(oai: FakeOpenAI) -> None:
    cfg = BackendConfig(type="vllm", base_url=oai.url, model="qwen-vl", options={"video_mode": "video_url"})
    VLLMBackend(cfg, name="vllm").generate([ChatMessage("user", "what happens?")], frames(3))
    parts = oai.calls("/chat/completions")[0].body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "video_url", "text"]
    assert "0.25s, 0.75s, 1.25s" in parts[0]["text"]
    url = parts[1]["video_url"]["url"]
    assert url.startswith("data:video/jpeg;base64,") and len(url.split(",")) == 1 + 3


# ------------------------------------------------------------------ Gemini


def test_gemini_text_and_system_instruction(gem: FakeGemini) -> None:
    g = gemini_backend(gem.url).generate(
        [ChatMessage("system", "Answer in one word."), ChatMessage("user", "Sky colour?")], max_tokens=9
    )
    assert g.text == "ok" and g.usage.input_tokens == 11 and g.usage.output_tokens == 7
    req = gem.calls(":generateContent")[0]
    assert req.headers["x-goog-api-key"] == KEY
    assert req.body["systemInstruction"]["parts"][0]["text"] == "Answer in one word."
    assert req.body["contents"] == [{"role": "user", "parts": [{"text": "Sky colour?"}]}]
    assert req.body["generationConfig"]["maxOutputTokens"] == 9


def test_gemini_inline_frames_with_timestamps(gem: FakeGemini) -> None:
    gemini_backend(gem.url).generate([ChatMessage("user", "Describe.")], frames(2))
    parts = gem.calls(":generateContent")[0].body["contents"][0]["parts"]
    inline = parts[1]["inlineData"]
    assert parts[0] == {"text": "Frame at t=0.25s:"} and field(inline, "mimeType") == "image/jpeg"
    assert base64.urlsafe_b64decode(inline["data"] + "==")[:2] == b"\xff\xd8"  # JPEG
    assert parts[2] == {"text": "Frame at t=0.75s:"} and parts[-1] == {"text": "Describe."}
    assert not gem.uploads


def test_gemini_uploads_frames_polls_until_active_and_cleans_up(gem: FakeGemini) -> None:
    g = gemini_backend(gem.url, use_files=True).generate([ChatMessage("user", "Describe.")], frames(2))
    assert g.text == "ok"
    assert len(gem.uploads) == 2 and all(data[:2] == b"\xff\xd8" for data in gem.uploads.values())  # JPEG
    assert len(gem.calls("/files/f1")) >= 3  # polled while PROCESSING, then deleted
    parts = gem.calls(":generateContent")[0].body["contents"][0]["parts"]
    assert field(parts[1]["fileData"], "fileUri").endswith("/files/f1")
    assert not gem.files  # uploads deleted after the answer


def test_gemini_whole_video_upload(gem: FakeGemini, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(1000))
    g = gemini_backend(gem.url).generate_from_video([ChatMessage("user", "Summarise.")], video)
    assert g.text == "ok" and gem.uploads["f1"] == video.read_bytes()
    part = gem.calls(":generateContent")[0].body["contents"][0]["parts"][0]
    assert field(part["fileData"], "mimeType") == "video/mp4"


def test_gemini_error_mapping_and_redaction(gem: FakeGemini) -> None:
    b = gemini_backend(gem.url)
    q = [ChatMessage("user", "hi")]
    gem.push(Status(429, "quota", {"retry-after": "3"}))
    with pytest.raises(RateLimited) as rl:
        b.generate(q)
    assert rl.value.retry_after == 3.0
    gem.push(Status(500))
    with pytest.raises(TransientError):
        b.generate(q)
    gem.push(Malformed())
    with pytest.raises(MalformedOutput):
        b.generate(q)
    gem.push(Status(403, f"API key {KEY} not valid"))
    with pytest.raises(MissingCredentials) as mc:
        b.generate(q)
    assert KEY not in str(mc.value)


def test_router_falls_back_from_gemini_to_openai(gem: FakeGemini, oai: FakeOpenAI) -> None:
    models = ModelsSettings.model_validate(
        {
            "backends": {
                "gemini": {
                    "type": "gemini",
                    "base_url": gem.url,
                    "api_key_env": "VIDRAY_TEST_KEY",
                    "retries": 0,
                },
                "openai": {
                    "type": "openai",
                    "base_url": oai.url,
                    "api_key_env": "VIDRAY_TEST_KEY",
                    "model": "m",
                },
            },
            "tasks": {"vision": ["gemini", "openai"]},
        }
    )
    gem.push(Status(503, "overloaded"))
    out = Router(models).generate([ChatMessage("user", "what?")], frames(1))
    assert out.backend == "openai" and [a.error for a in out.attempts] == ["TransientError", ""]


def test_gemini_streams(gem: FakeGemini) -> None:
    gem.default = Reply("streamed answer")
    text = "".join(gemini_backend(gem.url).stream([ChatMessage("user", "go")]))
    assert text == "streamed answer" and gem.calls(":streamGenerateContent")
