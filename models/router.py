"""The model router: one call per task, answered by the first backend in its order that works.

Start here. `Router(settings)` reads `settings.models`. For a call such as
`router.generate(messages, frames, task="qa")` it:

1. picks the task's order (`models.tasks[task]`, else "vision" with frames / "chat" without), expands
   A/B entries (`models.ab`) into one variant for this request, and drops backends that are
   disabled, of the wrong kind, network-bound in offline mode, or not available here;
2. returns a cached answer if any remaining backend has one for (video sha256, task, params, backend)
   (only calls that name their video's sha256 are cached: the key must identify the input);
3. for each backend in turn: skips it if its circuit is open, checks the estimated cost against
   the budgets (refuse, or degrade to the next cheaper backend), waits for the provider's rate
   limit (or skips it), calls it, and retries `RateLimited` / `TransientError` with jittered
   exponential backoff that honours Retry-After; any other backend error moves on at once;
4. records every try in `Routed.attempts`, the winner in `Routed.backend`, the cost in the ledger,
   and the value in the cache.

Errors that are not `UnavailableError`s are bugs and propagate unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from cluster.config import ModelsSettings, Settings
from cluster.errors import UnavailableError
from models import registry
from models._breaker import CircuitBreaker
from models._cache import ResponseCache, cache_key
from models._ledger import Ledger, cost_of, price_for
from models._limits import RateLimiter
from models.base import (
    OCR,
    Availability,
    Backend,
    ChatMessage,
    FrameTagger,
    Generation,
    Kind,
    SpeechToText,
    TextBox,
    TextEmbedder,
    TextGenerator,
    TimedFrame,
    Transcript,
    Usage,
    VisionLanguage,
)
from models.errors import AllBackendsFailed, BackendError, BudgetExceeded, MissingCredentials, RateLimited
from models.routed import Attempt, Routed, RoutedStream, _prepend, routed_json

__all__ = ["DEFAULT_TASK", "Attempt", "Routed", "RoutedStream", "Router", "routed_json", "shared_router"]

log = logging.getLogger("models.router")

T = TypeVar("T")

#: the task whose order a call uses when its own task has none configured
DEFAULT_TASK: dict[Kind, str] = {
    Kind.SPEECH_TO_TEXT: "transcribe",
    Kind.OCR: "ocr",
    Kind.TEXT_EMBEDDING: "embed",
    Kind.FRAME_TAGGING: "tag",
    Kind.TEXT_GENERATION: "chat",
    Kind.VISION_LANGUAGE: "vision",
}

_AVAILABILITY_TTL_S = 10.0  # availability() checks env vars / files; re-check at most this often


@dataclass
class _Candidate:
    entry: str
    name: str
    variant: str


class Router:
    """Ordered fallback with breakers, limits, budgets, A/B splits and a cache. Thread-safe; share one per process."""

    def __init__(
        self,
        settings: Settings | ModelsSettings | None = None,
        *,
        offline: bool | None = None,
        data_dir: Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(settings, Settings):
            self.models = settings.models
            self.offline = settings.offline if offline is None else offline
            data_dir = data_dir or settings.data_dir
        else:
            self.models = settings or ModelsSettings()
            # without full Settings, still honour VIDRAY_OFFLINE: offline must never be opt-in by accident
            env_offline = os.environ.get("VIDRAY_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
            self.offline = env_offline if offline is None else offline
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._backends: dict[str, Backend] = {}
        self._broken: dict[str, str] = {}  # name -> why it could not be built
        self._availability: dict[str, tuple[float, Availability]] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._limiters: dict[str, RateLimiter] = {}
        store = data_dir / "models" if data_dir else None
        self.ledger = Ledger(store / "ledger.sqlite" if store else None)
        self.cache = (
            ResponseCache(store / "cache.sqlite" if store else None, self.models.cache.ttl_s)
            if self.models.cache.enabled
            else None
        )

    # ------------------------------------------------------------------ public calls

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        language: str | None = None,
        task: str = "transcribe",
        video_sha256: str = "",
    ) -> Routed[Transcript]:
        """Speech to text (16 kHz mono float32)."""

        def call(b: Backend) -> Transcript:
            assert isinstance(b, SpeechToText)
            return b.transcribe(audio, language=language)

        params = {"language": language, "audio": _digest_array(audio) if not video_sha256 else len(audio)}
        return self._route(task, Kind.SPEECH_TO_TEXT, call, params=params, video_sha256=video_sha256)

    def ocr(self, image: np.ndarray, *, task: str = "ocr", video_sha256: str = "") -> Routed[list[TextBox]]:
        """Text boxes in an RGB image."""

        def call(b: Backend) -> list[TextBox]:
            assert isinstance(b, OCR)
            return b.read(image)

        return self._route(
            task, Kind.OCR, call, params={"image": _digest_array(image)}, video_sha256=video_sha256
        )

    def embed(self, texts: list[str], *, task: str = "embed", video_sha256: str = "") -> Routed[np.ndarray]:
        """Unit-norm embeddings of `texts`."""

        def call(b: Backend) -> np.ndarray:
            assert isinstance(b, TextEmbedder)
            return b.embed(texts)

        return self._route(
            task, Kind.TEXT_EMBEDDING, call, params={"texts": texts}, video_sha256=video_sha256
        )

    def tag(
        self, image: np.ndarray, *, task: str = "tag", video_sha256: str = ""
    ) -> Routed[list[tuple[str, float]]]:
        """Labels for an RGB image."""

        def call(b: Backend) -> list[tuple[str, float]]:
            assert isinstance(b, FrameTagger)
            return b.tag(image)

        return self._route(
            task, Kind.FRAME_TAGGING, call, params={"image": _digest_array(image)}, video_sha256=video_sha256
        )

    def generate(
        self,
        messages: list[ChatMessage],
        frames: Sequence[TimedFrame] = (),
        *,
        task: str | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
        video_sha256: str = "",
        request_id: str = "",
    ) -> Routed[Generation]:
        """Chat (no frames) or vision-language (with frames) generation.

        `video_sha256` keys the cache (frames are then identified by their timestamps); without it
        the frames' pixels are hashed. `request_id` makes an A/B split deterministic per request.
        """
        frames = list(frames)
        kind = Kind.VISION_LANGUAGE if frames else Kind.TEXT_GENERATION

        def call(b: Backend) -> Generation:
            if frames:
                assert isinstance(b, VisionLanguage)
                return b.generate(messages, frames, max_tokens=max_tokens, temperature=temperature)
            if isinstance(b, VisionLanguage):
                return b.generate(messages, [], max_tokens=max_tokens, temperature=temperature)
            assert isinstance(b, TextGenerator)
            return b.generate(messages, max_tokens=max_tokens, temperature=temperature)

        def estimate(b: Backend) -> Usage:
            return b.estimate_usage(messages, frames, max_tokens)

        params = {
            "messages": [(m.role, m.content) for m in messages],
            "frames": [round(f.t, 3) for f in frames] if video_sha256 else [_digest_frame(f) for f in frames],
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        return self._route(
            task or DEFAULT_TASK[kind],
            kind,
            call,
            params=params,
            video_sha256=video_sha256,
            estimate=estimate,
            request_id=request_id,
            usage_of=lambda g: g.usage,
        )

    def stream(
        self,
        messages: list[ChatMessage],
        frames: Sequence[TimedFrame] = (),
        *,
        task: str | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
        request_id: str = "",
    ) -> RoutedStream:
        """Stream text deltas. Falls back only until the first delta arrives; `.backend` says who answered."""
        frames = list(frames)
        kind = Kind.VISION_LANGUAGE if frames else Kind.TEXT_GENERATION

        def call(b: Backend) -> Iterator[str]:
            if isinstance(b, VisionLanguage):
                it = b.stream(messages, frames, max_tokens=max_tokens, temperature=temperature)
            else:
                assert isinstance(b, TextGenerator)
                it = b.stream(messages, max_tokens=max_tokens, temperature=temperature)
            first = next(it, None)  # errors before the first delta fall back like any call
            return _prepend(first, it)

        routed = self._route(
            task or DEFAULT_TASK[kind],
            kind,
            call,
            params=None,
            estimate=lambda b: b.estimate_usage(messages, frames, max_tokens),
            request_id=request_id,
        )
        return RoutedStream(routed)

    # ------------------------------------------------------------------ introspection

    def order(self, task: str, kind: Kind | None = None) -> list[str]:
        """The configured order for `task` (falling back to its kind's default task)."""
        if task in self.models.tasks:
            return list(self.models.tasks[task])
        if kind is not None:
            return list(self.models.tasks.get(DEFAULT_TASK[kind], []))
        return []

    def describe(self) -> dict[str, Any]:
        """Every backend (configured entries and bare registry types), whether it runs here, and each task's order."""
        names = list(self.models.backends) + [t for t in registry.names() if t not in self.models.backends]
        backends = []
        for name in names:
            avail = self.availability(name)
            row: dict[str, Any] = {"name": name, "type": registry.config_for(name, self.models).type}
            b = self._backends.get(name)
            row["kinds"] = [k.value for k in b.serves()] if b else []
            row["network"] = bool(b.network) if b else None
            row["model"] = b.model if b else ""
            row["available"] = avail.ok
            row["reason"] = avail.reason
            backends.append(row)
        ok = {r["name"] for r in backends if r["available"]}
        tasks = {}
        for task, order in self.models.tasks.items():
            expanded = [
                v for e in order for v in (self.models.ab[e].variants if e in self.models.ab else [e])
            ]
            tasks[task] = {"order": order, "usable": [n for n in expanded if n in ok]}
        return {
            "offline": self.offline,
            "backends": backends,
            "tasks": tasks,
            "ab": {k: v.model_dump() for k, v in self.models.ab.items()},
        }

    def backend(self, name: str) -> Backend:
        """The (cached) backend instance `name`; raises `UnavailableError` if it cannot be built here."""
        with self._lock:
            if name in self._backends:
                return self._backends[name]
            if name in self._broken:
                raise UnavailableError(self._broken[name])
            try:
                b = registry.create(name, self.models)
            except UnavailableError as e:
                self._broken[name] = str(e)
                raise
            self._backends[name] = b
            return b

    def availability(self, name: str) -> Availability:
        """Why `name` can or cannot run here (offline mode and `enabled: false` included)."""
        cfg = self.models.backends.get(name)
        if cfg is not None and not cfg.enabled:
            return Availability.no("disabled in config (enabled: false)")
        try:
            b = self.backend(name)
        except UnavailableError as e:
            return Availability.no(str(e))
        if self.offline and b.network:
            return Availability.no("offline mode (VIDRAY_OFFLINE=1): network backends are off")
        now = self._clock()
        cached = self._availability.get(name)
        if cached and now - cached[0] < _AVAILABILITY_TTL_S:
            return cached[1]
        avail = b.availability()
        self._availability[name] = (now, avail)
        return avail

    def breaker(self, name: str) -> CircuitBreaker:
        with self._lock:
            if name not in self._breakers:
                s = self.models.breaker
                self._breakers[name] = CircuitBreaker(s.failure_threshold, s.cooldown_s, clock=self._clock)
            return self._breakers[name]

    def limiter(self, provider: str) -> RateLimiter | None:
        limits = self.models.limits.get(provider)
        if limits is None:
            return None
        with self._lock:
            if provider not in self._limiters:
                self._limiters[provider] = RateLimiter(
                    limits.requests_per_minute, limits.tokens_per_minute, clock=self._clock, sleep=self._sleep
                )
            return self._limiters[provider]

    def close(self) -> None:
        for b in self._backends.values():
            b.close()
        self.ledger.close()
        if self.cache is not None:
            self.cache.close()

    # ------------------------------------------------------------------ the loop

    def _candidates(self, task: str, kind: Kind, request_id: str) -> list[_Candidate]:
        out: list[_Candidate] = []
        for entry in self.order(task, kind):
            split = self.models.ab.get(entry)
            if split is None:
                out.append(_Candidate(entry, entry, ""))
                continue
            u = _unit(f"{entry}:{request_id}") if request_id else self._rng.random()
            pick = 1 if u < split.fraction_b else 0
            out.append(_Candidate(entry, split.variants[pick], f"{entry}:{'ab'[pick]}"))
        return out

    def _route(
        self,
        task: str,
        kind: Kind,
        call: Callable[[Backend], T],
        *,
        params: dict[str, Any] | None,
        video_sha256: str = "",
        estimate: Callable[[Backend], Usage] | None = None,
        request_id: str = "",
        usage_of: Callable[[T], Usage] | None = None,
    ) -> Routed[T]:
        attempts: list[Attempt] = []
        ready: list[tuple[_Candidate, Backend]] = []
        for cand in self._candidates(task, kind, request_id):
            avail = self.availability(cand.name)
            if not avail.ok:
                attempts.append(Attempt(cand.name, "skipped", avail.reason, variant=cand.variant))
                continue
            b = self.backend(cand.name)
            if kind not in b.serves():
                attempts.append(
                    Attempt(cand.name, "skipped", f"does not do {kind.value}", variant=cand.variant)
                )
                continue
            ready.append((cand, b))

        # A cached answer from any usable backend beats calling one.
        keys: dict[str, str] = {}
        if self.cache is not None and params is not None and video_sha256:
            for cand, b in ready:
                keys[cand.name] = cache_key(video_sha256, task, {**params, "model": b.model}, cand.name)
                hit = self.cache.get(keys[cand.name])
                if hit is not None:
                    attempts.append(Attempt(cand.name, "ok", "cache hit", variant=cand.variant))
                    usage = usage_of(hit) if usage_of else Usage()
                    return Routed(
                        hit, cand.name, task, b.model, attempts, cand.variant, usage, 0.0, cached=True
                    )

        budget = self.models.budget
        budget_refused = 0
        for cand, b in ready:
            est = estimate(b) if estimate else Usage()
            est_cost = cost_of(est, price_for(self.models, cand.name, b.model))
            over = self._over_budget(est_cost)
            if over:
                if budget.on_exceed == "refuse":
                    raise BudgetExceeded(
                        f"{task}: {cand.name} {over}; refused (models.budget.on_exceed=refuse)"
                    )
                budget_refused += 1
                attempts.append(Attempt(cand.name, "skipped", over, "BudgetExceeded", variant=cand.variant))
                continue
            value, attempt = self._try(cand, b, call, est)
            attempts.append(attempt)
            _observe_attempt(cand, kind, attempt)
            if attempt.outcome != "ok":
                continue
            usage = usage_of(value) if usage_of else est
            cost = cost_of(usage, price_for(self.models, cand.name, b.model))
            _observe_cost(b, usage, cost)
            self.ledger.record(
                task=task,
                backend=cand.name,
                model=b.model,
                usage=usage,
                cost_usd=cost,
                variant=cand.variant,
                request_id=request_id,
            )
            if self.cache is not None and cand.name in keys:
                self.cache.put(keys[cand.name], cand.name, value)
            log.info(
                "model call",
                extra={
                    "task": task,
                    "backend": cand.name,
                    "variant": cand.variant,
                    "cost_usd": round(cost, 6),
                },
            )
            return Routed(value, cand.name, task, b.model, attempts, cand.variant, usage, cost)

        summary = "; ".join(f"{a.backend}: {a.reason}" for a in attempts) or "no backend configured"
        if budget_refused and budget_refused == len(ready):
            raise BudgetExceeded(f"{task}: every backend is over budget ({summary})")
        raise AllBackendsFailed(f"no model backend could do {task!r} ({summary})", attempts)

    def _over_budget(self, est_cost: float) -> str:
        b = self.models.budget
        if b.per_request_usd is not None and est_cost > b.per_request_usd:
            return f"estimated ${est_cost:.4f} is over the per-request budget ${b.per_request_usd:.4f}"
        if b.per_day_usd is not None and est_cost > 0:
            spent = self.ledger.spent()
            if spent + est_cost > b.per_day_usd:
                return f"today's ${spent:.4f} + estimated ${est_cost:.4f} is over the daily budget ${b.per_day_usd:.4f}"
        return ""

    def _try(
        self, cand: _Candidate, b: Backend, call: Callable[[Backend], T], est: Usage
    ) -> tuple[Any, Attempt]:
        """Call one backend with retries; returns (value, ok attempt) or (None, failed/skipped attempt)."""
        breaker = self.breaker(cand.name)
        limits = self.models.limits.get(b.provider)
        limiter = self.limiter(b.provider)
        retry = self.models.retry
        start = self._clock()
        tries = 0

        def done(outcome: Literal["ok", "error", "skipped"], reason: str = "", error: str = "") -> Attempt:
            return Attempt(
                cand.name, outcome, reason, error, tries, round(self._clock() - start, 4), cand.variant
            )

        while True:
            if not breaker.allow():
                return None, done("skipped", f"circuit open ({breaker.state})", "CircuitOpen")
            if (
                limiter is not None
                and limits is not None
                and not limiter.acquire(est.total_tokens, limits.max_wait_s)
            ):
                breaker.release()
                return None, done(
                    "skipped", f"rate limit of provider {b.provider!r} reached", "RateLimitedLocally"
                )
            tries += 1
            try:
                value = call(b)
            except UnavailableError as e:  # typed backend failures (and missing extras/models) fall back
                msg = str(e)
                if not isinstance(
                    e, MissingCredentials
                ):  # a missing key says nothing about the service's health
                    breaker.failure()
                else:
                    breaker.release()
                log.warning(
                    "model backend failed",
                    extra={"backend": cand.name, "error": type(e).__name__, "detail": msg},
                )
                retryable = isinstance(e, BackendError) and e.retryable
                if not retryable or tries > b.config.retries:
                    return None, done("error", msg, type(e).__name__)
                delay = self._backoff(tries)
                if isinstance(e, RateLimited) and e.retry_after is not None:
                    if e.retry_after > retry.max_retry_after_s:
                        return None, done(
                            "error", f"{msg} (Retry-After {e.retry_after:g}s is too long)", type(e).__name__
                        )
                    delay = max(delay, e.retry_after)
                self._sleep(delay)
                continue
            except BaseException:  # a bug or an interrupt: no verdict on the backend's health
                breaker.release()
                raise
            breaker.success()
            if limiter is not None and isinstance(value, Generation):
                limiter.settle(est.total_tokens, value.usage.total_tokens)
            return value, done("ok")

    def _backoff(self, tries: int) -> float:
        """Full-jitter exponential backoff: uniform in [base * 2^(n-1) / 2, base * 2^(n-1)], capped."""
        r = self.models.retry
        cap = min(r.max_delay_s, r.base_delay_s * 2 ** (tries - 1))
        return cap * (0.5 + 0.5 * self._rng.random())


def _observe_attempt(cand: _Candidate, kind: Kind, attempt: Attempt) -> None:
    """Prometheus: calls, latency, and A/B outcomes per backend (cluster/metric_names.py)."""
    from cluster import metric_names as mn

    if attempt.outcome == "skipped":
        return
    mn.get("vidray_model_requests_total").labels(backend=cand.name, kind=str(kind), outcome=attempt.outcome).inc()
    mn.get("vidray_model_seconds").labels(backend=cand.name, kind=str(kind)).observe(attempt.elapsed_s)
    if cand.variant:
        experiment, _, variant = cand.variant.partition(":")
        mn.get("vidray_ab_outcomes_total").labels(experiment=experiment, variant=variant,
                                                  outcome=attempt.outcome).inc()


def _observe_cost(b: Backend, usage: Usage, cost: float) -> None:
    from cluster import metric_names as mn

    if not b.network:  # packaged local models cost nothing and send no tokens anywhere
        return
    mn.get("vidray_api_cost_usd_total").labels(provider=b.provider, model=b.model).inc(cost)
    tokens = mn.get("vidray_api_tokens_total")
    tokens.labels(provider=b.provider, direction="input").inc(usage.input_tokens)
    tokens.labels(provider=b.provider, direction="output").inc(usage.output_tokens)


def _unit(text: str) -> float:
    """A uniform number in [0, 1) from a string, so the same request id always lands in the same variant."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def _digest_array(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:32]


def _digest_frame(f: TimedFrame) -> str:
    return f"{f.t:.3f}:{_digest_array(f.image)}"


_SHARED: dict[str, Router] = {}
_SHARED_LOCK = threading.Lock()


def shared_router(settings: Settings) -> Router:
    """One router per process and configuration, so breakers, rate limits and SQLite handles are shared.

    Why: a router's circuit breakers and token buckets only work if every call in the process goes
    through the same instance; building one per request would forget every failure.
    """
    key = hashlib.sha256(settings.model_dump_json().encode()).hexdigest()
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = Router(settings)
        return _SHARED[key]
