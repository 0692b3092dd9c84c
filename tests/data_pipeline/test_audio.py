"""Audio: mono 16 kHz float32, contiguous chunks, ranges, WAV output, loudness features, no-audio error."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from cluster.errors import InputError
from data_pipeline.audio import audio_features, iter_audio, load_audio, write_wav
from tests.conftest import Media


def _freq(x: np.ndarray, sr: int = 16000) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(x))) * sr / len(x))


def test_load_audio_is_mono_float32_at_the_rate(media: Media) -> None:
    a = load_audio(media.scenes.path)  # 440 Hz sine, 44.1 kHz AAC
    assert a.dtype == np.float32 and a.ndim == 1
    assert len(a) / 16000 == pytest.approx(media.scenes.duration, abs=0.1)
    assert _freq(a) == pytest.approx(440, abs=2)
    b = load_audio(media.webm_vp9, sample_rate=8000)  # 660 Hz, opus
    assert _freq(b, 8000) == pytest.approx(660, abs=2)


def test_iter_audio_chunks_are_contiguous(media: Media) -> None:
    whole = load_audio(media.scenes.path)
    chunks = list(iter_audio(media.scenes.path, chunk_s=2.0))
    assert [t for t, _ in chunks] == pytest.approx([0, 2, 4, 6, 8][: len(chunks)], abs=1e-3)
    assert all(len(d) == 32000 for _, d in chunks[:-1])
    assert np.array_equal(np.concatenate([d for _, d in chunks]), whole)


def test_range_matches_the_whole(media: Media) -> None:
    whole = load_audio(media.scenes.path)
    part = load_audio(media.scenes.path, start=3.0, end=4.5)
    assert len(part) == 24000
    # Same sine phase as the same stretch of the whole decode (allow the codec's seek preroll).
    ref = whole[48000:72000]
    assert np.abs(part - ref).max() < 0.02


def test_no_audio_stream_is_an_input_error(media: Media) -> None:
    with pytest.raises(InputError, match=r"silent\.mp4 has no audio stream"):
        load_audio(media.silent)
    with pytest.raises(InputError, match="does not exist"):
        load_audio(media.dir / "nope.mp4")
    with pytest.raises(InputError, match="end="):
        load_audio(media.scenes.path, start=2, end=1)


def test_write_wav_is_16_bit_pcm_mono(tmp_path: Path) -> None:
    x = (0.5 * np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000)).astype(np.float32)
    x[:10] = 3.0  # clipped, not wrapped
    write_wav(tmp_path / "a.wav", x)
    with wave.open(str(tmp_path / "a.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 16000)
        pcm = np.frombuffer(w.readframes(16000), dtype="<i2")
    assert pcm[0] == 32767
    assert np.abs(pcm[10:] / 32767 - x[10:]).max() < 1e-4
    with pytest.raises(InputError, match="mono"):
        write_wav(tmp_path / "b.wav", np.zeros((10, 2)))


def test_audio_features_on_known_samples() -> None:
    sr = 16000
    tone = 0.5 * np.sin(np.arange(2 * sr) * 2 * np.pi * 440 / sr)
    click = np.full(800, 0.9)
    x = np.concatenate([np.zeros(sr), tone, np.zeros(sr // 2), click, np.zeros(sr)]).astype(np.float32)
    f = audio_features(x)
    assert f.duration_s == pytest.approx(len(x) / sr)
    assert f.loudness_db[0] == -100.0 and f.loudness_db[1] == pytest.approx(-9.03, abs=0.05)  # 0.5/sqrt(2)
    assert [(s.start, s.end) for s in f.silences] == [(0.0, 1.0), (3.0, 3.5), (3.55, 4.55)]
    assert max(f.peaks, key=lambda p: p.db).t == pytest.approx(3.5)
    assert max(p.db for p in f.peaks) == pytest.approx(20 * np.log10(0.9), abs=0.05)


def test_audio_features_from_a_file(media: Media) -> None:
    f = audio_features(media.speech)
    assert len(f.loudness_db) == pytest.approx(f.duration_s, abs=1)
    assert max(f.loudness_db) > -30  # speech is audible
    tone = audio_features(media.scenes.path)
    assert tone.silences == [] and all(-25 < db < -15 for db in tone.loudness_db[:-1])
