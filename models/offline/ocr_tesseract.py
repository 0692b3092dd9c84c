"""OCR with Tesseract 5 (Debian `tesseract-ocr`, via pytesseract), tuned for screen text and code.

Why these choices (measured on rendered 1280x720 code frames, tests/models/offline):

* **Dark themes are inverted** before recognition: Tesseract's LSTM was trained on dark text on
  light paper and loses most characters of light-on-dark editor themes.
* **One pass, hOCR with per-glyph boxes** (`hocr_char_boxes=1`): line and word grouping come from
  Tesseract, and glyph positions let `layout.lines_from_chars` put each character in its
  monospace column, which recovers indentation and internal spacing exactly. Joining Tesseract's
  words instead gave `json. loads (path. read_text())`-style spacing and 14 of 18 lines; glyph
  columns give 17-18 of 18.
* **`--psm 6`** (one uniform block): editor panes are one block; automatic page segmentation
  splits indented lines into separate columns.
* **No upscaling by default**: 2x and 1.5x were no better on 720p frames and cost 1.5-2x time.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

from cluster.optional import require
from models.base import OCR, Availability, TextBox
from models.errors import BackendError
from models.offline._packaged import check
from models.offline.layout import CharBox, lines_from_chars

_HTML = "{http://www.w3.org/1999/xhtml}"
_BBOX = re.compile(r"(?:bbox|x_bboxes) (\d+) (\d+) (\d+) (\d+)")
_CONF = re.compile(r"x_conf ([\d.]+)")
_DARK_MEAN = 110  # mean grey level (0-255) under which a frame is treated as a dark theme


class TesseractOCR(OCR):
    """Tesseract line boxes; monospaced text keeps its indentation (see `models.offline.layout`).

    Options (`BackendConfig.options`): `lang` (Tesseract language codes, default "eng"),
    `psm` (page segmentation mode, default 6), `scale` (resize factor before recognition,
    default 1.0), `timeout_s` (per image, default 60).
    """

    type_name = "tesseract"

    def availability(self) -> Availability:
        return check(
            {"pytesseract": "pip install 'vidray[models]'"},
            programs={"tesseract": "apt-get install tesseract-ocr tesseract-ocr-eng"},
        )

    def read(self, image: np.ndarray) -> list[TextBox]:
        pytesseract = require("pytesseract")
        from PIL import Image

        opts: dict[str, Any] = self.config.options
        scale = float(opts.get("scale", 1.0))
        grey = prepare(image)
        pil = Image.fromarray(grey)
        if scale != 1.0:
            pil = pil.resize((round(pil.width * scale), round(pil.height * scale)), Image.Resampling.LANCZOS)
        config = f"--psm {int(opts.get('psm', 6))} -c hocr_char_boxes=1"
        try:
            hocr = pytesseract.image_to_pdf_or_hocr(
                pil,
                extension="hocr",
                lang=str(opts.get("lang", "eng")),
                config=config,
                timeout=float(opts.get("timeout_s", 60)),
            )
        except (pytesseract.TesseractError, pytesseract.TesseractNotFoundError, RuntimeError) as e:
            # A missing language pack, a missing binary or a timeout: the router moves on to the
            # next OCR backend instead of failing the request.
            raise BackendError(f"{self.name}: tesseract failed ({e})", backend=self.name) from e
        return lines_from_chars(parse_hocr_chars(hocr, scale))


def prepare(image: np.ndarray) -> np.ndarray:
    """RGB to grey, inverted when the background is dark, so text is always dark on light."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        from cluster.errors import InputError

        raise InputError(f"OCR expects an HxWx3 uint8 RGB image, got shape {image.shape} {image.dtype}")
    grey = (image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114).astype(np.uint8)
    return 255 - grey if grey.mean() < _DARK_MEAN else grey


def parse_hocr_chars(hocr: bytes, scale: float = 1.0) -> list[CharBox]:
    """Glyph boxes from Tesseract hOCR made with `hocr_char_boxes=1`, in original-image pixels."""
    root = ET.fromstring(hocr)
    out: list[CharBox] = []
    line_id = word_id = -1
    for el in root.iter(f"{_HTML}span"):
        cls = el.get("class", "")
        if cls in ("ocr_line", "ocr_header", "ocr_caption", "ocr_textfloat"):
            line_id += 1
        elif cls == "ocrx_word":
            word_id += 1
        elif cls == "ocrx_cinfo" and el.text and el.text.strip():
            title = el.get("title", "")
            box = _BBOX.search(title)
            if box is None:
                continue
            left, top, right, bottom = (int(v) / scale for v in box.groups())
            conf = _CONF.search(title)
            out.append(
                CharBox(
                    el.text,
                    left,
                    top,
                    right - left,
                    bottom - top,
                    line=max(line_id, 0),
                    word=word_id,
                    confidence=float(conf.group(1)) / 100 if conf else 1.0,
                )
            )
    return out
