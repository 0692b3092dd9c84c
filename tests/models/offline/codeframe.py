"""Render source code onto a 1280x720 frame, as a screencast of an editor would show it.

Why a helper: OCR tests and the OCR benchmark need frames whose exact text (indentation included)
is known. DejaVu Sans Mono comes from Debian's fonts-dejavu-core.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"

CODE = '''import json
from pathlib import Path


class Cache:
    """Keep results on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits = 0

    def get(self, key: str) -> dict | None:
        path = self.root / f"{key}.json"
        if not path.exists():
            return None
        self.hits += 1
        return json.loads(path.read_text())

    def put(self, key: str, value: dict) -> None:
        for part in key.split("/"):
            if not part:
                raise ValueError("empty key")
        (self.root / key).write_text(json.dumps(value))'''

THEMES = {
    "dark": {"bg": (30, 30, 30), "fg": (212, 212, 212), "kw": (86, 156, 214), "str": (206, 145, 120)},
    "light": {"bg": (255, 255, 255), "fg": (30, 30, 30), "kw": (0, 0, 200), "str": (163, 21, 21)},
}
_KEYWORDS = {"import", "from", "class", "def", "return", "if", "not", "for", "in", "raise", "None"}


def render_code(
    code: str = CODE,
    theme: str = "dark",
    *,
    size: int = 20,
    left: int = 40,
    top: int = 24,
    width: int = 1280,
    height: int = 720,
) -> np.ndarray:
    """Draw `code` in a monospace font with simple keyword colouring; return HxWx3 uint8 RGB."""
    colors = THEMES[theme]
    img = Image.new("RGB", (width, height), colors["bg"])
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, size)
    char_w = font.getlength("M")
    line_h = int(size * 1.3)
    for row, line in enumerate(code.splitlines()):
        col = 0
        for token in _tokens(line):
            color = (
                colors["kw"] if token in _KEYWORDS else colors["str"] if token[:1] in "\"'" else colors["fg"]
            )
            draw.text((left + col * char_w, top + row * line_h), token, font=font, fill=color)
            col += len(token)
    return np.asarray(img)


def _tokens(line: str) -> list[str]:
    out: list[str] = []
    word = ""
    for ch in line:
        if ch.isalnum() or ch == "_":
            word += ch
        else:
            if word:
                out.append(word)
                word = ""
            out.append(ch)
    if word:
        out.append(word)
    return out
