"""`vidray probe | frames | scenes | audio`: the foundation's media commands.

Each command ingests its SOURCE (URL, path) through the content-addressed cache, so a repeat of the
same source is not downloaded, probed or decoded again. Output files are written atomically: on bad
input nothing is left half-written where the user asked for output. The JSON shapes are a public
contract documented in docs/formats.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cluster.config import Settings
from vidray.commands._common import atomic_dir, atomic_path, print_json, settings_from


def _ingest(source: str, settings: Settings) -> Any:
    from data_pipeline.ingest import ingest

    return ingest(source, settings)


def _probe(args: argparse.Namespace) -> int:
    video = _ingest(args.source, settings_from(args))
    doc = {"id": video.video_id, **video.metadata.model_dump()}
    if args.json:
        print_json(doc)
    else:
        for key, value in doc.items():
            print(f"{key:>13}: {value}")
    return 0


def _frames(args: argparse.Namespace) -> int:
    from data_pipeline.frames_cache import sampled_frames_dir
    from data_pipeline.sampling import SamplingSpec

    settings = settings_from(args)
    spec = SamplingSpec(strategy=args.strategy, num=args.num, fps=args.fps, max_side=args.max_side)
    video = _ingest(args.source, settings)
    cached_dir = sampled_frames_dir(video, spec, settings, image_format=args.format)
    index = json.loads((cached_dir / "index.json").read_text())
    with atomic_dir(args.out) as tmp:
        for item in index["frames"]:
            (tmp / item["file"]).write_bytes((cached_dir / item["file"]).read_bytes())
        (tmp / "index.json").write_text(json.dumps(index, indent=2))
    if args.json:
        print_json({**index, "out": str(Path(args.out).resolve())})
    else:
        print(f"wrote {len(index['frames'])} frames to {args.out} (strategy {spec.strategy})")
    return 0


def _scenes(args: argparse.Namespace) -> int:
    from data_pipeline.frames_cache import cached_scenes

    settings = settings_from(args)
    video = _ingest(args.source, settings)
    result = cached_scenes(video, settings)
    if args.json:
        print_json(result.model_dump(exclude_none=True))
    else:
        for i, s in enumerate(result.scenes):
            print(f"scene {i + 1:3d}: {s.start:9.3f}s - {s.end:9.3f}s")
    return 0


def _audio(args: argparse.Namespace) -> int:
    from data_pipeline.audio import load_audio, write_wav

    settings = settings_from(args)
    video = _ingest(args.source, settings)
    samples = load_audio(video.path, sample_rate=args.sample_rate)
    with atomic_path(args.out) as tmp:
        write_wav(tmp, samples, args.sample_rate)
    print(f"wrote {len(samples) / args.sample_rate:.2f}s of {args.sample_rate} Hz mono audio to {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="print a video's metadata")
    p.add_argument("source", help="URL, page URL yt-dlp understands, or local path")
    p.add_argument("--json", action="store_true", help="print the metadata as JSON (documented schema)")
    p.set_defaults(func=_probe)

    f = sub.add_parser("frames", help="sample frames to image files + index.json")
    f.add_argument("source")
    f.add_argument("--strategy", choices=["uniform", "fps", "keyframes", "scenes"], default="uniform")
    f.add_argument("--num", type=int, help="uniform: number of frames (default 16)")
    f.add_argument("--fps", type=float, help="fps: frames per second (default 1)")
    f.add_argument("--max-side", type=int, help="resize so the longest side is at most this many pixels")
    f.add_argument("--format", choices=["jpg", "png"], default="jpg")
    f.add_argument("--out", required=True, help="output directory (replaced atomically)")
    f.add_argument("--json", action="store_true", help="also print index.json to stdout")
    f.set_defaults(func=_frames)

    s = sub.add_parser("scenes", help="detect shot cuts")
    s.add_argument("source")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_scenes)

    a = sub.add_parser("audio", help="extract the audio track as 16 kHz mono WAV")
    a.add_argument("source")
    a.add_argument("--out", required=True, help="output .wav file")
    a.add_argument("--sample-rate", type=int, default=16000)
    a.set_defaults(func=_audio)
