"""Turning OpenAI chat messages with video/image parts into text the model router can answer from."""

from __future__ import annotations

from typing import Any


def describe_video(n: int, meta: dict[str, Any]) -> str:
    audio = meta.get("audio") or None
    sound = f"audio {audio['codec']} {audio['sample_rate']} Hz" if audio else "no audio track"
    title = f" titled {meta['title']!r}" if meta.get("title") else ""
    return (
        f"[video {n}{title}: {meta['duration_s']:.1f} s, {meta['width']}x{meta['height']}, "
        f"{meta['fps']:.2f} fps{' (variable)' if meta.get('is_vfr') else ''}, {meta['num_frames']} frames, "
        f"{meta['video_codec']} in {meta['container']}, {sound}, {meta['size_bytes']} bytes]"
    )


def flatten_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """OpenAI messages -> [{"role", "content"}] with media parts replaced by placeholders."""
    out = []
    for msg in messages:
        content = msg["content"]
        if not isinstance(content, str):
            pieces = []
            for part in content:
                if part["type"] == "text":
                    pieces.append(part["text"])
                else:
                    pieces.append(f"<{part['type'].split('_')[0]}>")
            content = "\n".join(pieces)
        out.append({"role": msg["role"], "content": content})
    return out
