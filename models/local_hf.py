"""Backends over a user's own transformers model directory: video-language, text and Whisper speech models.

Start here: `BackendConfig.model` names a local directory (a Hub snapshot someone copied in, or a
fine-tuned checkpoint from train/). Nothing is downloaded: everything loads with
`local_files_only=True`. Three backends share the loading code:

* `LocalHFVisionLanguage` ("local-hf"): Qwen2-VL, Qwen2.5-VL and LLaVA-OneVision. Frames are
  given to the model as one *video* input, built here (`qwen_video_inputs`,
  `llava_onevision_video_inputs`) rather than by transformers' video processors, which import
  torchvision, and torchvision's PyPI wheel is a CUDA build that breaks vidray's CPU torch.
  Each frame's timestamp is written into the prompt ("frames at 0.0s, 2.0s, ...") so answers can
  cite times; Qwen2.5-VL also gets the real frame spacing (`second_per_grid_ts`) for its
  time-aligned rotary positions.
* `LocalHFTextGenerator` ("local-hf-text"): any causal LM directory.
* `LocalHFSpeechToText` ("local-hf-whisper"): a Whisper checkpoint, 30 s windows.

Options (`BackendConfig.options`): `device` ("cpu", "cuda"), `dtype` ("float32", "bfloat16",
"float16"; default float32 on CPU), `max_frames` (frames per request, evenly subsampled, default
16), `max_pixels` (per frame for Qwen, default 360*640), `threads` (torch threads).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cluster.errors import InputError
from cluster.optional import available, require
from models.base import (
    SAMPLE_RATE,
    Availability,
    ChatMessage,
    Generation,
    Segment,
    SpeechToText,
    TextGenerator,
    TimedFrame,
    Transcript,
    Usage,
    VisionLanguage,
)
from models.errors import MalformedOutput

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OPENAI_CLIP_MEAN: the processors' default
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
QWEN_TYPES = {"qwen2_vl", "qwen2_5_vl"}
LLAVA_OV_TYPES = {"llava_onevision"}
VIDEO_TYPES = QWEN_TYPES | LLAVA_OV_TYPES
_DTYPES = {"float32", "bfloat16", "float16"}
_WHISPER_WINDOW_S = 30.0  # Whisper's fixed input length


# ---- loading shared by the three backends ------------------------------------------------------


class _LocalModel:
    """Directory checks, lazy thread-safe loading and option parsing for one model directory."""

    def __init__(self, backend: Any, allowed: set[str] | None = None) -> None:
        self.backend = backend
        self.allowed = allowed  # model_type values this backend runs (None: any)
        self.lock = threading.Lock()
        self.loaded: dict[str, Any] | None = None

    @property
    def directory(self) -> Path | None:
        m = self.backend.config.model
        return Path(m).expanduser() if m else None

    def model_type(self) -> str:
        d = self.directory
        if d is None or not (d / "config.json").is_file():
            return ""
        try:
            return str(json.loads((d / "config.json").read_text()).get("model_type", ""))
        except (OSError, ValueError):
            return ""

    def availability(self) -> Availability:
        for module in ("torch", "transformers"):
            if not available(module):
                return Availability.no(f"{module} is not installed: pip install 'vidray[models]'")
        d = self.directory
        if d is None:
            return Availability.no("no model directory: set models.backends.<name>.model to a local path")
        if not (d / "config.json").is_file():
            return Availability.no(f"{d} is not a transformers model directory (no config.json)")
        kind = self.model_type()
        if self.allowed is not None and kind not in self.allowed:
            return Availability.no(
                f"{d} holds a {kind or 'unknown'} model; this backend runs {', '.join(sorted(self.allowed))}"
            )
        return Availability.yes(f"{kind} from {d}")

    def load(self, build: Any) -> dict[str, Any]:
        with self.lock:
            if self.loaded is None:
                ok = self.availability()
                if not ok.ok:
                    raise InputError(f"{self.backend.name}: {ok.reason}")
                torch = require("torch")
                opts = self.backend.config.options
                if opts.get("threads"):
                    torch.set_num_threads(int(opts["threads"]))
                self.loaded = build(str(self.directory), self.kwargs())
            return self.loaded

    def kwargs(self) -> dict[str, Any]:
        torch = require("torch")
        dtype = str(self.backend.config.options.get("dtype", "float32"))
        if dtype not in _DTYPES:
            raise InputError(f"options.dtype={dtype!r}; use one of {sorted(_DTYPES)}")
        return {"local_files_only": True, "dtype": getattr(torch, dtype)}

    def device(self) -> str:
        return str(self.backend.config.options.get("device", "cpu"))


def _chat(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    """The prompt text: the tokenizer's chat template, or a plain `role: text` transcript without one."""
    if getattr(tokenizer, "chat_template", None):
        text: str = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return text
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join([*lines, "assistant:"])


def _finish(tokenizer: Any, new_ids: Any, n_in: int, max_tokens: int, model_id: str, name: str) -> Generation:
    text = tokenizer.decode(new_ids, skip_special_tokens=True).strip()
    if not text:
        raise MalformedOutput(f"{name} produced no text", backend=name)
    eos = tokenizer.eos_token_id
    finish = "length" if len(new_ids) >= max_tokens and (eos is None or int(new_ids[-1]) != eos) else "stop"
    return Generation(text=text, usage=Usage(n_in, len(new_ids)), model=model_id, finish_reason=finish)


def _sampling(temperature: float) -> dict[str, Any]:
    return (
        {"do_sample": True, "temperature": temperature, "top_p": 0.95}
        if temperature > 0
        else {"do_sample": False}
    )


def _stream(tokenizer: Any, run_generate: Any) -> Iterator[str]:
    """Run `run_generate(streamer)` in a thread and yield its text deltas; re-raise its error here."""
    transformers = require("transformers")
    streamer = transformers.TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_generate(streamer)
        except BaseException as e:
            errors.append(e)
            streamer.end()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    for delta in streamer:
        if delta:
            yield delta
    worker.join()
    if errors:
        raise errors[0]


# ---- video inputs built without torchvision ----------------------------------------------------


def select_frames(frames: Sequence[TimedFrame], max_frames: int) -> list[TimedFrame]:
    """Time-ordered frames, evenly subsampled to at most `max_frames` (first and last kept)."""
    ordered = sorted(frames, key=lambda f: f.t)
    if len(ordered) <= max_frames:
        return ordered
    idx = np.unique(np.round(np.linspace(0, len(ordered) - 1, max_frames)).astype(int))
    return [ordered[i] for i in idx]


def _check_frames(frames: Sequence[TimedFrame]) -> None:
    for f in frames:
        if f.image.ndim != 3 or f.image.shape[2] != 3 or f.image.dtype != np.uint8:
            raise InputError(
                f"frame at t={f.t}s must be HxWx3 uint8 RGB, got {f.image.shape} {f.image.dtype}"
            )


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL's resize rule: both sides multiples of `factor`, area within bounds, aspect kept."""
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h, w


def _resize_normalize(
    images: Sequence[np.ndarray], height: int, width: int, mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """Bicubic resize, scale to [0, 1], normalise per channel: (n, 3, height, width) float32."""
    from PIL import Image

    out = np.stack(
        [
            np.asarray(
                Image.fromarray(im).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32
            )
            / 255.0
            for im in images
        ]
    )
    out = (out - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def qwen_video_inputs(
    frames: Sequence[TimedFrame],
    vision_config: Any,
    *,
    max_pixels: int,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> dict[str, Any]:
    """`pixel_values_videos` and `video_grid_thw` for one video, as Qwen2VLVideoProcessor makes them.

    Frames are resized to multiples of patch*merge pixels, padded to a multiple of the temporal
    patch by repeating the last frame, then cut into (t, h, w) patches laid out so each merge
    window's patches are consecutive (the 10-axis permute below is the processor's `patchify`).
    """
    torch = require("torch")
    patch, merge, tps = (
        vision_config.patch_size,
        vision_config.spatial_merge_size,
        vision_config.temporal_patch_size,
    )
    h0, w0 = frames[0].image.shape[:2]
    h, w = smart_resize(h0, w0, patch * merge, min_pixels=(patch * merge) ** 2, max_pixels=max_pixels)
    video = torch.from_numpy(_resize_normalize([f.image for f in frames], h, w, mean, std))[None]
    if pad := -video.shape[1] % tps:
        video = torch.cat([video, video[:, -1:].expand(-1, pad, -1, -1, -1)], dim=1)
    b, n, c = video.shape[:3]
    gt, gh, gw = n // tps, h // patch, w // patch
    patches = video.view(b, gt, tps, c, gh // merge, merge, patch, gw // merge, merge, patch)
    patches = patches.permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9).reshape(gt * gh * gw, c * tps * patch * patch)
    return {"pixel_values_videos": patches, "video_grid_thw": torch.tensor([[gt, gh, gw]])}


def llava_onevision_video_inputs(
    frames: Sequence[TimedFrame],
    vision_config: Any,
    *,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> dict[str, Any]:
    """`pixel_values_videos` (1, frames, 3, S, S) at the vision tower's square input size S."""
    torch = require("torch")
    size = int(vision_config.image_size)
    pixels = _resize_normalize([f.image for f in frames], size, size, mean, std)
    return {"pixel_values_videos": torch.from_numpy(pixels)[None]}


def llava_onevision_video_tokens(num_frames: int, vision_config: Any) -> int:
    """Placeholder tokens for a video: 2x2-pooled patches per frame plus one newline token."""
    side = math.ceil((int(vision_config.image_size) // int(vision_config.patch_size)) / 2)
    return num_frames * side * side + 1


def timestamps_line(frames: Sequence[TimedFrame]) -> str:
    """The sentence that tells the model when each frame was shown."""
    times = ", ".join(f"{f.t:.1f}s" for f in frames)
    return f"The video below shows {len(frames)} frames, in order, at times {times}."


def _norm_stats(directory: str) -> tuple[Sequence[float], Sequence[float]]:
    """Normalisation from preprocessor_config.json when the directory has one, else CLIP's."""
    for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
        p = Path(directory) / name
        if p.is_file():
            try:
                cfg = json.loads(p.read_text())
                return cfg.get("image_mean", CLIP_MEAN), cfg.get("image_std", CLIP_STD)
            except (OSError, ValueError):
                break
    return CLIP_MEAN, CLIP_STD


# ---- backends -------------------------------------------------------------------------------------


class LocalHFVisionLanguage(VisionLanguage):
    """A local Qwen2-VL / Qwen2.5-VL / LLaVA-OneVision directory answering about timed frames."""

    type_name = "local-hf"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._local = _LocalModel(self, VIDEO_TYPES)
        self._gen_lock = threading.Lock()

    def availability(self) -> Availability:
        return self._local.availability()

    def _get(self) -> dict[str, Any]:
        def build(directory: str, kw: dict[str, Any]) -> dict[str, Any]:
            transformers = require("transformers")
            tok = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
            model = transformers.AutoModelForImageTextToText.from_pretrained(directory, **kw).to(
                self._local.device()
            )
            mean, std = _norm_stats(directory)
            return {
                "tok": tok,
                "model": model.eval(),
                "type": model.config.model_type,
                "mean": mean,
                "std": std,
            }

        return self._local.load(build)

    def prepare(self, messages: list[ChatMessage], frames: Sequence[TimedFrame] = ()) -> dict[str, Any]:
        """Tokenised prompt plus video tensors: exactly what `model.generate` receives."""
        if not messages:
            raise InputError("generate() needs at least one message")
        torch = require("torch")
        m = self._get()
        tok, model, kind = m["tok"], m["model"], m["type"]
        cfg = model.config
        opts = self.config.options
        chosen = select_frames(frames, int(opts.get("max_frames", 16)))
        _check_frames(chosen)
        chat = [{"role": x.role, "content": x.content} for x in messages]
        video: dict[str, Any] = {}
        if chosen:
            if kind in QWEN_TYPES:
                placeholder = "<|vision_start|><|video_pad|><|vision_end|>"
                video_token = "<|video_pad|>"
                video = qwen_video_inputs(
                    chosen,
                    cfg.vision_config,
                    max_pixels=int(opts.get("max_pixels", 360 * 640)),
                    mean=m["mean"],
                    std=m["std"],
                )
                count = int(video["video_grid_thw"].prod()) // cfg.vision_config.spatial_merge_size**2
                if kind == "qwen2_5_vl":
                    # Seconds per temporal patch: what Qwen2.5-VL's time-aligned positions expect.
                    step = float(np.median(np.diff([f.t for f in chosen]))) if len(chosen) > 1 else 1.0
                    video["second_per_grid_ts"] = torch.tensor(
                        [cfg.vision_config.temporal_patch_size * max(step, 1e-3)]
                    )
            else:
                placeholder = video_token = "<video>"
                video = llava_onevision_video_inputs(chosen, cfg.vision_config, mean=m["mean"], std=m["std"])
                count = llava_onevision_video_tokens(len(chosen), cfg.vision_config)
            last_user = (
                max(i for i, x in enumerate(chat) if x["role"] == "user")
                if any(x["role"] == "user" for x in chat)
                else len(chat) - 1
            )
            chat[last_user] = {
                **chat[last_user],
                "content": f"{timestamps_line(chosen)}\n{placeholder}\n{chat[last_user]['content']}",
            }
            prompt = _chat(tok, chat).replace(video_token, video_token * count, 1)
        else:
            prompt = _chat(tok, chat)
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
        inputs: dict[str, Any] = {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            **video,
        }
        if kind in QWEN_TYPES:
            # text 0, image 1, video 2: Qwen's M-RoPE needs it (the processor normally adds it).
            inputs["mm_token_type_ids"] = (enc["input_ids"] == cfg.video_token_id).int() * 2 + (
                enc["input_ids"] == cfg.image_token_id
            ).int()
        device = self._local.device()
        return {k: (v.to(device) if hasattr(v, "to") else v) for k, v in inputs.items()}

    def generate(
        self,
        messages: list[ChatMessage],
        frames: Sequence[TimedFrame] = (),
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
    ) -> Generation:
        torch = require("torch")
        m = self._get()
        inputs = self.prepare(messages, frames)
        n_in = int(inputs["input_ids"].shape[1])
        with self._gen_lock, torch.inference_mode():
            out = m["model"].generate(
                **inputs,
                max_new_tokens=max_tokens,
                pad_token_id=m["tok"].eos_token_id,
                **_sampling(temperature),
            )
        return _finish(m["tok"], out[0, n_in:], n_in, max_tokens, self.model, self.name)

    def stream(
        self,
        messages: list[ChatMessage],
        frames: Sequence[TimedFrame] = (),
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        torch = require("torch")
        m = self._get()
        inputs = self.prepare(messages, frames)

        def run(streamer: Any) -> None:
            with self._gen_lock, torch.inference_mode():
                m["model"].generate(
                    **inputs,
                    max_new_tokens=max_tokens,
                    streamer=streamer,
                    pad_token_id=m["tok"].eos_token_id,
                    **_sampling(temperature),
                )

        yield from _stream(m["tok"], run)

    def close(self) -> None:
        self._local.loaded = None


class LocalHFTextGenerator(TextGenerator):
    """A local causal language model directory (Llama, Qwen2, SmolLM, a vidray fine-tune, ...)."""

    type_name = "local-hf-text"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._local = _LocalModel(self)
        self._gen_lock = threading.Lock()

    def availability(self) -> Availability:
        return self._local.availability()

    def _get(self) -> dict[str, Any]:
        def build(directory: str, kw: dict[str, Any]) -> dict[str, Any]:
            transformers = require("transformers")
            tok = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
            model = transformers.AutoModelForCausalLM.from_pretrained(directory, **kw).to(
                self._local.device()
            )
            return {"tok": tok, "model": model.eval()}

        return self._local.load(build)

    def _inputs(self, messages: list[ChatMessage]) -> dict[str, Any]:
        if not messages:
            raise InputError("generate() needs at least one message")
        tok = self._get()["tok"]
        enc = tok(
            _chat(tok, [{"role": x.role, "content": x.content} for x in messages]),
            return_tensors="pt",
            add_special_tokens=False,
        )
        return {k: v.to(self._local.device()) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def generate(
        self, messages: list[ChatMessage], *, max_tokens: int = 512, temperature: float = 0.0
    ) -> Generation:
        torch = require("torch")
        m = self._get()
        inputs = self._inputs(messages)
        n_in = int(inputs["input_ids"].shape[1])
        with self._gen_lock, torch.inference_mode():
            out = m["model"].generate(
                **inputs,
                max_new_tokens=max_tokens,
                pad_token_id=m["tok"].eos_token_id,
                **_sampling(temperature),
            )
        return _finish(m["tok"], out[0, n_in:], n_in, max_tokens, self.model, self.name)

    def stream(
        self, messages: list[ChatMessage], *, max_tokens: int = 512, temperature: float = 0.0
    ) -> Iterator[str]:
        torch = require("torch")
        m = self._get()
        inputs = self._inputs(messages)

        def run(streamer: Any) -> None:
            with self._gen_lock, torch.inference_mode():
                m["model"].generate(
                    **inputs,
                    max_new_tokens=max_tokens,
                    streamer=streamer,
                    pad_token_id=m["tok"].eos_token_id,
                    **_sampling(temperature),
                )

        yield from _stream(m["tok"], run)

    def close(self) -> None:
        self._local.loaded = None


class LocalHFSpeechToText(SpeechToText):
    """A local Whisper checkpoint (any size, multilingual or .en), decoded in 30 s windows.

    Each window becomes one segment with the window's times; a model trained with timestamps
    could give finer segments, but window segments keep the contract for any checkpoint.
    """

    type_name = "local-hf-whisper"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._local = _LocalModel(self, {"whisper"})
        self._gen_lock = threading.Lock()

    def availability(self) -> Availability:
        return self._local.availability()

    def _get(self) -> dict[str, Any]:
        def build(directory: str, kw: dict[str, Any]) -> dict[str, Any]:
            transformers = require("transformers")
            fe = transformers.WhisperFeatureExtractor.from_pretrained(directory, local_files_only=True)
            tok = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
            model = transformers.WhisperForConditionalGeneration.from_pretrained(directory, **kw)
            return {"fe": fe, "tok": tok, "model": model.to(self._local.device()).eval()}

        return self._local.load(build)

    def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> Transcript:
        from models.offline._audio import check_audio

        audio = check_audio(audio)
        torch = require("torch")
        m = self._get()
        model, fe, tok = m["model"], m["fe"], m["tok"]
        lang_ids = getattr(model.generation_config, "lang_to_id", None) or {}
        gen_kw: dict[str, Any] = {"max_new_tokens": int(self.config.options.get("max_new_tokens", 128))}
        if language and lang_ids:
            if f"<|{language}|>" not in lang_ids:
                raise InputError(f"{self.name}: language {language!r} is not one this Whisper model knows")
            gen_kw.update(language=language, task="transcribe")
        window = int(_WHISPER_WINDOW_S * SAMPLE_RATE)
        segments: list[Segment] = []
        for start in range(0, audio.size, window):
            chunk = audio[start : start + window]
            feats = fe(chunk, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            features = feats.input_features.to(self._local.device(), dtype=model.dtype)
            with self._gen_lock, torch.inference_mode():
                ids = model.generate(features, **gen_kw)
            text = tok.decode(ids[0], skip_special_tokens=True).strip()
            if text:
                segments.append(Segment(start / SAMPLE_RATE, (start + chunk.size) / SAMPLE_RATE, text))
        return Transcript(language=language or ("en" if not lang_ids else "und"), segments=segments)

    def close(self) -> None:
        self._local.loaded = None
