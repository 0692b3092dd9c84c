"""A Markdown report a person can read, from an analysis result document."""

from __future__ import annotations

from typing import Any


def clock(t: float) -> str:
    t = max(0.0, float(t))
    h, rem = divmod(int(t), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _span(start: float, end: float) -> str:
    return f"{clock(start)}–{clock(end)}"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render_markdown(doc: dict[str, Any]) -> str:
    """Markdown for `doc` (an `AnalysisResult.public()` document); sections for the tasks that ran."""
    v = doc.get("video", {})
    title = v.get("title") or v.get("source") or v.get("id", "video")
    out = [f"# {_cell(title)}", ""]
    audio = v.get("audio")
    out += [
        "| duration | size | fps | video | audio | id |",
        "|---|---|---|---|---|---|",
        f"| {clock(v.get('duration_s', 0))} | {v.get('width')}×{v.get('height')} | {v.get('fps')} | "
        f"{v.get('video_codec')} | {audio['codec'] + ' ' + str(audio['sample_rate']) + ' Hz' if audio else 'none'} | "
        f"`{v.get('id')}` |",
        "",
    ]
    if doc.get("summary") is not None:
        info = doc.get("summary_info", {})
        out += ["## Summary", "", doc["summary"], "", f"_backend: {info.get('backend', '?')}_", ""]
    if doc.get("chapters"):
        out += ["## Chapters", "", "| time | title | summary |", "|---|---|---|"]
        out += [f"| {_span(c['start'], c['end'])} | {_cell(c['title'])} | {_cell(c['summary'])} |"
                for c in doc["chapters"]]
        out.append("")
    if doc.get("key_moments"):
        out += ["## Key moments", ""]
        out += [f"- **{clock(m['t'])}** {m['label']} ({m['score']:.2f})" + (f" — {m['why']}" if m.get("why") else "")
                for m in doc["key_moments"]]
        out.append("")
    if doc.get("answers"):
        out += ["## Questions", ""]
        for a in doc["answers"]:
            ev = ", ".join(_span(e["start"], e["end"]) for e in a["evidence"]) or "none"
            out += [f"**Q: {a['question']}**", "", f"A: {a['answer']}", "",
                    f"_evidence: {ev}; confidence {a['confidence']:.2f}; backend {a['backend']}_", ""]
    if doc.get("code"):
        out += ["## Code", ""]
        for f in doc["code"]:
            name = f.get("filename") or f"code.{f['language']}"
            out += [f"### {name} ({f['language']})", "", f"```{f['language']}", f["text"].rstrip("\n"), "```", ""]
            if f.get("steps"):
                out += ["| step | time | change | narration |", "|---|---|---|---|"]
                for i, s in enumerate(f["steps"], 1):
                    diff = "<br>".join(_cell(line) for line in s["diff"].splitlines()[:6])
                    out.append(f"| {i} | {_span(s['start'], s['end'])} | {diff} | {_cell(s['narration'])} |")
                out.append("")
    if doc.get("actions"):
        out += ["## Activity", "", "| time | activity | score | people |", "|---|---|---|---|"]
        out += [f"| {_span(a['start'], a['end'])} | {_cell(a['label'])} | {a['score']:.2f} | "
                f"{a.get('people') if a.get('people') is not None else ''} |" for a in doc["actions"]]
        out.append("")
    if doc.get("transcript"):
        out += ["## Transcript", ""]
        out += [f"- `{clock(s['start'])}` {s['text']}" for s in doc["transcript"]]
        out.append("")
    if doc.get("errors"):
        out += ["## Tasks that failed", ""]
        out += [f"- {task}: {msg}" for task, msg in doc["errors"].items()]
        out.append("")
    return "\n".join(out)
