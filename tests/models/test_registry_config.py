"""Registry, `models` settings section and the `vidray models` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cluster.config import BackendConfig, ModelsSettings, load_settings
from cluster.errors import InputError, UnavailableError
from models import registry
from models.base import Availability, ChatMessage, Generation, Kind, TextGenerator
from models.router import Router
from vidray.cli import main


class Echo(TextGenerator):
    """A real (tiny) backend: answers with the last user message, reversed."""

    type_name = "echo-test"

    def availability(self) -> Availability:
        return Availability.yes("always")

    def generate(
        self, messages: list[ChatMessage], *, max_tokens: int = 512, temperature: float = 0.0
    ) -> Generation:
        return Generation(messages[-1].content[::-1])


@pytest.fixture
def echo() -> object:
    registry.register("echo-test", Echo)
    yield Echo
    registry.unregister("echo-test")


def test_defaults_name_every_task_and_validate() -> None:
    m = load_settings(env={}).models
    assert m.tasks["chat"][:3] == ["vllm", "gemini", "openai"]
    assert {"transcribe", "ocr", "embed", "tag", "chat", "vision"} <= set(m.tasks)
    assert m.backends["openai"].api_key_env == "OPENAI_API_KEY"
    for names in m.tasks.values():  # every default name resolves to config (configured or a registry type)
        for n in names:
            assert registry.config_for(n, m).type


def test_yaml_and_overrides_configure_models(tmp_path: Path) -> None:
    cfg = tmp_path / "vidray.yaml"
    cfg.write_text(
        "models:\n  tasks:\n    qa: [openai, smollm2]\n  budget:\n    per_day_usd: 2.5\n"
        "  backends:\n    openai:\n      model: gpt-4o\n      api_key_env: MY_KEY\n"
    )
    s = load_settings(cfg, ["models.budget.on_exceed=refuse"], env={})
    assert s.models.tasks["qa"] == ["openai", "smollm2"] and s.models.budget.per_day_usd == 2.5
    assert s.models.backends["openai"].model == "gpt-4o" and s.models.budget.on_exceed == "refuse"
    with pytest.raises(InputError, match=r"models\.budget\.per_dya_usd"):
        load_settings(cfg, ["models.budget.per_dya_usd=1"], env={})


def test_registry_resolves_lazily_and_names_unknown_types(echo: object) -> None:
    m = ModelsSettings.model_validate({"tasks": {"chat": ["echo-test"]}})
    b = registry.create("echo-test", m)
    assert isinstance(b, Echo) and b.name == "echo-test" and Kind.TEXT_GENERATION in b.serves()
    with pytest.raises(InputError, match="known types"):
        registry.resolve("no-such-backend")
    with pytest.raises(InputError, match="already registered"):
        registry.register("echo-test", Echo)
    registry.register("broken-test", "models.does_not_exist:Nope")
    try:
        with pytest.raises(UnavailableError, match="cannot be imported"):
            registry.resolve("broken-test")
    finally:
        registry.unregister("broken-test")


def test_router_uses_a_registered_local_backend_in_offline_mode(echo: object) -> None:
    m = ModelsSettings.model_validate(
        {
            "backends": {"openai": {"type": "openai", "api_key_env": "X"}},
            "tasks": {"chat": ["openai", "echo-test"]},
        }
    )
    out = Router(m, offline=True).generate([ChatMessage("user", "abc")])
    assert out.value.text == "cba" and out.backend == "echo-test"
    assert out.attempts[0].outcome == "skipped" and "offline" in out.attempts[0].reason


def test_disabled_backend_is_skipped(echo: object) -> None:
    m = ModelsSettings(backends={"e": BackendConfig(type="echo-test", enabled=False)}, tasks={"chat": ["e"]})
    assert "disabled" in Router(m).availability("e").reason


def test_cli_models_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-test-key-123456")
    monkeypatch.delenv("VIDRAY_OFFLINE", raising=False)
    assert main(["models", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {b["name"]: b for b in doc["backends"]}
    assert rows["openai"]["available"] and rows["openai"]["kinds"] == ["text_generation", "vision_language"]
    assert not rows["gemini"]["available"] and "GEMINI_API_KEY" in rows["gemini"]["reason"]
    assert (
        doc["tasks"]["chat"]["order"][:3] == ["vllm", "gemini", "openai"]
        and "openai" in doc["tasks"]["chat"]["usable"]
    )
    assert "sk-cli-test-key-123456" not in json.dumps(doc)
    monkeypatch.setenv("VIDRAY_OFFLINE", "1")
    assert main(["models", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["offline"] and not {b["name"]: b for b in doc["backends"]}["openai"]["available"]
    assert main(["models"]) == 0
    assert "task order" in capsys.readouterr().out


def test_shared_router_is_one_per_configuration(tmp_path: Path) -> None:
    from models.router import shared_router

    a = load_settings(env={"VIDRAY_DATA_DIR": str(tmp_path)})
    b = load_settings(env={"VIDRAY_DATA_DIR": str(tmp_path)})
    c = load_settings(env={"VIDRAY_DATA_DIR": str(tmp_path)}, overrides=["models.budget.per_day_usd=1"])
    assert shared_router(a) is shared_router(b) and shared_router(a) is not shared_router(c)
