"""`vidray dataset ...`: versioned video datasets (create, add, label, versions, diff, checkout, tag,
export, import, rm, ls, info).

DATASET is a name (stored under `<data_dir>/datasets/`), a path, or an `s3://bucket/prefix` URL
(endpoint and keys from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
Every change is one new version; `--json` prints the result document of each command.

    vidray dataset create pets
    vidray dataset add pets cat.mp4 --clip 0:4 --clip 4:8 --split train --label cat
    vidray dataset label pets --auto                     # drafts from analysis (or scenes)
    vidray dataset label pets --accept --all-drafts
    vidray dataset label pets c1234 --fix --label dog --span 1.0:2.5:jump
    vidray dataset tag pets v1 && vidray dataset diff pets v1
    vidray dataset export pets out/pets.jsonl --with-videos
    vidray dataset rm pets --video <sha256> --purge
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cluster.errors import InputError
from vidray.commands._common import print_json, settings_from


def _open(args: argparse.Namespace, version: Any = None) -> Any:
    from data_pipeline.datasets.store import VideoDataset

    return VideoDataset.open(args.dataset, version=version, settings=settings_from(args))


def _out(args: argparse.Namespace, doc: Any, text: str) -> int:
    if args.json:
        print_json(doc.model_dump(mode="json") if hasattr(doc, "model_dump") else doc)
    else:
        print(text)
    return 0


def _create(args: argparse.Namespace) -> int:
    from data_pipeline.datasets.store import VideoDataset

    ds = VideoDataset.create(args.dataset, settings=settings_from(args), exist_ok=args.exist_ok)
    return _out(args, ds.stats(), f"created {ds.uri} (version {ds.version})")


def _parse_clip(text: str) -> tuple[float, float | None]:
    start, _, end = text.partition(":")
    try:
        return float(start or 0.0), (float(end) if end else None)
    except ValueError as e:
        raise InputError(f"--clip {text!r} is not START:END in seconds, e.g. --clip 0:4.5") from e


def _frames_arg(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    t, _, s = text.lower().partition("x")
    if not (t.isdigit() and s.isdigit()):
        raise InputError(f"--frames {text!r} is not TxSIZE, e.g. --frames 8x112")
    return int(t), int(s)


def _add(args: argparse.Namespace) -> int:
    from data_pipeline.datasets.labels import parse_qa, parse_span
    from data_pipeline.datasets.schema import ClipSpec
    from data_pipeline.datasets.store import VideoInput

    ds = _open(args)
    ranges: list[tuple[float, float | None] | None] = [_parse_clip(c) for c in args.clip] or [None]
    spans = [parse_span(s) for s in args.span]
    qa = [parse_qa(q) for q in args.qa]

    def specs() -> list[ClipSpec] | None:
        if ranges == [None] and not (args.label or args.text or spans or qa or args.split != "train"):
            return None
        return [
            ClipSpec(
                start=r[0] if r else 0.0,
                end=r[1] if r else None,
                split=args.split,
                label=args.label,
                text=args.text,
                spans=spans,
                qa=qa,
            )
            for r in ranges
        ]

    items = []
    for src in args.sources:
        if args.video:
            items.append(VideoInput(sha256=src, clips=specs() or [ClipSpec(split=args.split)]))
        elif Path(src).is_file():
            items.append(VideoInput(path=Path(src), clips=specs()))
        else:  # a URL: fetch through the content-addressed ingest cache (SSRF guard, caps)
            from data_pipeline.ingest import ingest

            video = ingest(src, settings_from(args))
            items.append(VideoInput(path=video.path, clips=specs(), source=src, metadata=video.metadata))
    results = ds.add_videos(items, frames=_frames_arg(args.frames), message=args.message)
    n = sum(len(r.clip_ids) for r in results)
    return _out(
        args,
        {"version": ds.version, "results": [r.model_dump() for r in results]},
        f"added {n} clip(s) from {len(results)} video(s); version {ds.version}",
    )


def _ls(args: argparse.Namespace) -> int:
    ds = _open(args, args.version)
    if args.videos:
        videos = ds.videos()
        return _out(
            args,
            [v.model_dump() for v in videos],
            "\n".join(
                f"{v.sha256[:16]}  {v.duration_s:7.2f}s  {v.width}x{v.height}  {v.source}" for v in videos
            ),
        )
    clips = ds.clips(
        split=args.split,
        label=args.label,
        status=args.status,
        source=args.source,
        text=args.text,
        min_duration=args.min_duration,
        max_duration=args.max_duration,
        limit=args.limit,
    )
    lines = [
        f"{c.id}  {c.start_s:7.2f}-{c.end_s:7.2f}s  {c.split:<10} {c.status:<9} {c.label or '-'}  {c.text or ''}"
        for c in clips
    ]
    return _out(args, [c.model_dump() for c in clips], "\n".join(lines) or "(no clips)")


def _info(args: argparse.Namespace) -> int:
    stats = _open(args, args.version).stats()
    return _out(args, stats, "\n".join(f"{k:>15}: {v}" for k, v in stats.items()))


def _label(args: argparse.Namespace) -> int:
    from data_pipeline.datasets import labels
    from data_pipeline.datasets.autolabel import autolabel

    ds = _open(args)
    if args.auto:
        report = autolabel(
            ds,
            clip_ids=args.clips or None,
            use_analysis=not args.no_analysis,
            overwrite=args.overwrite,
            settings=settings_from(args),
        )
        return _out(
            args,
            report,
            f"drafted {len(report.drafted)} clip(s) ({report.method}); version {report.version}; "
            "review with --accept / --fix",
        )
    if args.accept:
        ids = [c.id for c in labels.drafts(ds)] if args.all_drafts else args.clips
        version = labels.accept(ds, ids)
        return _out(
            args, {"accepted": ids, "version": version}, f"accepted {len(ids)} clip(s); version {version}"
        )
    if not args.clips:
        raise InputError("name the clips to label (ids from `vidray dataset ls`), or pass --auto")
    fields: dict[str, Any] = {
        "label": args.label,
        "text": args.text,
        "split": args.split,
        "spans": [labels.parse_span(s) for s in args.span],
        "qa": [labels.parse_qa(q) for q in args.qa],
    }
    if args.fix:
        if len(args.clips) != 1:
            raise InputError("--fix corrects one clip at a time; pass exactly one clip id")
        version = labels.fix(ds, args.clips[0], **fields)
    else:
        updates = [
            labels.LabelUpdate(
                clip_id=c, status="draft" if args.draft else None, replace=args.replace, **fields
            )
            for c in args.clips
        ]
        version = labels.apply_labels(ds, updates)
    return _out(
        args,
        {"clips": args.clips, "version": version},
        f"labelled {len(args.clips)} clip(s); version {version}",
    )


def _versions(args: argparse.Namespace) -> int:
    versions = _open(args).versions()
    lines = [
        f"{v.version:5d}  {v.timestamp:%Y-%m-%d %H:%M:%S}  {v.operation:<12} rows={v.num_rows:<6} "
        f"{','.join(v.tags):<12} {v.message or ''}"
        for v in versions
    ]
    return _out(args, [v.model_dump(mode="json") for v in versions], "\n".join(lines))


def _diff(args: argparse.Namespace) -> int:
    d = _open(args).diff(args.a, args.b)
    text = (
        f"{d.a} -> {d.b}: +{len(d.added_videos)} video(s) -{len(d.removed_videos)} video(s), "
        f"+{len(d.added_clips)} clip(s) -{len(d.removed_clips)} clip(s) ~{len(d.changed_clips)} relabelled"
    )
    return _out(args, d, text)


def _checkout(args: argparse.Namespace) -> int:
    ds = _open(args)
    if args.restore:
        version = ds.restore(args.ref)
        return _out(
            args,
            {"restored": args.ref, "version": version},
            f"restored {args.ref} as the new latest version {version}",
        )
    stats = ds.checkout(args.ref).stats()
    return _out(args, stats, "\n".join(f"{k:>15}: {v}" for k, v in stats.items()))


def _tag(args: argparse.Namespace) -> int:
    ds = _open(args)
    if args.name is None:
        tags = ds.tags()
        return _out(args, tags, "\n".join(f"{n}: {v}" for n, v in sorted(tags.items())) or "(no tags)")
    if args.delete:
        ds.untag(args.name)
        return _out(args, {"deleted": args.name}, f"deleted tag {args.name}")
    version = ds.tag(args.name, args.version, force=args.force)
    return _out(args, {"tag": args.name, "version": version}, f"tagged version {version} as {args.name}")


def _export(args: argparse.Namespace) -> int:
    from data_pipeline.datasets.io_formats import export

    ds = _open(args, args.version)
    doc = export(
        ds, args.out, format=args.format, split=args.split, status=args.status, with_videos=args.with_videos
    )
    return _out(
        args,
        doc,
        f"wrote {doc['records']} {doc['format']} record(s) of version {doc['version']} to {doc['path']}",
    )


def _import(args: argparse.Namespace) -> int:
    from data_pipeline.datasets.io_formats import import_file

    ds = _open(args)
    report = import_file(
        ds,
        args.file,
        format=args.format,
        videos_dir=args.videos_dir,
        split=args.split,
        skip_missing=not args.strict,
    )
    text = (
        f"imported {report.clips_added} clip(s) ({report.clips_skipped} already there, "
        f"{len(report.missing)} missing video(s)); version {report.version}"
    )
    return _out(args, report, text)


def _rm(args: argparse.Namespace) -> int:
    ds = _open(args)
    if args.video:
        result = ds.delete_video(args.video, purge=args.purge, untag=args.untag)
        note = f"; tags {result.pinned_by_tags} still hold it (use --untag)" if result.pinned_by_tags else ""
        return _out(
            args,
            result,
            f"deleted video {args.video[:16]} and {result.clips_deleted} clip(s); "
            f"version {result.version}{note}",
        )
    if args.clip:
        version = ds.delete_clips(args.clip)
        if args.purge:
            ds.compact()
            ds.purge()
        return _out(
            args,
            {"deleted_clips": args.clip, "version": ds.version},
            f"deleted {len(args.clip)} clip(s); version {version}",
        )
    raise InputError("pass --video SHA256 or --clip ID to delete")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="versioned video datasets: create, add, label, versions, export, ...")
    ds_sub = p.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")

    def cmd(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        c = ds_sub.add_parser(name, help=help)
        c.add_argument("dataset", help="name, path, or s3://bucket/prefix")
        c.add_argument("--json", action="store_true", help="print the result as JSON")
        c.set_defaults(func=func)
        return c

    c = cmd("create", _create, "create an empty dataset")
    c.add_argument("--exist-ok", action="store_true", help="open it if it already exists")

    a = cmd("add", _add, "add videos (stored once by sha256) and their clips")
    a.add_argument("sources", nargs="+", help="video files or URLs (with --video: sha256 of stored videos)")
    a.add_argument("--video", action="store_true", help="SOURCES are sha256 of videos already in the dataset")
    a.add_argument(
        "--clip", action="append", default=[], metavar="START:END", help="clip range in seconds (repeat)"
    )
    a.add_argument("--split", default="train", choices=["train", "val", "test", "unassigned"])
    a.add_argument("--label")
    a.add_argument("--text", help="caption / description")
    a.add_argument(
        "--span", action="append", default=[], metavar="S:E[:LABEL[:TEXT]]", help="time span (repeat)"
    )
    a.add_argument("--qa", action="append", default=[], metavar="QUESTION=ANSWER", help="QA pair (repeat)")
    a.add_argument("--frames", metavar="TxSIZE", help="also store pre-decoded frames, e.g. 8x112")
    a.add_argument("--message", help="version message")

    ls = cmd("ls", _ls, "list or find clips (or videos)")
    ls.add_argument("--version", help="version number or tag (default latest)")
    ls.add_argument("--videos", action="store_true", help="list videos instead of clips")
    ls.add_argument("--split")
    ls.add_argument("--label")
    ls.add_argument("--status", choices=["unlabeled", "draft", "accepted"])
    ls.add_argument("--source", help="substring of the source URL/path")
    ls.add_argument("--text", help="full-text search in captions")
    ls.add_argument("--min-duration", type=float)
    ls.add_argument("--max-duration", type=float)
    ls.add_argument("--limit", type=int)

    i = cmd("info", _info, "counts, splits, labels and tags of a version")
    i.add_argument("--version")

    lb = cmd("label", _label, "label clips by hand, auto-label drafts, accept or fix them")
    lb.add_argument("clips", nargs="*", help="clip ids")
    lb.add_argument("--label")
    lb.add_argument("--text")
    lb.add_argument("--split", choices=["train", "val", "test", "unassigned"])
    lb.add_argument("--span", action="append", default=[], metavar="S:E[:LABEL[:TEXT]]")
    lb.add_argument("--qa", action="append", default=[], metavar="QUESTION=ANSWER")
    lb.add_argument("--replace", action="store_true", help="replace spans/QA instead of appending")
    lb.add_argument("--draft", action="store_true", help="store as a draft (not yet reviewed)")
    lb.add_argument(
        "--auto", action="store_true", help="draft labels from analysis (scenes/metadata fallback)"
    )
    lb.add_argument("--no-analysis", action="store_true", help="with --auto: use scenes/metadata only")
    lb.add_argument("--overwrite", action="store_true", help="with --auto: redo existing drafts too")
    lb.add_argument("--accept", action="store_true", help="accept the drafts of CLIPS (or --all-drafts)")
    lb.add_argument("--all-drafts", action="store_true")
    lb.add_argument(
        "--fix", action="store_true", help="correct one clip: set the given fields, mark accepted"
    )

    cmd("versions", _versions, "list versions (with tags and messages)")

    d = cmd("diff", _diff, "what changed between two versions")
    d.add_argument("a", help="version number or tag")
    d.add_argument("b", nargs="?", help="version number or tag (default latest)")

    co = cmd("checkout", _checkout, "show an old version, or --restore it as the newest")
    co.add_argument("ref", help="version number or tag")
    co.add_argument("--restore", action="store_true", help="commit that version's contents as a new version")

    t = cmd("tag", _tag, "list tags, or name a version")
    t.add_argument("name", nargs="?")
    t.add_argument("version", nargs="?", type=int, help="default latest")
    t.add_argument("--force", action="store_true", help="move an existing tag")
    t.add_argument("--delete", action="store_true")

    e = cmd("export", _export, "write annotations as JSONL, Kinetics CSV or LLaVA JSON")
    e.add_argument("out", help="output file (.jsonl, .csv, .json)")
    e.add_argument("--format", choices=["jsonl", "kinetics", "llava"])
    e.add_argument("--version")
    e.add_argument("--split")
    e.add_argument("--status", choices=["unlabeled", "draft", "accepted"])
    e.add_argument("--with-videos", action="store_true", help="also write videos/<sha256>.<ext> beside OUT")

    im = cmd("import", _import, "add clips from JSONL, Kinetics CSV or LLaVA JSON")
    im.add_argument("file")
    im.add_argument("--format", choices=["jsonl", "kinetics", "llava"])
    im.add_argument("--videos-dir", help="where the referenced video files are (default: beside FILE)")
    im.add_argument("--split", default="train", help="split for records that name none")
    im.add_argument("--strict", action="store_true", help="fail if any record's video is missing")

    r = cmd("rm", _rm, "delete a video (and its clips/frames) or clips")
    r.add_argument("--video", help="sha256 of the video to delete")
    r.add_argument("--clip", action="append", default=[], help="clip id to delete (repeat)")
    r.add_argument("--purge", action="store_true", help="also remove old versions' files (cleanup)")
    r.add_argument("--untag", action="store_true", help="drop tags whose version still holds the video")
