"""The per-video index: every piece of evidence with its time span, embedded for search.

Items come from the transcript (speech), on-screen text (screen), frame tags per scene (visual),
scene cuts (scene) and loudness features (audio). Search is hybrid: MiniLM cosine similarity
(paraphrases) plus a lexical overlap score (exact names, numbers, code identifiers the embedding
blurs). One index per video is built once and cached by content hash; `library_search` scans every
cached index, so `vidray search "query"` works across all videos analysed on this machine.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

_VERSION = 1
_LEXICAL_WEIGHT = 0.35  # share of the lexical score in the hybrid; embeddings carry paraphrase
_TAG_MIN_SCORE = 0.15  # ImageNet tags under this probability are noise on real frames
_WORD = re.compile(r"[a-z0-9_]+(?:['.][a-z0-9_]+)*")
_STOP = frozenset(
    ["a", "an", "the", "of", "to", "in", "on", "at", "for", "and", "or", "but", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those", "with", "as", "by", "from", "what", "when", "where", "which", "who", "whom", "how", "why", "does", "do", "did", "has", "have", "had", "not", "no", "yes", "there", "their", "they", "he", "she", "we", "you", "i", "me", "my", "our", "your", "his", "her", "them", "than", "then", "so", "if", "into", "about", "after", "before", "during", "over", "under", "again", "first", "last", "many", "much", "any", "some", "all", "each", "can", "could", "would", "should", "will", "shall", "may", "might", "must", "video", "said", "say", "says", "show", "shown", "shows", "appear", "appears", "happen", "happens", "time", "times"]
)


@dataclass(frozen=True)
class IndexItem:
    kind: str  # speech | screen | visual | scene | audio
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Hit:
    item: IndexItem
    score: float
    video_id: str = ""


def tokens(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


class VideoIndex:
    """Evidence items of one video and their unit-norm embeddings."""

    def __init__(self, video_id: str, items: list[IndexItem], embeddings: np.ndarray) -> None:
        self.video_id = video_id
        self.items = items
        self.embeddings = embeddings.astype(np.float32)
        self._df = Counter(t for it in items for t in set(tokens(it.text)))

    def search(self, query: str, *, k: int = 5, kinds: tuple[str, ...] | None = None,
               query_embedding: np.ndarray | None = None, router: Any = None) -> list[Hit]:
        if not self.items:
            return []
        if query_embedding is None:
            query_embedding = router.embed([query]).value[0]
        dense = self.embeddings @ np.asarray(query_embedding, dtype=np.float32)
        scores = (1 - _LEXICAL_WEIGHT) * dense + _LEXICAL_WEIGHT * self.lexical(query)
        order = np.argsort(-scores)
        hits = [Hit(self.items[i], float(scores[i]), self.video_id) for i in order
                if kinds is None or self.items[i].kind in kinds]
        return hits[:k]

    def lexical(self, query: str) -> np.ndarray:
        """Share of the query's (idf-weighted) words that each item contains, in [0, 1]."""
        q = set(tokens(query))
        if not q:
            return np.zeros(len(self.items), dtype=np.float32)
        n = len(self.items)
        idf = {t: math.log(1 + n / (1 + self._df.get(t, 0))) for t in q}
        total = sum(idf.values())
        out = np.zeros(n, dtype=np.float32)
        for i, it in enumerate(self.items):
            words = set(tokens(it.text))
            out[i] = sum(w for t, w in idf.items() if t in words) / total
        return out

    def save(self, out: Path) -> None:
        (out / "items.json").write_text(json.dumps({"video_id": self.video_id,
                                                    "items": [asdict(i) for i in self.items]}))
        np.save(out / "embeddings.npy", self.embeddings)

    @classmethod
    def load(cls, path: Path) -> VideoIndex:
        doc = json.loads((path / "items.json").read_text())
        return cls(doc["video_id"], [IndexItem(**i) for i in doc["items"]], np.load(path / "embeddings.npy"))


def build_index(ctx: Any) -> VideoIndex:
    """The context video's index (memoised; cached on disk by content hash)."""
    return ctx.memo("index", lambda: _cached(ctx))


def _cached(ctx: Any) -> VideoIndex:
    from analysis._models import router_for
    from data_pipeline.cache import Cache

    router = router_for(ctx.settings)
    params = {"v": _VERSION, "embed": router.order("embed"), "ocr": router.order("ocr"),
              "stt": router.order("transcribe"), "tag": router.order("tag")}

    def compute(out: Path) -> dict[str, Any]:
        items = collect_items(ctx)
        emb = router.embed([it.text for it in items]).value if items else np.zeros((0, 384), np.float32)
        VideoIndex(ctx.video.video_id, items, np.asarray(emb)).save(out)
        return {"items": len(items)}

    art = Cache(ctx.settings.cache_dir).get_or_compute(ctx.video.metadata.sha256, "index", params, compute)
    return VideoIndex.load(art.path)


def scenes_of(ctx: Any) -> Any:
    from data_pipeline.frames_cache import cached_scenes

    return ctx.memo("scenes", lambda: cached_scenes(ctx.video, ctx.settings))


def audio_features_of(ctx: Any) -> Any:
    from data_pipeline.audio import audio_features

    if ctx.video.metadata.audio is None:
        return None
    return ctx.memo("audio_features", lambda: audio_features(ctx.path))


def scene_tags(ctx: Any) -> list[tuple[float, float, list[tuple[str, float]]]]:
    """ImageNet tags of each scene's middle frame: (start, end, [(label, score)])."""

    def compute() -> list[tuple[float, float, list[tuple[str, float]]]]:
        from analysis._models import router_for
        from data_pipeline.decode import VideoReader

        router = router_for(ctx.settings)
        scenes = scenes_of(ctx).scenes[:200]  # bounded: tags are context, not the main evidence
        out = []
        with VideoReader(ctx.path, max_side=320) as reader:
            frames = reader.frames_at([(s.start + s.end) / 2 for s in scenes])
        for s, f in zip(scenes, frames, strict=True):
            tags = [(label, score) for label, score in router.tag(f.image).value if score >= _TAG_MIN_SCORE]
            out.append((s.start, s.end, tags[:3]))
        return out

    return ctx.memo("scene_tags", compute)


def collect_items(ctx: Any) -> list[IndexItem]:
    """Every evidence item of the video, in time order within each kind."""
    from analysis.screen_text import screen_spans
    from analysis.transcript import transcribe_video

    items: list[IndexItem] = []
    for seg in transcribe_video(ctx)["segments"]:
        items.append(IndexItem("speech", seg.start, seg.end, seg.text))
    for span in screen_spans(ctx):
        items.append(IndexItem("screen", span.start, span.end, span.text))
    scenes = scenes_of(ctx).scenes
    for i, s in enumerate(scenes):
        items.append(IndexItem("scene", s.start, s.end, f"scene {i + 1} of {len(scenes)}"))
    for start, end, tags in _safe_tags(ctx):
        if tags:
            items.append(IndexItem("visual", start, end, "shows " + ", ".join(label for label, _ in tags)))
    feats = audio_features_of(ctx)
    if feats is not None:
        for s in feats.silences:
            items.append(IndexItem("audio", s.start, s.end, "silence"))
        for p in feats.peaks:
            items.append(IndexItem("audio", max(0.0, p.t - 0.5), p.t + 0.5, f"loud sound ({p.db:.0f} dBFS)"))
    return items


def _safe_tags(ctx: Any) -> list[tuple[float, float, list[tuple[str, float]]]]:
    from cluster.errors import UnavailableError

    try:
        return scene_tags(ctx)
    except UnavailableError:  # no tagger here: the index simply has no visual items
        return []


def library_search(settings: Any, query: str, *, k: int = 10) -> list[Hit]:
    """Search every cached video index under the settings' cache."""
    from analysis._models import router_for

    root = Path(settings.cache_dir) / "artifacts"
    paths = sorted(p.parent for p in root.glob("*/*/index/*/items.json"))
    if not paths:
        return []
    q = router_for(settings).embed([query]).value[0]
    hits: list[Hit] = []
    for p in paths:
        hits += VideoIndex.load(p).search(query, k=k, query_embedding=q)
    return sorted(hits, key=lambda h: -h.score)[:k]
