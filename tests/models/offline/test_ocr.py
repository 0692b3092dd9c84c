"""OCR of rendered 1280x720 code frames (dark and light editor themes): lines and indentation exact."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from models.base import OCR, TextBox
from models.offline.layout import CharBox, fit_grid, lines_from_chars, to_text
from models.offline.ocr_rapid import RapidOCRBackend
from models.offline.ocr_tesseract import TesseractOCR, prepare
from tests.models.offline.codeframe import CODE, render_code

REF = [line for line in CODE.splitlines() if line.strip()]
assert len(REF) >= 14 and sum(line.startswith("    ") for line in REF) >= 10


def line_accuracy(text: str) -> float:
    """Share of the reference's non-blank lines recovered exactly (indentation included), in order."""
    got = [line for line in text.splitlines() if line.strip()]
    return sum(a == b for a, b in zip(got, REF, strict=False)) / len(REF)


# ---- layout: pure geometry, no OCR engine -------------------------------------------------------


def test_fit_grid_finds_cell_width_and_origin() -> None:
    cw, origin = 12.04, 40.0
    cols = np.array([0, 4, 5, 8, 12, 30, 31, 55])
    centers = origin + (cols + 0.5) * cw + np.random.default_rng(0).normal(0, 0.8, len(cols))
    got_cw, got_origin, err = fit_grid(centers, 11.0)
    phase = (got_origin - origin) % cw  # the origin is only defined up to whole cells
    assert abs(got_cw - cw) < 0.1 and min(phase, cw - phase) < 2 and err < 0.01


def test_lines_from_chars_rebuilds_indentation_and_spaces() -> None:
    cw = 10.0
    lines = ["def f(x):", "    return x  # two spaces"]
    # Glyph ink narrower than its cell and centred in it, as in DejaVu Sans Mono; word ids as
    # Tesseract gives them (one id per run of non-space glyphs).
    chars = [
        CharBox(
            ch,
            20 + col * cw + 2,
            30 + row * 25,
            6,
            14,
            line=row,
            word=100 * row + len(line[: col + 1].split()),
        )
        for row, line in enumerate(lines)
        for col, ch in enumerate(line)
        if ch != " "
    ]
    boxes = lines_from_chars(chars)
    assert [b.text for b in boxes] == lines
    assert to_text(boxes) == "\n".join(lines)


def test_to_text_indents_plain_line_boxes() -> None:
    # Engines that give only line boxes: x offsets in cells of 10 px become spaces; a gap of two
    # line pitches becomes one blank line.
    boxes = [
        TextBox("class A:", 40, 10, 80, 14),
        TextBox("x = 1", 80, 30, 50, 14),
        TextBox("def f(self):", 80, 70, 120, 14),
        TextBox("pass", 120, 90, 40, 14),
    ]
    assert to_text(boxes) == "class A:\n    x = 1\n\n    def f(self):\n        pass"


def test_dark_frames_are_inverted() -> None:
    dark, light = render_code(theme="dark"), render_code(theme="light")
    assert prepare(dark).mean() > 128 and prepare(light).mean() > 128


# ---- engines on rendered frames -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", [TesseractOCR, RapidOCRBackend], ids=["tesseract", "rapidocr"])
@pytest.mark.parametrize("theme", ["dark", "light"])
def test_code_frame_lines_exact(engine: type[OCR], theme: str) -> None:
    ocr = engine()
    if not ocr.availability().ok:
        pytest.skip(ocr.availability().reason)
    frame = render_code(theme=theme)
    assert frame.shape == (720, 1280, 3)
    boxes = ocr.read(frame)
    text = to_text(boxes)
    acc = line_accuracy(text)
    print(f"{engine.__name__} {theme}: {acc:.0%} of {len(REF)} lines exact")
    assert acc >= 0.9, text
    assert [b.y for b in boxes] == sorted(b.y for b in boxes)  # reading order
    assert all(0 <= b.confidence <= 1 and b.w > 0 for b in boxes)


@pytest.mark.slow
def test_tesseract_reads_proportional_text_as_words() -> None:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (640, 120), "white")
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 32)
    ImageDraw.Draw(img).text((20, 40), "Quarterly revenue grew", font=font, fill="black")
    boxes = TesseractOCR().read(np.asarray(img))
    assert [b.text for b in boxes] == ["Quarterly revenue grew"]


def test_tesseract_failure_is_a_backend_error() -> None:
    from cluster.config import BackendConfig
    from models.errors import BackendError

    ocr = TesseractOCR(BackendConfig(type="tesseract", options={"lang": "nosuchlang"}))
    if not ocr.availability().ok:
        pytest.skip(ocr.availability().reason)
    with pytest.raises(BackendError, match="tesseract failed"):
        ocr.read(np.full((40, 120, 3), 255, np.uint8))


def _fake_tesseract(tmp_path: Any, body: str) -> None:
    exe = tmp_path / "tesseract"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)


def test_tesseract_runs_with_one_openmp_thread_unless_configured(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenMP spin-waiting doubles Tesseract's CPU beside other work: the child gets OMP_THREAD_LIMIT."""
    from cluster.config import BackendConfig

    seen = tmp_path / "seen"
    hocr = '<html xmlns="http://www.w3.org/1999/xhtml"><body></body></html>'
    _fake_tesseract(tmp_path, f'cat > /dev/null\necho "$OMP_THREAD_LIMIT $*" >> {seen}\necho \'{hocr}\'\n')
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
    assert TesseractOCR().read(np.full((40, 120, 3), 255, np.uint8)) == []
    TesseractOCR(BackendConfig(type="tesseract", options={"threads": 2, "psm": 4})).read(np.zeros((40, 120, 3), np.uint8))
    lines = seen.read_text().splitlines()
    assert lines[0].startswith("1 stdin stdout --psm 6 -l eng"), lines
    assert lines[1].startswith("2 stdin stdout --psm 4"), lines
    assert "OMP_THREAD_LIMIT" not in os.environ  # only the child's environment changed


def test_a_hung_tesseract_is_stopped_at_its_timeout(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cluster.config import BackendConfig
    from models.errors import BackendError

    _fake_tesseract(tmp_path, "sleep 30\n")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    ocr = TesseractOCR(BackendConfig(type="tesseract", options={"timeout_s": 0.5}))
    with pytest.raises(BackendError, match="longer than"):
        ocr.read(np.full((40, 120, 3), 255, np.uint8))
