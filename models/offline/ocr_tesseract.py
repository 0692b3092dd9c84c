"""OCR with Tesseract 5 (Debian `tesseract-ocr`, run as a child process), tuned for screen text and code.

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
* **One OpenMP thread per Tesseract** (`OMP_THREAD_LIMIT=1` in the child's environment only): the
  Debian build's OpenMP threads spin while waiting; on a 720p slide one thread took 0.24 s wall and
  0.20 CPU-s per frame against 0.57 s and 0.47 CPU-s with the default, and analysis already runs
  OCR beside other work. Option `threads` raises it. Tesseract is run directly (image on stdin as
  uncompressed PGM, hOCR on stdout) rather than through pytesseract, whose child always inherits
  this process's environment.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

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
    default 1.0), `timeout_s` (per image, default 60), `threads` (OpenMP threads, default 1).
    """

    type_name = "tesseract"

    def availability(self) -> Availability:
        return check({}, programs={"tesseract": "apt-get install tesseract-ocr tesseract-ocr-eng"})

    def read(self, image: np.ndarray) -> list[TextBox]:
        from PIL import Image

        opts: dict[str, Any] = self.config.options
        scale = float(opts.get("scale", 1.0))
        grey = prepare(image)
        pil = Image.fromarray(grey)
        if scale != 1.0:
            pil = pil.resize((round(pil.width * scale), round(pil.height * scale)), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        pil.save(buf, format="PPM")  # a greyscale image is written as PGM: no compression to pay for
        hocr = self._run(buf.getvalue(), opts)
        return lines_from_chars(parse_hocr_chars(hocr, scale))

    def _run(self, pgm: bytes, opts: dict[str, Any]) -> bytes:
        exe = shutil.which("tesseract")
        if exe is None:
            raise BackendError(f"{self.name}: tesseract is not on PATH; apt-get install tesseract-ocr", backend=self.name)
        cmd = [exe, "stdin", "stdout", "--psm", str(int(opts.get("psm", 6))), "-l", str(opts.get("lang", "eng")),
               "-c", "hocr_char_boxes=1", "hocr"]  # fmt: skip
        env = {**os.environ, "OMP_THREAD_LIMIT": str(int(opts.get("threads", 1)))}
        timeout = float(opts.get("timeout_s", 60))
        try:
            done = subprocess.run(cmd, input=pgm, capture_output=True, env=env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise BackendError(f"{self.name}: tesseract took longer than {timeout:.0f} s", backend=self.name) from e
        except OSError as e:
            raise BackendError(f"{self.name}: tesseract could not start ({e})", backend=self.name) from e
        if done.returncode != 0 or not done.stdout.strip():
            # A missing language pack or an unreadable image: the router moves on to the next OCR
            # backend instead of failing the request.
            err = done.stderr.decode(errors="replace").strip().splitlines()
            raise BackendError(
                f"{self.name}: tesseract failed (exit {done.returncode}): {err[-1] if err else 'no output'}",
                backend=self.name,
            )
        return done.stdout


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
