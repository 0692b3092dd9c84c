"""Speech-to-text backends on real LibriVox speech inside a video, with the network switched off."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from cluster.errors import InputError
from models.base import SpeechToText
from models.offline.pocketsphinx import PocketSphinxSTT
from models.offline.whisper import FasterWhisperSTT
from tests.models.offline.speechdata import LIBRIVOX, make_librivox_video, normalise, wer

pytestmark = pytest.mark.skipif(not LIBRIVOX.is_dir(), reason="apt-get install pocketsphinx-testdata")


@pytest.fixture(scope="module")
def librivox_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return make_librivox_video(tmp_path_factory.mktemp("speech") / "librivox.mp4")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a socket fails: proves the backend needs no model hub."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_wer_helper() -> None:
    assert normalise("Mr. John's  CAT, ran!") == ["mister", "john's", "cat", "ran"]
    assert wer("a b c d", "a x c") == 0.5
    assert wer("a b", "a b") == 0.0


def test_rejects_stereo_and_int_audio() -> None:
    stt = FasterWhisperSTT()
    with pytest.raises(InputError, match="1-D"):
        stt.transcribe(np.zeros((100, 2), np.float32))
    with pytest.raises(InputError, match="float32"):
        stt.transcribe(np.zeros(100, np.int16))
    with pytest.raises(InputError, match="English"):
        stt.transcribe(np.zeros(100, np.float32), language="de")


def test_availability_names_missing_model(tmp_path: Path) -> None:
    from cluster.config import BackendConfig

    stt = FasterWhisperSTT(BackendConfig(type="faster-whisper", model=str(tmp_path / "nope")))
    assert not stt.availability().ok
    assert "nope" in stt.availability().reason


@pytest.mark.slow
def test_whisper_wer_on_librivox_video(librivox_video: tuple[Path, str], no_network: None) -> None:
    from data_pipeline.audio import load_audio

    path, reference = librivox_video
    stt = FasterWhisperSTT()
    assert stt.availability().ok, stt.availability().reason
    audio = load_audio(path)
    transcript = stt.transcribe(audio)
    assert transcript.language == "en"
    error = wer(reference, transcript.text)
    print(f"whisper tiny.en WER={error:.3f}: {transcript.text}")
    assert error <= 0.10
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)
    assert transcript.segments[-1].end <= len(audio) / 16000 + 0.5
    assert all(0 <= s.confidence <= 1 for s in transcript.segments)


@pytest.mark.slow
def test_pocketsphinx_fallback_transcribes_a_clip(no_network: None) -> None:
    from data_pipeline.audio import load_audio
    from tests.models.offline.speechdata import librivox_clips

    wav, reference = librivox_clips()[1]  # "he was not an ill disposed young man" (3 s)
    stt: SpeechToText = PocketSphinxSTT()
    assert stt.availability().ok
    transcript = stt.transcribe(load_audio(wav))
    error = wer(reference, transcript.text)
    print(f"pocketsphinx WER={error:.3f}: {transcript.text}")
    assert error <= 0.5  # a weak fallback: proves it decodes speech, not that it is good
    assert transcript.segments and transcript.segments[0].start >= 0
