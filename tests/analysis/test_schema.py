from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from analysis.report import render_markdown
from analysis.schema import AnalysisRequest, AnalysisResult, json_schema

ROOT = Path(__file__).resolve().parents[2]


def test_published_schema_is_current() -> None:
    on_disk = json.loads((ROOT / "docs" / "analysis-schema.json").read_text())
    assert on_disk == json_schema(), "regenerate: python -m analysis.schema > docs/analysis-schema.json"


def test_request_validation_messages() -> None:
    with pytest.raises(ValidationError, match="tasks is empty"):
        AnalysisRequest(tasks=[])
    with pytest.raises(ValidationError):
        AnalysisRequest(tasks=["dance"])
    with pytest.raises(ValidationError, match="empty strings"):
        AnalysisRequest(questions=["  "])
    with pytest.raises(ValidationError):
        AnalysisRequest(unknown=1)
    assert AnalysisRequest(tasks=["qa", "qa", "summary"]).tasks == ["qa", "summary"]


def test_public_document_and_markdown() -> None:
    doc = AnalysisResult(
        video={"id": "abc", "duration_s": 75.0, "width": 640, "height": 360, "fps": 25.0, "video_codec": "h264",
               "audio": None},
        summary="Two topics.",
        chapters=[{"start": 0, "end": 30, "title": "Intro | start", "summary": "Hello."}],
        answers=[{"question": "Q?", "answer": "A.", "evidence": [{"start": 1, "end": 2}], "confidence": 0.9,
                  "backend": "extractive"}],
        code=[{"language": "python", "text": "print(1)\n", "steps": [{"start": 0, "end": 5, "diff": "+print(1)",
                                                                    "narration": "we print"}]}],
    ).public()
    assert set(doc) == {"video", "summary", "chapters", "answers", "code"}  # tasks that did not run are absent
    md = render_markdown(doc)
    for part in ("## Summary", "## Chapters", "Intro \\| start", "## Questions", "```python", "0:01–0:02"):
        assert part in md


def test_ocr_gibberish_from_footage_is_dropped_but_code_frames_kept() -> None:
    from analysis.screen_text import _keep_text, plausible

    assert not plausible("sonal ee meres -_- -") and not plausible("= a - -S pa Sr. aa ae >")
    assert plausible("def greet(name):") and plausible("Opened: 1898")
    footage = [{"text": t} for t in ("sonal ee meres -_- -", "aa : ee", "os ns @ ao i", "am lt} test iifll!")]
    code = [{"text": t} for t in ("fn main() {", "    let x = 1;", "}")]
    assert _keep_text(footage) == [] and _keep_text(code) == code


def test_stray_letters_from_footage_are_not_screen_text_but_brace_lines_are_neutral() -> None:
    """vtest.avi: Tesseract read pavement as "a  a / e  e / : ;:", which became a chapter summary."""
    from analysis.screen_text import _keep_text

    assert _keep_text([{"text": "a  a\n  e  e\n  : ;:"}]) == []
    assert _keep_text([{"text": "a  a"}, {"text": "e e"}, {"text": ": ;:"}]) == []
    braces = [{"text": "});"}, {"text": "}"}]  # the tail of a JavaScript file: no words, still code
    assert _keep_text(braces) == braces
