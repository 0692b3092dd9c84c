"""`vidray transcribe`: JSON and SRT output, chunked decoding with correct offsets, errors."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.base import Segment, Transcript
from models.offline.chunked import quietest_cut, transcribe_chunks
from tests.models.offline.speechdata import LIBRIVOX, make_librivox_video, wer
from vidray.cli import main
from vidray.commands.transcribe import to_srt


def test_quietest_cut_finds_the_pause() -> None:
    sr = 16000
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.3, 10 * sr).astype(np.float32)
    audio[int(7.2 * sr) : int(7.5 * sr)] = 0.0  # the pause
    cut = quietest_cut(audio, search_s=5.0)
    assert 7.2 * sr <= cut <= 7.5 * sr


def test_chunks_carry_over_and_keep_offsets() -> None:
    sr = 16000
    seen: list[tuple[int, float]] = []

    def fake(piece: np.ndarray) -> Transcript:
        return Transcript("en", [Segment(0.0, piece.size / sr, f"{piece.size}")])

    audio = np.random.default_rng(1).normal(0, 0.3, 25 * sr).astype(np.float32)
    audio[int(8.5 * sr) : int(8.7 * sr)] = 0.0
    chunks = [(t / sr, audio[t : t + 10 * sr]) for t in range(0, audio.size, 10 * sr)]
    for transcript, t0 in transcribe_chunks(chunks, fake):
        seen.append((int(transcript.segments[0].text), t0))
    assert sum(n for n, _ in seen) == audio.size  # nothing lost, nothing doubled
    assert seen[0][1] == 0.0 and 8.5 <= seen[1][1] <= 8.7  # second piece starts at the pause
    assert all(b[1] == pytest.approx(a[1] + a[0] / sr) for a, b in itertools.pairwise(seen))


def test_srt_format() -> None:
    srt = to_srt(
        [{"start": 0.0, "end": 1.5, "text": "hello"}, {"start": 3661.25, "end": 3662.0, "text": "later"}]
    )
    assert srt == "1\n00:00:00,000 --> 00:00:01,500\nhello\n\n2\n01:01:01,250 --> 01:01:02,000\nlater\n"


def _run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(argv) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


@pytest.mark.slow
def test_transcribe_espeak_video_json_and_srt(
    media: Any, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srt = tmp_path / "out" / "speech.srt"
    doc = _run_json(["transcribe", str(media.speech), "--json", "--srt", str(srt)], capsys)
    assert doc["language"] == "en" and doc["backend"] == "faster-whisper"
    text = " ".join(s["text"] for s in doc["segments"])
    # A synthetic espeak voice and a made-up word ("Vidray"): tiny.en gets most words, not all.
    assert wer(media.speech_text, text) <= 0.5, text
    assert "quick" in text.lower() and "lazy dog" in text.lower()
    cues = srt.read_text().strip().split("\n\n")
    assert len(cues) == len(doc["segments"])
    assert re.fullmatch(r"1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n.+", cues[0])


@pytest.mark.slow
@pytest.mark.skipif(not LIBRIVOX.is_dir(), reason="apt-get install pocketsphinx-testdata")
def test_long_audio_in_chunks_keeps_times_and_accuracy(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, reference = make_librivox_video(tmp_path / "librivox.mp4")
    doc = _run_json(["transcribe", str(path), "--json", "--chunk-s", "10"], capsys)
    segs = doc["segments"]
    text = " ".join(s["text"] for s in segs)
    assert wer(reference, text) <= 0.10, text
    starts = [s["start"] for s in segs]
    assert starts == sorted(starts) and segs[-1]["end"] <= 29.5
    # The last clip ("he might even have been made amiable himself") is spoken after 24 s.
    last = next(s for s in segs if "himself" in s["text"].lower())
    assert last["start"] >= 22.0


def test_missing_file_and_no_audio_are_input_errors(
    media: Any, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["transcribe", str(media.dir / "nope.mp4")]) == 2
    assert main(["transcribe", str(media.silent)]) == 2
    err = capsys.readouterr().err
    assert "no audio stream" in err
    assert main(["transcribe", str(media.silent), "--chunk-s", "1"]) == 2
