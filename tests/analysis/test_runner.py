"""The runner's shared-piece memo and prefetch pool: once per analysis, thread-safe, never deadlocking."""

from __future__ import annotations

import sys
import threading
import time
import types
from typing import Any

import pytest

from analysis.runner import PREFETCH, TASKS, AnalysisContext
from analysis.schema import AnalysisRequest
from cluster.config import load_settings


def _ctx(tmp_path: Any) -> AnalysisContext:
    settings = load_settings(env={"VIDRAY_DATA_DIR": str(tmp_path)})
    return AnalysisContext(video=types.SimpleNamespace(), request=AnalysisRequest(), settings=settings)


def test_a_piece_asked_for_by_many_threads_is_computed_once(tmp_path: Any) -> None:
    ctx = _ctx(tmp_path)
    calls: list[int] = []

    def slow() -> str:
        calls.append(1)
        time.sleep(0.2)
        return "transcript"

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(ctx.memo("t", slow))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == ["transcript"] * 4
    assert len(calls) == 1


def test_a_failed_piece_raises_its_error_to_every_caller_without_recomputing(tmp_path: Any) -> None:
    ctx = _ctx(tmp_path)
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("no audio stream")

    for _ in range(2):
        with pytest.raises(ValueError, match="no audio stream"):
            ctx.memo("t", broken)
    assert len(calls) == 1


@pytest.fixture
def pieces_module() -> Any:
    """A module of pieces where b depends on a, registered so prefetch can import it by name."""
    mod = types.ModuleType("_vidray_test_pieces")
    log: list[tuple[str, str]] = []

    def a(ctx: AnalysisContext) -> str:
        def compute() -> str:
            log.append(("a", threading.current_thread().name))
            time.sleep(0.2)
            return "A"

        return str(ctx.memo("a", compute))

    def b(ctx: AnalysisContext) -> str:
        return str(ctx.memo("b", lambda: a(ctx) + "B"))

    mod.a, mod.b, mod.log = a, b, log  # type: ignore[attr-defined]
    sys.modules[mod.__name__] = mod
    yield mod
    del sys.modules[mod.__name__]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_prefetched_pieces_with_dependencies_finish_on_any_pool_size(tmp_path: Any, pieces_module: Any,
                                                                     workers: int) -> None:
    """b needs a: with one worker the pool runs b, which computes a inline; the main thread then waits."""
    ctx = _ctx(tmp_path)
    ctx.prefetch(["_vidray_test_pieces:b", "_vidray_test_pieces:a"], workers)
    done = threading.Event()
    out: list[str] = []

    def main_task() -> None:
        out.append(pieces_module.b(ctx))
        done.set()

    threading.Thread(target=main_task, daemon=True).start()
    assert done.wait(10), "a task waiting on prefetched pieces deadlocked"
    ctx.close()
    assert out == ["AB"]
    assert len(pieces_module.log) == 1
    assert pieces_module.log[0][1].startswith("vidray-prefetch")  # the pool did the work, not the task


def test_a_failing_prefetch_does_not_kill_the_pool_and_the_task_sees_the_error(tmp_path: Any) -> None:
    ctx = _ctx(tmp_path)
    mod = types.ModuleType("_vidray_test_failing")

    def bad(c: AnalysisContext) -> None:
        c.memo("bad", lambda: (_ for _ in ()).throw(RuntimeError("tesseract crashed")))

    mod.bad = bad  # type: ignore[attr-defined]
    sys.modules[mod.__name__] = mod
    try:
        ctx.prefetch(["_vidray_test_failing:bad"], 2)
        ctx.close()
        with pytest.raises(RuntimeError, match="tesseract crashed"):
            ctx.memo("bad", lambda: "never called")
    finally:
        del sys.modules[mod.__name__]


def test_every_prefetch_entry_names_a_real_task_and_function() -> None:
    import importlib

    assert set(PREFETCH) <= set(TASKS)
    for specs in PREFETCH.values():
        for spec in specs:
            module, func = spec.split(":")
            assert callable(getattr(importlib.import_module(module), func)), spec
