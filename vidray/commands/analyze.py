"""`vidray analyze` and `vidray search`: the analysis tasks from the command line.

    vidray analyze SOURCE [--tasks transcript,summary,chapters,qa,code,actions] [--question Q ...]
                   [--mode M] [--summary-length L] [--summary-style S] [--json | --markdown] [--out DIR]
    vidray analyze SRC1 SRC2 ... --out DIR          # batch: many sources on Ray, one result each
    vidray analyze --schema                          # the result's JSON Schema
    vidray search "query" [-k N]                     # across every video analysed on this machine
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cluster.errors import InputError
from vidray.commands._common import atomic_dir, print_json, settings_from


class _ProgressBar:
    """One self-overwriting line on stderr (only when stderr is a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        pct = float(event.get("percent", 0.0))
        bar = "#" * int(pct / 5)
        sys.stderr.write(f"\r{event.get('stage', ''):>12} [{bar:<20}] {pct:5.1f}%")
        sys.stderr.flush()
        if event.get("stage") == "done":
            sys.stderr.write("\n")


def _request(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from analysis.schema import AnalysisRequest

    fields: dict[str, Any] = {"questions": args.question or [], "summary_length": args.summary_length,
                              "summary_style": args.summary_style, "mode": args.mode}
    if args.tasks:
        fields["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    elif args.question and not args.mode:
        fields["tasks"] = ["qa"]
    try:
        return AnalysisRequest(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        raise InputError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from e


def _write_outputs(out: Path, doc: dict[str, Any]) -> None:
    from analysis.report import render_markdown
    from analysis.schema import TranscriptSegment
    from analysis.transcript import to_srt, to_vtt

    with atomic_dir(out) as tmp:
        (tmp / "result.json").write_text(json.dumps(doc, indent=2))
        (tmp / "report.md").write_text(render_markdown(doc))
        if doc.get("transcript"):
            segs = [TranscriptSegment.model_validate(s) for s in doc["transcript"]]
            (tmp / "transcript.srt").write_text(to_srt(segs))
            (tmp / "transcript.vtt").write_text(to_vtt(segs))
        for i, f in enumerate(doc.get("code") or []):
            (tmp / (f.get("filename") or f"code_{i}.{f['language']}")).write_text(f["text"])


def _analyze(args: argparse.Namespace) -> int:
    if args.schema:
        from analysis.schema import json_schema

        print_json(json_schema())
        return 0
    if not args.sources:
        raise InputError("give at least one SOURCE (URL or path), or --schema")
    settings = settings_from(args)
    request = _request(args)
    if len(args.sources) > 1:
        if not args.out:
            raise InputError("analysing several sources needs --out DIR (one result folder per source)")
        from analysis.batch import analyze_batch

        summary = analyze_batch(args.sources, request, settings, Path(args.out))
        print_json(summary)
        return 0 if summary["failed"] == 0 else 1
    from analysis.report import render_markdown
    from analysis.runner import analyze

    result = analyze(args.sources[0], request, settings, progress=_ProgressBar(sys.stderr.isatty()))
    doc = result.public()
    if args.out:
        _write_outputs(Path(args.out), doc)
    if args.markdown:
        print(render_markdown(doc))
    elif args.json or not args.out:
        print_json(doc)
    return 0


def _search(args: argparse.Namespace) -> int:
    from analysis.index import library_search
    from analysis.report import clock

    hits = library_search(settings_from(args), args.query, k=args.k)
    doc: list[dict[str, Any]] = [{"video_id": h.video_id, "start": h.item.start, "end": h.item.end, "kind": h.item.kind,
            "text": h.item.text, "score": round(h.score, 4)} for h in hits]
    if args.json:
        print_json({"query": args.query, "hits": doc})
    elif not doc:
        print("no hits (analyse videos first: vidray analyze SOURCE)")
    else:
        for h in doc:
            print(f"{h['score']:.3f} {h['video_id']} {clock(h['start'])}-{clock(h['end'])} [{h['kind']}] "
                  f"{h['text'][:100]}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("analyze", help="transcript, summary, chapters, Q&A, code, actions for a video")
    a.add_argument("sources", nargs="*", metavar="SOURCE", help="URL or path (several: batch on Ray)")
    a.add_argument("--tasks", help="comma-separated: transcript,summary,chapters,qa,code,actions (default all)")
    a.add_argument("--question", action="append", help="a question for the qa task (repeatable)")
    a.add_argument("--mode", help="preset: developer, researcher, data-engineer, trading, legal")
    a.add_argument("--summary-length", default="short", choices=["one_line", "short", "detailed"])
    a.add_argument("--summary-style", default="paragraph", choices=["paragraph", "bullets", "technical", "executive"])
    fmt = a.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the result document (default without --out)")
    fmt.add_argument("--markdown", action="store_true", help="print the Markdown report")
    a.add_argument("--out", help="write result.json, report.md, subtitles and code files here")
    a.add_argument("--schema", action="store_true", help="print the result's JSON Schema and exit")
    a.set_defaults(func=_analyze)

    s = sub.add_parser("search", help="search every analysed video (speech, on-screen text, tags)")
    s.add_argument("query")
    s.add_argument("-k", type=int, default=10, help="number of hits")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_search)
