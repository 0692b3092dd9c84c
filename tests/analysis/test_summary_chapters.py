"""Chapters, summaries, key moments, transcript formats and modes on the generated lecture."""

from __future__ import annotations

import pytest

from analysis.schema import AnalysisRequest, TranscriptSegment
from analysis.transcript import to_srt, to_vtt
from tests.analysis.conftest import TOPICS


def test_srt_and_vtt_format() -> None:
    segs = [TranscriptSegment(start=0, end=1.5, text="Hello."), TranscriptSegment(start=3661.25, end=3662, text="Bye.")]
    assert to_srt(segs) == "1\n00:00:00,000 --> 00:00:01,500\nHello.\n\n2\n01:01:01,250 --> 01:01:02,000\nBye.\n"
    assert to_vtt(segs).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello.\n")


@pytest.mark.slow
def test_chapter_boundaries_within_two_seconds(lecture) -> None:
    from analysis.chapters import build_chapters

    video, ctx = lecture
    chapters = build_chapters(ctx)
    assert len(chapters) == len(TOPICS)
    for found, true in zip([c.start for c in chapters[1:]], video.boundaries, strict=True):
        assert abs(found - true) <= 2.0
    for c, (title, _, _) in zip(chapters, TOPICS, strict=True):
        assert c.summary and c.title
        assert title.split()[0].lower()[:4] in (c.title + " " + c.summary).lower()


@pytest.mark.slow
@pytest.mark.parametrize("length", ["one_line", "short", "detailed"])
@pytest.mark.parametrize("style", ["paragraph", "bullets", "technical", "executive"])
def test_summary_names_each_topic(lecture, length, style) -> None:
    from analysis.summary import extractive_summary

    _, ctx = lecture
    text = extractive_summary(ctx, length, style).lower()
    assert text
    if length == "one_line":
        assert "\n" not in text
    for key in ("railway", "coffee", "solar", "whale"):
        assert key in text, f"{length}/{style} summary misses {key}: {text}"
    if style == "bullets" and length != "one_line":
        assert text.startswith("- [0:")


@pytest.mark.slow
def test_key_moments_and_modes(lecture) -> None:
    from analysis.chapters import key_moments
    from analysis.modes import apply_mode, extras

    video, ctx = lecture
    moments = key_moments(ctx)
    assert moments and all(0 <= m.t <= video.spans[-1][1] for m in moments)
    assert any(abs(m.t - video.boundaries[0]) <= 2 for m in moments)
    ctx.request = apply_mode(AnalysisRequest(mode="legal"))
    legal = extras(ctx)
    assert legal["speaker_turns"] and legal["speaker_turns"][0]["start"] < 2
    ctx.request = apply_mode(AnalysisRequest(mode="data-engineer"))
    clips = extras(ctx)["clips"]
    assert len(clips) == len(TOPICS) and "coffee" in clips[1]["text"].lower()
    ctx.request = apply_mode(AnalysisRequest(mode="trading"))
    values = {m["value"] for m in extras(ctx)["market_mentions"]}
    assert any("22" in v for v in values)  # "Efficiency: 22 percent" on a slide
    ctx.request = AnalysisRequest()


def test_unknown_mode_is_a_clear_error() -> None:
    from analysis.modes import apply_mode
    from cluster.errors import InputError

    with pytest.raises(InputError, match="unknown mode 'sales'"):
        apply_mode(AnalysisRequest(mode="sales"))


def test_pii_finder() -> None:
    from analysis.modes import find_pii

    kinds = {k for k, _ in find_pii("write to a.b@c.org, call (555) 123-4567; card 4111-1111-1111-1111; 1234 5678")}
    assert kinds == {"email", "phone", "card_number"}
