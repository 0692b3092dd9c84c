"""Batch entry point: sources -> Parquet tables of sampled frames, audio segments, videos and errors.

Local run (starts a loopback-only Ray on this machine):
    python -m data_pipeline.run --sources sources.txt --out out/ --strategy uniform --num 16
Cluster run (same code, the cluster's address; or `ray job submit`):
    RAY_ADDRESS=ray://head:10001 python -m data_pipeline.run --sources s3-or-shared/sources.txt --out /shared/out
    ray job submit --working-dir . -- python -m data_pipeline.run --sources sources.txt --out /shared/out
Tiny CPU run (two generated videos served on 127.0.0.1; what the README's main job does):
    python -m vidray.demo

A bad source never fails the run: it is listed in errors.parquet (and summary.json) with the stage
and a message. Exit code 0 when every source succeeded, 1 when some failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys

from cluster.config import load_settings
from cluster.errors import VidrayError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_pipeline.run", description=__doc__.split("\n")[0])
    parser.add_argument("--sources", required=True, help="text file, one URL or path per line")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--strategy", default="uniform", choices=["uniform", "fps", "keyframes", "scenes"])
    parser.add_argument("--num", type=int)
    parser.add_argument("--fps", type=float)
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--audio-segment-s", type=float, default=10.0, help="0 skips audio")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or a local loopback Ray)")
    parser.add_argument("--config", help="vidray settings YAML")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    from cluster.log import setup_logging
    from cluster.ray_runtime import init_ray
    from data_pipeline.pipeline import PipelineConfig, read_sources, run_pipeline

    setup_logging()
    try:
        settings = load_settings(args.config, args.overrides)
        config = PipelineConfig(out=args.out, strategy=args.strategy, num=args.num, fps=args.fps,
                                max_side=args.max_side, audio_segment_s=args.audio_segment_s or None,
                                overwrite=args.overwrite)
        sources = read_sources(args.sources)
        if not sources:
            raise VidrayError(f"{args.sources} lists no sources; write one URL or path per line")
        init_ray(args.address or settings.ray_address)
        summary = run_pipeline(sources, config, settings)
    except VidrayError as e:
        print(f"data_pipeline.run: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"data_pipeline.run: error: {e.filename} does not exist", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "errors"}))
    for err in summary["errors"]:
        print(f"failed: {err['source']} at {err['stage']}: {err['error']}", file=sys.stderr)
    return 0 if summary["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
