"""Request and response bodies of the HTTP API. Requests forbid unknown fields (a typo is a 422 with
the field's name, not a silently ignored option)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UploadURL(_Req):
    """Fetch a video from a URL (the SSRF guard refuses loopback/private/metadata addresses)."""

    url: str = Field(min_length=1, max_length=4096, description="http(s) URL of a video or a video page.")
    callback_url: str | None = Field(
        None, description="Webhook called (HMAC-signed) when the ingest job ends."
    )


class UploadAccepted(BaseModel):
    video_id: str
    job_id: str
    status: JobStatus
    video: dict[str, Any] | None = Field(None, description="The video record (present with ?wait=true).")


class AnalyzeBody(_Req):
    """What to analyze and how; exactly one of `video_id` and `url`."""

    video_id: str | None = Field(None, description="A video from POST /video/upload.")
    url: str | None = Field(None, max_length=4096, description="Or a URL to ingest as part of the job.")
    tasks: list[Literal["transcript", "summary", "chapters", "qa", "code", "actions"]] | None = Field(
        None, description="Tasks to run (default: all)."
    )
    questions: list[str] = Field(
        default_factory=list, max_length=50, description="Questions for the qa task."
    )
    mode: str | None = Field(
        None, max_length=50, description="Preset: developer, researcher, data-engineer, trading, legal."
    )
    summary_length: Literal["one_line", "short", "detailed"] | None = None
    summary_style: Literal["paragraph", "bullets", "technical", "executive"] | None = None
    language: str | None = Field(None, max_length=20)
    callback_url: str | None = Field(None, max_length=4096, description="Webhook called when the job ends.")

    @model_validator(mode="after")
    def _one_source(self) -> AnalyzeBody:
        if bool(self.video_id) == bool(self.url):
            raise ValueError("give exactly one of video_id (an uploaded video) or url")
        if self.tasks is not None and not self.tasks:
            raise ValueError("tasks is empty; leave it out to run every task")
        return self


class JobAccepted(BaseModel):
    job_id: str
    status: JobStatus
    cached: bool = Field(False, description="True when a stored result answered the job at once.")
    created: bool = Field(True, description="False when an Idempotency-Key matched an earlier job.")


class JobView(BaseModel):
    id: str
    kind: str
    status: JobStatus
    progress: float
    stage: str | None
    video_id: str | None
    attempts: int
    result: Any = None
    error: str | None = None
    created_at: float
    started_at: float | None
    finished_at: float | None


class ShareBody(_Req):
    user: str = Field(min_length=1, max_length=200)


class KeyBody(_Req):
    user: str = Field(min_length=1, max_length=200)
    role: Literal["viewer", "analyst", "trainer", "admin"]


class TrainBody(_Req):
    """A training run: `train.run` config (inline or a server-side path) plus key=value overrides."""

    config: dict[str, Any] | None = Field(None, description="The train config document (YAML as JSON).")
    config_path: str | None = Field(
        None, description="Or a config file on the server, e.g. train/configs/tiny.yaml."
    )
    overrides: list[str] = Field(default_factory=list, max_length=100, description="key=value overrides.")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    @model_validator(mode="after")
    def _one_config(self) -> TrainBody:
        if (self.config is None) == (self.config_path is None):
            raise ValueError("give exactly one of config (inline) or config_path")
        if any("=" not in o for o in self.overrides):
            raise ValueError("each override must be key=value, e.g. optim.lr=1e-4")
        return self


# ------------------------------------------------------------------ OpenAI-compatible chat
class ImageURL(_Req):
    url: str
    detail: str | None = None


class VideoURL(_Req):
    url: str


class ContentPart(_Req):
    type: Literal["text", "image_url", "video_url"]
    text: str | None = None
    image_url: ImageURL | None = None
    video_url: VideoURL | None = None

    @model_validator(mode="after")
    def _matches(self) -> ContentPart:
        if getattr(self, self.type if self.type != "text" else "text") is None:
            raise ValueError(f"content part of type {self.type!r} needs a {self.type!r} field")
        return self


class Message(_Req):
    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart]
    name: str | None = None


class ChatBody(BaseModel):
    """OpenAI chat completions; unknown OpenAI options are accepted and ignored (clients send many)."""

    model_config = ConfigDict(extra="allow")

    model: str = "vidray"
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192)
    temperature: float | None = Field(None, ge=0, le=2)
