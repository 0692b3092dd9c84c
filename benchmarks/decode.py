"""How fast and how lean is vidray's decode, next to `ffmpeg -f null` and PyAV?

Questions answered (one run, every measurement in its own subprocess so CPU time and peak RSS are
that measurement's alone, read with os.wait4):
1. Full decode to RGB: frames/s and frames per CPU-second of `VideoReader.iter_frames` vs
   `ffmpeg -f null` (decode only, no RGB), ffmpeg to raw RGB, and PyAV `to_ndarray("rgb24")`.
2. Uniform sampling of 32 frames: vidray `sample_frames` vs PyAV seek-per-frame (the naive loop).
3. Peak RSS of each.

Targets: vidray >= 0.8x ffmpeg's frames per CPU-second; uniform sampling faster than PyAV's seek
loop; peak RSS < 1 GiB.

Run (the test video is made once, into .cache/bench/: a 1-minute 720p30 H.264 encode with x264's
default GOP, looped by stream copy to `--minutes`):
    .venv/bin/python benchmarks/decode.py                 # 10 minutes of 720p, ~5 min on 2 cores
    .venv/bin/python benchmarks/decode.py --minutes 1     # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench"
NUM_SAMPLES = 32


def make_video(minutes: int) -> Path:
    """A `minutes`-long 720p30 H.264 file (x264 veryfast, default keyint 250), cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"720p_{minutes}min.mp4"
    if out.exists():
        return out
    one = CACHE / "720p_1min.mp4"
    if not one.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
                        "-t", "60", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                        str(one.with_suffix(".tmp.mp4"))], check=True)
        one.with_suffix(".tmp.mp4").rename(one)
    if minutes > 1:
        tmp = out.with_suffix(".tmp.mp4")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(minutes - 1), "-i", str(one),
                        "-c", "copy", str(tmp)], check=True)
        tmp.rename(out)
    return out


# -- workers (run in a child process; print one JSON line) -------------------------------------------

def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def worker(name: str, path: str) -> None:
    w0, c0 = _clock()
    frames = 0
    if name.startswith("vidray_full"):
        from data_pipeline.decode import VideoReader

        w0, c0 = _clock()  # decode-only clocks start after the imports
        threads = 2 if name.endswith("2t") else 0
        with VideoReader(path, threads=threads) as r:
            for chunk in r.iter_frames(chunk=64):
                frames += len(chunk)
                _ = chunk[-1].image[0, 0, 0]
    elif name == "pyav_full":
        import av

        w0, c0 = _clock()
        with av.open(path) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            for f in c.decode(s):
                _ = f.to_ndarray(format="rgb24")
                frames += 1
    elif name == "vidray_uniform":
        from data_pipeline.sampling import SamplingSpec, sample_frames

        w0, c0 = _clock()
        frames = sum(1 for _ in sample_frames(path, SamplingSpec(num=NUM_SAMPLES)))
    elif name == "pyav_seek":
        import av

        w0, c0 = _clock()
        with av.open(path) as c:
            s = c.streams.video[0]
            tb = float(s.time_base or 1 / 90000)
            duration = float(s.duration * tb) if s.duration else (c.duration or 0) / 1e6
            for k in range(NUM_SAMPLES):
                t = (k + 0.5) * duration / NUM_SAMPLES
                c.seek(int(t / tb), stream=s, backward=True)
                for f in c.decode(s):
                    if f.pts is not None and f.pts * tb >= t - 1e-6:
                        _ = f.to_ndarray(format="rgb24")
                        frames += 1
                        break
    else:
        raise SystemExit(f"unknown worker {name}")
    w1, c1 = _clock()
    print(json.dumps({"frames": frames, "wall": w1 - w0, "cpu": c1 - c0}))


# -- driver ------------------------------------------------------------------------------------------

def run_child(cmd: list[str]) -> dict[str, float]:
    """Run `cmd`; its wall time, whole-process CPU seconds (user+sys, all threads) and peak RSS."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    assert p.stdout is not None
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{cmd} failed with exit code {p.returncode}")
    res = {"proc_wall": wall, "proc_cpu": ru.ru_utime + ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024}
    line = out.decode().strip().splitlines()[-1] if out.strip() else ""
    if line.startswith("{"):
        res.update(json.loads(line))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--only", nargs="*", default=None, help="run only the runs whose label contains one of these")
    ap.add_argument("--fresh", action="store_true", help="forget results stored by earlier runs on this video")
    ap.add_argument("--worker", nargs=2, metavar=("NAME", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    video = make_video(args.minutes)
    py = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    frames = int(subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                                 "stream=nb_read_packets", "-of", "csv=p=0", str(video)],
                                capture_output=True, text=True, check=True).stdout.strip())
    runs = {
        "ffmpeg -f null (decode only)": ["ffmpeg", "-v", "error", "-i", str(video), "-f", "null", "-"],
        "ffmpeg -threads 1 -f null": ["ffmpeg", "-v", "error", "-threads", "1", "-i", str(video), "-f", "null", "-"],
        "ffmpeg -> raw rgb24": ["sh", "-c", f"ffmpeg -v error -i '{video}' -pix_fmt rgb24 -f rawvideo - > /dev/null"],
        "PyAV decode + rgb24": [*py, "pyav_full", str(video)],
        "vidray iter_frames (1 thread)": [*py, "vidray_full", str(video)],
        "vidray iter_frames (2 threads)": [*py, "vidray_full_2t", str(video)],
        f"PyAV seek per frame x{NUM_SAMPLES}": [*py, "pyav_seek", str(video)],
        f"vidray uniform num={NUM_SAMPLES}": [*py, "vidray_uniform", str(video)],
    }
    # Each finished run is stored at once, so an interrupted run (or one split with --only over a busy
    # machine's afternoon) resumes where it stopped; the table says when each number was taken.
    store = video.with_suffix(".results.json")
    results: dict[str, dict[str, float]] = {} if args.fresh or not store.exists() else json.loads(store.read_text())
    for label, cmd in runs.items():
        if args.only is not None and not any(o in label for o in args.only):
            continue
        if label in results and args.only is None:
            continue
        print(f"running {label} ...", file=sys.stderr, flush=True)
        r = run_child(cmd)
        r.setdefault("frames", frames)
        r["load"] = os.getloadavg()[0]
        r["at"] = time.time()
        results[label] = r
        store.write_text(json.dumps(results, indent=1))
    missing = [label for label in runs if label not in results]
    if missing:
        print(f"not measured yet: {missing}; run again to finish", file=sys.stderr)
        return
    load = os.getloadavg()
    print(f"\nvideo: {video.name} ({frames} frames, 1280x720 H.264) | {platform.machine()}, {os.cpu_count()} cores, "
          f"load avg {load[0]:.1f} | {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| run | frames | wall s | frames/s | process CPU s | frames / CPU-s | peak RSS MB | load avg at end |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label in runs:
        r = results[label]
        n = r["frames"]
        print(f"| {label} | {n:.0f} | {r['proc_wall']:.1f} | {n / r['proc_wall']:.0f} | {r['proc_cpu']:.1f} | "
              f"{n / r['proc_cpu']:.0f} | {r['rss_mb']:.0f} | {r.get('load', float('nan')):.0f} |")
    ff = results["ffmpeg -f null (decode only)"]
    me = results["vidray iter_frames (1 thread)"]
    ff_eff = ff["frames"] / ff["proc_cpu"]
    me_eff = me["frames"] / me["proc_cpu"]
    me_dec = me["frames"] / me["cpu"]
    seek, uni = results[f"PyAV seek per frame x{NUM_SAMPLES}"], results[f"vidray uniform num={NUM_SAMPLES}"]
    print(f"\nfull decode, frames per CPU-second: vidray/ffmpeg = {me_eff / ff_eff:.2f} (target >= 0.8; "
          f"{me_dec / ff_eff:.2f} without vidray's import time of {me['proc_cpu'] - me['cpu']:.1f} CPU-s)")
    print(f"uniform {NUM_SAMPLES} frames: vidray {uni['wall'] * 1e3:.0f} ms vs PyAV seek {seek['wall'] * 1e3:.0f} ms "
          f"(in-process, after imports) = {seek['wall'] / uni['wall']:.2f}x faster; CPU {uni['cpu']:.2f} vs "
          f"{seek['cpu']:.2f} s")
    print(f"peak RSS max: {max(results[k]['rss_mb'] for k in runs):.0f} MB (target < 1024)")


if __name__ == "__main__":
    main()
