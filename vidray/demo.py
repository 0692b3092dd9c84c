"""vidray's main job on the embedded default: local Ray, local storage, offline models.

    python -m vidray.demo [--out vidray-out]

What it does, printing each command as a user would type it:
  1. generates a sample video with known scene cuts and serves it over HTTP on 127.0.0.1;
  2. `vidray probe URL --json`  - ingest through yt-dlp (the SSRF guard allows 127.0.0.1 only because
     this demo sets VIDRAY_ALLOW_HOSTS), print the metadata;
  3. `vidray frames URL --strategy uniform --num 8 --out DIR` - sampled frames + index.json;
  4. `vidray scenes URL --json` - shot cuts, compared with the true cut times;
  5. `python -m data_pipeline.run` - the Ray Data pipeline over the URL, a second format and one bad
     source, which lands in the errors table without failing the rest;
  6. `vidray analyze ... --markdown` offline on real footage that a Debian package ships (opencv-doc's
     vtest.avi), on a narrated lecture with questions, and on a generated coding tutorial
     (`--mode developer`), printing each Markdown report.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from vidray import samples


def _run(cmd: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> str:
    print(f"\n$ {shlex.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.stdout:
        print(proc.stdout.rstrip(), flush=True)
    if proc.returncode not in ok or not proc.stdout.strip():
        print(proc.stderr.rstrip(), file=sys.stderr)
        raise SystemExit(f"demo: command failed with exit {proc.returncode}")
    if proc.returncode:
        print(proc.stderr.rstrip())  # the expected failure of the bad source, as a user sees it
    return proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vidray.demo")
    parser.add_argument("--out", default="vidray-out", help="where results go (default ./vidray-out)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    media = out / "media"
    media.mkdir(parents=True, exist_ok=True)

    print("Generating sample media (ffmpeg lavfi, known cut times) ...", flush=True)
    scene = samples.make_scene_video(media / "sample.mp4", (3.0, 4.0, 3.0, 2.0), size=(640, 360))
    samples.make_video(media / "sample.webm", vcodec="libvpx-vp9", acodec="libopus", duration=3, size=(320, 240))
    (media / "not-a-video.mp4").write_bytes(b"this is not a video")

    env = {**os.environ, "VIDRAY_ALLOW_HOSTS": "127.0.0.1", "VIDRAY_DATA_DIR": str(out / "data")}
    vidray = [sys.executable, "-m", "vidray"]
    with samples.serve_directory(media) as base:
        url = f"{base}/sample.mp4"
        _run([*vidray, "probe", url, "--json"], env)
        _run([*vidray, "frames", url, "--strategy", "uniform", "--num", "8", "--max-side", "320",
              "--out", str(out / "frames"), "--json"], env)
        found = json.loads(_run([*vidray, "scenes", url, "--json"], env))["cuts"]
        print(f"true cuts: {scene.cuts}  found: {[round(c, 3) for c in found]}")
        sources = out / "sources.txt"
        sources.write_text(f"{url}\n{base}/sample.webm\n{base}/not-a-video.mp4\n")
        _run([sys.executable, "-m", "data_pipeline.run", "--sources", str(sources), "--out", str(out / "dataset"),
              "--strategy", "fps", "--fps", "1", "--overwrite"], env, ok=(1,))  # 1: the bad source failed
    _analysis_demo(out, media, env, vidray)
    print(f"\nResults are in {out}: frames/ (index.json), dataset/ (frames, audio, videos, errors Parquet), "
          "analysis/ (result.json, report.md per video).")
    return 0


_REAL_SAMPLE = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")  # Debian opencv-doc: real street footage


def _analysis_demo(out: Path, media: Path, env: dict[str, str], vidray: list[str]) -> None:
    """`vidray analyze` offline: real footage, a narrated lecture with questions, a coding tutorial."""
    runs: list[tuple[str, list[str]]] = []
    if _REAL_SAMPLE.exists():
        runs.append(("real", [str(_REAL_SAMPLE), "--tasks", "summary,chapters,actions"]))
    lecture = samples.make_topic_video(media / "lecture.mp4", [
        ("Mountain Railways", "The mountain railway was built in 1898. The train climbs two thousand meters."),
        ("Coffee Roasting", "Green coffee beans are roasted at two hundred degrees. A light roast keeps acidity."),
        ("Ocean Whales", "Blue whales are the largest animals on earth. They eat tiny krill."),
    ], size=(1280, 720), body=[["Opened: 1898"], ["Temperature: 200 C"], ["Food: krill"]])
    runs.append(("lecture", [str(lecture.path), "--question", "When was the railway built?",
                             "--question", "What do blue whales eat?", "--question", "How many slides are there?",
                             "--question", "What does the speaker say about volcanoes?"]))
    try:
        from vidray.samples_tutorial import make_tutorial_video

        code = "def greet(name):\n    message = 'Hello, ' + name\n    return message\n\nprint(greet('vidray'))\n"
        tut = make_tutorial_video(media / "tutorial.mp4", code, language="python", filename="greet.py",
                                  narration=["First we write a function that builds a greeting.",
                                             "Then we print the greeting for vidray."])
        runs.append(("tutorial", [str(tut.path), "--mode", "developer"]))
    except ImportError:
        print("(the coding-tutorial generator is not in this build; skipping the video-to-code demo)")
    for name, args in runs:
        _run([*vidray, "analyze", *args, "--out", str(out / "analysis" / name), "--markdown"], env)


if __name__ == "__main__":
    sys.exit(main())
