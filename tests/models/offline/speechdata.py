"""Real read speech with reference transcripts, and word error rate, for speech-to-text tests.

The clips are LibriVox recordings (public domain) of *Sense and Sensibility* shipped by Debian's
`pocketsphinx-testdata` with their reference transcripts; nobody here recorded or generated them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")

# Spoken forms the references use for what recognisers write in short form.
_SPOKEN = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def librivox_clips() -> list[tuple[Path, str]]:
    """(wav path, reference text) for every clip listed in the package's transcription file."""
    out = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((\S+)\)", line.strip())
        if m:
            out.append((LIBRIVOX / f"{m.group(2)}.wav", m.group(1).strip()))
    return out


def make_librivox_video(path: Path, gap_s: float = 0.8) -> tuple[Path, str]:
    """An H.264/AAC MP4 whose soundtrack is every clip in turn, `gap_s` of silence between them.

    Returns the path and the reference text of the whole soundtrack.
    """
    clips = librivox_clips()
    inputs: list[str] = []
    parts = []
    for i, (wav, _) in enumerate(clips):
        inputs += ["-i", str(wav)]
        parts.append(f"[{i}:a]apad=pad_dur={gap_s}[a{i}]")
    concat = "".join(f"[a{i}]" for i in range(len(clips)))
    graph = ";".join(parts) + f";{concat}concat=n={len(clips)}:v=0:a=1[aout]"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            *inputs,
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=10",
            "-filter_complex",
            graph,
            "-map",
            f"{len(clips)}:v",
            "-map",
            "[aout]",
            "-shortest",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            str(path),
        ],
        check=True,
    )
    return path, " ".join(text for _, text in clips)


def normalise(text: str) -> list[str]:
    """Words for WER: lower case, punctuation dropped (apostrophes inside words kept), Mr -> mister."""
    words = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()
    return [_SPOKEN.get(w.strip("'"), w.strip("'")) for w in words if w.strip("'")]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: (substitutions + deletions + insertions) / reference words (Levenshtein)."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / max(1, len(ref))
