"""Programming-tutorial videos with known ground truth: code typed line by line, narrated.

Why: video-to-code (analysis/code.py) must be measured against the exact source text, the exact
time each line appeared and the narration of each step. Real screencasts have none of that
recorded, so this module renders an editor (title bar with the file name, optional line-number
gutter, dark or light theme, DejaVu Sans Mono) with Pillow, types the code one line at a time,
narrates each step with espeak-ng and encodes 1280x720 H.264 with ffmpeg.

How: every distinct editor state is one PNG; an ffmpeg concat list gives each still its duration
(frame-aligned), and the narration WAVs are laid onto one silent track at each step's start. Both
streams get the same explicit `-t`, because `-shortest` drifts with looped images.

    from vidray.samples_tutorial import TutorialFile, make_tutorial_video
    tv = make_tutorial_video("t.mp4", code, language="python", narration=["First ...", "Then ..."])
    tv.line_times[i]  # when line i (0-based, final file) first appeared on screen
"""

from __future__ import annotations

import shutil
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vidray.samples import _ffmpeg, speak

_MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
_SANS = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

THEMES: dict[str, dict[str, tuple[int, int, int]]] = {
    "dark": {
        "bg": (30, 30, 30),
        "fg": (212, 212, 212),
        "kw": (86, 156, 214),
        "str": (206, 145, 120),
        "bar": (60, 60, 60),
        "bar_fg": (204, 204, 204),
        "gutter": (133, 133, 133),
    },
    "light": {
        "bg": (255, 255, 255),
        "fg": (30, 30, 30),
        "kw": (0, 0, 200),
        "str": (163, 21, 21),
        "bar": (221, 221, 221),
        "bar_fg": (51, 51, 51),
        "gutter": (120, 120, 120),
    },
}
# Highlighted words (any language): colour only matters for OCR contrast, not for correctness.
_KEYWORDS = frozenset(
    [
        "import",
        "from",
        "class",
        "def",
        "return",
        "if",
        "else",
        "elif",
        "not",
        "for",
        "in",
        "while",
        "raise",
        "None",
        "True",
        "False",
        "const",
        "let",
        "var",
        "function",
        "async",
        "await",
        "export",
        "interface",
        "type",
        "public",
        "private",
        "static",
        "void",
        "int",
        "new",
        "package",
        "func",
        "struct",
        "fn",
        "pub",
        "use",
        "mut",
        "impl",
        "match",
        "include",
        "using",
        "namespace",
        "echo",
        "then",
        "fi",
        "do",
        "done",
    ]
)
_BAR_H = 36  # title bar height (px at 720p)
_FPS = 10  # screencasts of typing need no more; halves encode time against 25 fps


@dataclass(frozen=True)
class TutorialStep:
    start: float
    end: float
    lines: tuple[int, int]  # [first, last) line indices of the file added in this step
    narration: str
    filename: str | None


@dataclass(frozen=True)
class TutorialFile:
    """One file typed in the tutorial: its code, the narration per step, and optional step sizes.

    `step_lines[k]` is the number of lines typed during step k; by default the code is split into
    steps at blank lines (a blank line joins the step before it).
    """

    code: str
    narration: Sequence[str]
    filename: str | None = None
    step_lines: Sequence[int] | None = None


@dataclass(frozen=True)
class TutorialVideo:
    path: Path
    final_code: str  # the last file's text (see `files` for every file)
    line_times: list[float]  # per line of the last file: when it first appeared
    steps: list[TutorialStep]
    language: str
    duration: float
    files: dict[str, str] = field(default_factory=dict)  # filename (or "") -> final text
    file_line_times: dict[str, list[float]] = field(default_factory=dict)


def split_steps(code: str) -> list[int]:
    """Line counts per step: blocks separated by blank lines (each blank line ends its block)."""
    counts, n = [], 0
    for line in code.split("\n"):
        n += 1
        if not line.strip():
            counts.append(n)
            n = 0
    if n:
        counts.append(n)
    return counts


def render_editor(
    lines: Sequence[str],
    *,
    theme: str = "dark",
    filename: str | None = None,
    line_numbers: bool = True,
    size: tuple[int, int] = (1280, 720),
    font_px: int = 20,
    first_line: int = 0,
    title: str = "Editor",
) -> object:
    """One editor frame (PIL image): title bar, optional gutter, `lines` from `first_line` on."""
    from PIL import Image, ImageDraw, ImageFont

    colors = THEMES[theme]
    w, h = size
    scale = h / 720
    img = Image.new("RGB", size, colors["bg"])
    draw = ImageDraw.Draw(img)
    bar = round(_BAR_H * scale)
    draw.rectangle((0, 0, w, bar), fill=colors["bar"])
    bar_font = ImageFont.truetype(_SANS, round(16 * scale))
    heading = f"{filename} - {title}" if filename else title
    draw.text((round(16 * scale), round(9 * scale)), heading, fill=colors["bar_fg"], font=bar_font)
    font = ImageFont.truetype(_MONO, round(font_px * scale))
    cell = font.getlength("M")
    pitch = round(font_px * 1.3 * scale)
    left = round(24 * scale)
    gutter = 4 if line_numbers else 0  # "NNN " in cells: keeps code on the same monospace grid
    top = bar + round(14 * scale)
    for row, line in enumerate(lines[first_line:]):
        y = top + row * pitch
        if y + pitch > h:
            break
        if line_numbers:
            num = str(first_line + row + 1).rjust(3)
            draw.text((left, y), num, fill=colors["gutter"], font=font)
        col = gutter
        for token in _tokens(line):
            color = (
                colors["kw"] if token in _KEYWORDS else colors["str"] if token[:1] in "\"'`" else colors["fg"]
            )
            draw.text((left + col * cell, y), token, fill=color, font=font)
            col += len(token)
    return img


def visible_rows(size: tuple[int, int] = (1280, 720), font_px: int = 20) -> int:
    scale = size[1] / 720
    top = round(_BAR_H * scale) + round(14 * scale)
    return int((size[1] - top) // round(font_px * 1.3 * scale))


def make_tutorial_video(
    path: str | Path,
    code: str | Sequence[TutorialFile],
    *,
    language: str,
    narration: Sequence[str] = (),
    filename: str | None = None,
    theme: str = "dark",
    line_numbers: bool = True,
    size: tuple[int, int] = (1280, 720),
    seconds_per_line: float = 2.5,
    gap_s: float = 0.8,
    speed: int = 160,
) -> TutorialVideo:
    """Render, narrate and encode a tutorial that types `code` line by line.

    Args:
        code: the source text, or several `TutorialFile`s typed one after the other (tab switch).
        language: recorded in the result for tests; the video itself does not name it.
        narration: one sentence (or a few) per step when `code` is a string.
        seconds_per_line: time between two typed lines; a step lasts at least as long as its speech.
        gap_s: pause after each step's narration before the next step starts.
    """
    path = Path(path)
    files = [TutorialFile(code, narration, filename)] if isinstance(code, str) else list(code)
    work = path.with_name(path.stem + "_parts")
    work.mkdir(parents=True, exist_ok=True)
    stills: list[tuple[Path, float]] = []  # (png, duration)
    audio: list[tuple[float, Path]] = []  # (start, wav)
    steps: list[TutorialStep] = []
    texts: dict[str, str] = {}
    times: dict[str, list[float]] = {}
    t = 0.0
    rows = visible_rows(size)
    for fi, f in enumerate(files):
        lines = f.code.split("\n")
        counts = list(f.step_lines) if f.step_lines else split_steps(f.code)
        if sum(counts) != len(lines):
            raise ValueError(
                f"step_lines of file {fi} add up to {sum(counts)}, but the code has {len(lines)} lines"
            )
        if len(f.narration) != len(counts):
            raise ValueError(
                f"file {fi} has {len(counts)} steps but {len(f.narration)} narrations; "
                "pass one narration per step (steps split at blank lines unless step_lines is given)"
            )
        key = f.filename or ""
        times[key] = []
        done = 0
        for k, (count, said) in enumerate(zip(counts, f.narration, strict=True)):
            wav = speak(said, work / f"f{fi}s{k}.wav", speed=speed)
            speech = _wav_seconds(wav)
            step_start = t
            audio.append((step_start, wav))
            typing = count * seconds_per_line
            length = _frames(max(typing, speech + gap_s))
            for j in range(count):
                shown = lines[: done + j + 1]
                first = max(0, len(shown) - rows)  # scroll so the cursor line stays visible
                img = render_editor(
                    shown,
                    theme=theme,
                    filename=f.filename,
                    line_numbers=line_numbers,
                    size=size,
                    first_line=first,
                )
                png = work / f"f{fi}s{k}l{j}.png"
                img.save(png)  # type: ignore[attr-defined]
                line_t = t
                stay = _frames(seconds_per_line) if j < count - 1 else _frames(step_start + length - t)
                stills.append((png, stay))
                times[key].append(round(line_t, 3))
                t = round(t + stay, 6)
            steps.append(
                TutorialStep(round(step_start, 3), round(t, 3), (done, done + count), said, f.filename)
            )
            done += count
        texts[key] = f.code
    total = round(t, 3)
    listing = work / "list.txt"
    body = "".join(f"file '{p.name}'\nduration {d:.4f}\n" for p, d in stills)
    listing.write_text(body + f"file '{stills[-1][0].name}'\n")  # concat needs the last still repeated
    track = _mix(audio, total, work / "narration.wav")
    _ffmpeg(
        [
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            "-i",
            str(track),
            "-vf",
            f"fps={_FPS}",
            "-t",
            f"{total:.3f}",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "stillimage",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-ar",
            "22050",
            "-ac",
            "1",
            str(path),
        ]
    )
    shutil.rmtree(work, ignore_errors=True)
    last = files[-1].filename or ""
    return TutorialVideo(path, texts[last], times[last], steps, language, total, texts, times)


def _frames(seconds: float) -> float:
    return max(1, round(seconds * _FPS)) / _FPS


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def _mix(parts: Sequence[tuple[float, Path]], total: float, out: Path) -> Path:
    """One mono 16-bit track of `total` seconds with each WAV placed at its start time."""
    import numpy as np

    rate = 22050
    track = np.zeros(int(total * rate) + 1, dtype=np.int16)
    for start, wav in parts:
        with wave.open(str(wav)) as w:
            rate_in = w.getframerate()
            data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        if rate_in != rate:  # espeak-ng writes 22050 Hz; resample anything else by index
            data = data[(np.arange(int(len(data) * rate / rate_in)) * rate_in / rate).astype(int)]
        i = int(start * rate)
        n = min(len(data), len(track) - i)
        track[i : i + n] = data[:n]
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(track.tobytes())
    return out


def _tokens(line: str) -> list[str]:
    out: list[str] = []
    word = ""
    for ch in line:
        if ch.isalnum() or ch == "_":
            word += ch
            continue
        if word:
            out.append(word)
            word = ""
        out.append(ch)
    if word:
        out.append(word)
    return out
