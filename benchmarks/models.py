"""How fast is each offline model backend on this CPU, and how accurate on the test data?

Questions answered (one process, each backend loaded once, timed after one warm-up call):
1. Speech: real-time factor (processing seconds / audio seconds) and WER of Whisper tiny.en
   (faster-whisper, int8) and PocketSphinx on 29 s of LibriVox speech (Debian pocketsphinx-testdata).
2. OCR: ms per 1280x720 code frame and share of code lines exact (indentation included) for
   Tesseract and RapidOCR, dark and light editor themes.
3. Embeddings: sentences per second for all-MiniLM-L6-v2 (batches of 32).
4. Generation: tokens per second for SmolLM2-135M (64 greedy tokens) and its load time.
5. Tags: ms per frame for EfficientNet-Lite0, one frame and batches of 8.

    .venv/bin/python benchmarks/models.py                 # all backends, ~3-6 min on 2 busy cores
    .venv/bin/python benchmarks/models.py --only ocr tags # a subset
    .venv/bin/python benchmarks/models.py --json out.json # also write the numbers

Numbers depend heavily on what else runs: the table header prints the machine, load average and
torch threads so a reader can tell a quiet run from a noisy one. Each metric is given twice:
from wall time ("wall") and from this process's CPU time including child processes ("CPU
time", e.g. tokens per CPU-second). On a shared machine the CPU-time figure is the steadier
one; on a quiet 2-core machine wall time is up to 2x better than it for multi-threaded work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

Row = dict[str, Any]


def _cpu() -> float:
    """CPU seconds used so far by this process and its finished children (tesseract runs as one)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


_LAST_CPU: list[float] = [0.0]  # CPU seconds per call of the latest _timed, for the table


def _timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Wall seconds per call (mean of `repeat` calls after one warm-up) and the last result.

    CPU seconds per call go to `_LAST_CPU`: on a shared machine wall time mostly measures the
    neighbours, while CPU time stays close to what the work costs.
    """
    out = fn()
    start, cpu0 = time.perf_counter(), _cpu()
    for _ in range(repeat):
        out = fn()
    _LAST_CPU[0] = (_cpu() - cpu0) / repeat
    return (time.perf_counter() - start) / repeat, out


def bench_speech(tmp: Path) -> list[Row]:
    from data_pipeline.audio import load_audio
    from models.offline.pocketsphinx import PocketSphinxSTT
    from models.offline.whisper import FasterWhisperSTT
    from tests.models.offline.speechdata import make_librivox_video, wer

    path, reference = make_librivox_video(tmp / "librivox.mp4")
    audio = load_audio(path)
    seconds = audio.size / 16000
    rows = []
    for backend in (FasterWhisperSTT(), PocketSphinxSTT()):
        t0 = time.perf_counter()
        backend.transcribe(audio[:16000])  # load + warm
        load = time.perf_counter() - t0
        dt, transcript = _timed(lambda b=backend: b.transcribe(audio))
        rows.append(
            {
                "kind": "speech",
                "backend": backend.type_name,
                "metric": "real-time factor",
                "value": round(dt / seconds, 3),
                "cpu": round(_LAST_CPU[0] / seconds, 3),
                "quality": f"WER {wer(reference, transcript.text):.3f}",
                "load_s": round(load, 1),
                "data": f"{seconds:.1f} s LibriVox",
            }
        )
    return rows


def bench_ocr(tmp: Path) -> list[Row]:
    from models.offline.layout import to_text
    from models.offline.ocr_rapid import RapidOCRBackend
    from models.offline.ocr_tesseract import TesseractOCR
    from tests.models.offline.codeframe import CODE, render_code

    ref = [line for line in CODE.splitlines() if line.strip()]
    rows = []
    for backend in (TesseractOCR(), RapidOCRBackend()):
        for theme in ("dark", "light"):
            frame = render_code(theme=theme)
            dt, boxes = _timed(lambda b=backend, f=frame: b.read(f), repeat=2)
            got = [line for line in to_text(boxes).splitlines() if line.strip()]
            exact = sum(a == b for a, b in zip(got, ref, strict=False))
            rows.append(
                {
                    "kind": "ocr",
                    "backend": backend.type_name,
                    "metric": "ms / 720p frame",
                    "value": round(dt * 1000),
                    "cpu": round(_LAST_CPU[0] * 1000),
                    "quality": f"{exact}/{len(ref)} lines exact",
                    "data": f"code frame, {theme}",
                }
            )
    return rows


def bench_embed(tmp: Path) -> list[Row]:
    from models.offline.embed import MiniLMEmbedder
    from tests.models.offline.test_embed import SEGMENTS

    e = MiniLMEmbedder()
    t0 = time.perf_counter()
    e.embed(["warm up"])
    load = time.perf_counter() - t0
    texts = [f"{s} (variant {i})" for i in range(22) for s in SEGMENTS][:256]
    dt, _ = _timed(lambda: e.embed(texts))
    return [
        {
            "kind": "embed",
            "backend": e.type_name,
            "metric": "sentences / s",
            "value": round(len(texts) / dt),
            "cpu": round(len(texts) / _LAST_CPU[0]),
            "quality": "12/12 paraphrases ranked first (tests)",
            "load_s": round(load, 1),
            "data": f"{len(texts)} sentences",
        }
    ]


def bench_llm(tmp: Path) -> list[Row]:
    from models.base import ChatMessage
    from models.offline.llm import SmolLM2Generator

    g = SmolLM2Generator()
    t0 = time.perf_counter()
    g.generate([ChatMessage("user", "Hi")], max_tokens=2)
    load = time.perf_counter() - t0
    messages = [ChatMessage("user", "Write a short story about a robot who learns to paint.")]
    dt, out = _timed(lambda: g.generate(messages, max_tokens=64))
    return [
        {
            "kind": "generate",
            "backend": g.type_name,
            "metric": "tokens / s",
            "value": round(out.usage.output_tokens / dt, 1),
            "cpu": round(out.usage.output_tokens / _LAST_CPU[0], 1),
            "quality": "-",
            "load_s": round(load, 1),
            "data": f"{out.usage.output_tokens} tokens, prompt {out.usage.input_tokens}",
        }
    ]


def bench_tags(tmp: Path) -> list[Row]:
    from models.offline.tags import EfficientNetTagger

    t = EfficientNetTagger()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8) for _ in range(8)]
    t0 = time.perf_counter()
    t.tag(frames[0])
    load = time.perf_counter() - t0
    one, _ = _timed(lambda: t.tag(frames[0]), repeat=3)
    one_cpu = _LAST_CPU[0]
    batch, _ = _timed(lambda: t.tag_batch(frames), repeat=2)
    batch_cpu = _LAST_CPU[0]
    return [
        {
            "kind": "tags",
            "backend": t.type_name,
            "metric": "ms / frame (1)",
            "value": round(one * 1000),
            "cpu": round(one_cpu * 1000),
            "quality": "top-1 right on 4/4 photos (tests)",
            "load_s": round(load, 1),
            "data": "720p frame",
        },
        {
            "kind": "tags",
            "backend": t.type_name,
            "metric": "ms / frame (batch 8)",
            "value": round(batch / 8 * 1000),
            "cpu": round(batch_cpu / 8 * 1000),
            "quality": "-",
            "data": "720p frames",
        },
    ]


BENCHES = {
    "speech": bench_speech,
    "ocr": bench_ocr,
    "embed": bench_embed,
    "llm": bench_llm,
    "tags": bench_tags,
}


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"load average {load}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", choices=sorted(BENCHES), help="run only these")
    ap.add_argument("--json", type=Path, help="also write rows and machine to this JSON file")
    args = ap.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as d:
        for name in args.only or list(BENCHES):
            print(f"... {name}", file=sys.stderr, flush=True)
            rows += BENCHES[name](Path(d))
    header = f"machine: {machine()}"
    print(header)
    print(
        f"| {'kind':<8} | {'backend':<14} | {'metric':<20} | {'wall':>8} | {'CPU time':>8} "
        f"| {'quality':<38} | {'load s':>6} | data |"
    )
    print(f"|{'-' * 10}|{'-' * 16}|{'-' * 22}|{'-' * 10}|{'-' * 10}|{'-' * 40}|{'-' * 8}|------|")
    for r in rows:
        print(
            f"| {r['kind']:<8} | {r['backend']:<14} | {r['metric']:<20} | {r['value']:>8} | {r['cpu']:>8} "
            f"| {r['quality']:<38} | {r.get('load_s', ''):>6} | {r['data']} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": header, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
