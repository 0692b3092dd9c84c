"""The public contract of an analysis: request options and the result document.

The result's top-level keys are a public contract shared by `vidray analyze --json`, the HTTP API's
job results and the streaming endpoints: `video`, `transcript`, `summary`, `chapters`,
`key_moments`, `answers`, `code`, `actions`, each present only when its task ran. Extra keys
(`backends`, `timings`, `index`, task-specific detail) may be added; the listed ones never change
shape. `python -m analysis.schema` prints the JSON Schema (docs/analysis-schema.json).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TaskName = Literal["transcript", "summary", "chapters", "qa", "code", "actions"]
ALL_TASKS: tuple[TaskName, ...] = ("transcript", "summary", "chapters", "qa", "code", "actions")
SummaryLength = Literal["one_line", "short", "detailed"]
SummaryStyle = Literal["paragraph", "bullets", "technical", "executive"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnalysisRequest(_Strict):
    """What to compute for one video."""

    tasks: list[TaskName] = Field(default_factory=lambda: list(ALL_TASKS), description="Tasks to run.")
    questions: list[str] = Field(default_factory=list, description="Questions for the qa task.")
    mode: str | None = Field(None, description="Preset: developer, researcher, data-engineer, trading, legal.")
    summary_length: SummaryLength = "short"
    summary_style: SummaryStyle = "paragraph"
    language: str | None = Field(None, description="Spoken language hint for speech-to-text.")

    @field_validator("tasks")
    @classmethod
    def _dedupe(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("tasks is empty; name at least one of " + ", ".join(ALL_TASKS))
        return list(dict.fromkeys(v))

    @field_validator("questions")
    @classmethod
    def _questions(cls, v: list[str]) -> list[str]:
        v = [q.strip() for q in v]
        if any(not q for q in v):
            raise ValueError("questions must not be empty strings")
        if any(len(q) > 2000 for q in v):
            raise ValueError("a question is longer than 2000 characters; shorten it")
        return v


class Span(_Strict):
    start: float
    end: float


class TranscriptSegment(_Strict):
    start: float
    end: float
    text: str
    confidence: float | None = None
    speaker: str | None = None


class Chapter(_Strict):
    start: float
    end: float
    title: str
    summary: str


class KeyMoment(_Strict):
    t: float
    label: str
    score: float
    why: str | None = None


class Answer(_Strict):
    question: str
    answer: str
    evidence: list[Span]
    confidence: float
    backend: str
    found: bool = Field(True, description="False when the video holds no evidence ('not in the video').")


class CodeStep(_Strict):
    start: float
    end: float
    diff: str
    narration: str


class CodeFile(_Strict):
    language: str
    text: str
    steps: list[CodeStep]
    filename: str | None = None


class ActionSegment(_Strict):
    start: float
    end: float
    label: str
    score: float
    people: int | None = None


class AnalysisResult(BaseModel):
    """The analysis document. Listed keys keep their shape; extra keys may be added."""

    model_config = ConfigDict(extra="allow")

    video: dict[str, Any]
    transcript: list[TranscriptSegment] | None = None
    summary: str | None = None
    chapters: list[Chapter] | None = None
    key_moments: list[KeyMoment] | None = None
    answers: list[Answer] | None = None
    code: list[CodeFile] | None = None
    actions: list[ActionSegment] | None = None

    def public(self) -> dict[str, Any]:
        """The JSON document with tasks that did not run left out."""
        return self.model_dump(mode="json", exclude_none=True)


def json_schema() -> dict[str, Any]:
    return AnalysisResult.model_json_schema()


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))
