"""How long and how much memory does `vidray analyze` (every task, two questions) take per video minute?

Questions answered (one run; each analysis in its own subprocess so its wall time and peak RSS are
that analysis's alone, read with os.wait4):
1. Wall time of `vidray analyze VIDEO --tasks <all> --question ... --json` for 1-, 10- and 30-minute
   narrated slide videos, as seconds per video minute and as a multiple of the video's duration.
2. Peak RSS of that process.
3. Whether cost grows linearly: seconds-per-video-minute at 30 (or the longest) vs 1 minute.
4. Where the time goes: per-task and per-shared-piece seconds from the runner's INFO log lines
   (pieces such as the transcript and on-screen text are computed inside the first task that needs them).

Targets (issue "Video intelligence"): a 60 s video fully analysed in < 30 s once ingested (the video
is in the cache; every analysis artifact and model response cache is cleared before each run, so the
analysis itself is cold); peak RSS < 2 GiB; cost linear in duration.

Test videos (made once, into .cache/bench/analyze/): three different 1-minute narrated topic videos
(`vidray.samples.make_topic_video`, 1280x720, six slides each with a title and body lines, espeak-ng
narration), so speech recognition, scene cuts and OCR all have work; longer videos are the three
cycled and joined with the ffmpeg concat demuxer (-c copy). The analyses run against their own data
dir (.cache/bench/analyze/data), never the user's.

Run:
    .venv/bin/python benchmarks/analyze.py                       # 1, 10 and 30 minutes (slow: ~20+ min on 2 cores)
    .venv/bin/python benchmarks/analyze.py --lengths 1,10        # skip the 30-minute video
    .venv/bin/python benchmarks/analyze.py --quick               # 1 minute only
    .venv/bin/python benchmarks/analyze.py --no-readme           # print the table, leave benchmarks/README.md alone
Finished lengths are stored beside the videos (results.json), so an interrupted run resumes; --fresh forgets them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench" / "analyze"
README = ROOT / "benchmarks" / "README.md"
SIZE = (1280, 720)  # OCR reads 720p at native size (screen_text._MAX_SIDE): the common tutorial resolution
TASKS = "transcript,summary,chapters,qa,code,actions"
QUESTIONS = ["What is a hash table used for?", "How does gradient descent find a minimum?"]
SECTION_START = "<!-- analyze:start -->"
SECTION_END = "<!-- analyze:end -->"

# Three 1-minute units of six slides: (title, narration, body lines). About 150 words each at espeak's
# 150 wpm plus 0.6 s gaps makes each unit close to 60 s; the real duration is probed and reported.
UNITS: list[list[tuple[str, str, list[str]]]] = [
    [
        ("Hash Tables", "A hash table stores keys and values. It is used for fast lookup: the hash of a key "
         "picks a bucket, so finding a value takes constant time on average.",
         ["key -> hash(key) -> bucket", "average lookup O(1)", "collisions: chaining or probing"]),
        ("Binary Search", "Binary search finds an item in a sorted list by halving the range at every step, "
         "so a million items need only twenty comparisons.",
         ["lo, hi = 0, len(a) - 1", "mid = (lo + hi) // 2", "O(log n) comparisons"]),
        ("Linked Lists", "A linked list chains nodes with pointers. Inserting at the front is cheap, but "
         "reaching the tenth element means walking past the first nine.",
         ["node.value, node.next", "insert at head O(1)", "index lookup O(n)"]),
        ("Sorting", "Merge sort splits the list in half, sorts each half, and merges them back. It always "
         "takes n log n time and it is stable.",
         ["split, sort halves, merge", "O(n log n) always", "stable"]),
        ("Graphs", "A graph is a set of nodes joined by edges. Breadth first search visits neighbours level "
         "by level and finds shortest paths in unweighted graphs.",
         ["adjacency list", "BFS uses a queue", "DFS uses a stack"]),
        ("Dynamic Programming", "Dynamic programming solves a problem by reusing the answers to smaller "
         "overlapping problems, stored in a table so nothing is computed twice.",
         ["memoize sub-results", "fib(n) = fib(n-1) + fib(n-2)", "table[i] from table[i-1]"]),
    ],
    [
        ("Gradient Descent", "Gradient descent finds a minimum by taking small steps downhill, in the "
         "direction opposite to the gradient of the loss, scaled by the learning rate.",
         ["w = w - lr * grad(loss)", "learning rate 0.01", "stop when loss stops falling"]),
        ("Overfitting", "A model overfits when it memorises the training data and fails on new examples. "
         "Regularisation and more data both help it generalise.",
         ["train loss low, test loss high", "dropout, weight decay", "early stopping"]),
        ("Neural Networks", "A neural network stacks layers of weighted sums followed by non linear "
         "activations, and learns its weights with back propagation.",
         ["y = relu(W x + b)", "layers: input, hidden, output", "backpropagation"]),
        ("Convolutions", "Convolutional layers slide small filters over an image, so the same pattern is "
         "detected wherever it appears in the picture.",
         ["3 x 3 kernels", "stride and padding", "pooling halves the size"]),
        ("Transformers", "Transformers use attention: every token looks at every other token and weighs "
         "them, which lets the model relate words far apart in a sentence.",
         ["softmax(Q K^T / sqrt(d)) V", "multi-head attention", "positional encoding"]),
        ("Evaluation", "Always evaluate on a held out test set. Accuracy, precision and recall each tell a "
         "different part of the story about a classifier.",
         ["precision = tp / (tp + fp)", "recall = tp / (tp + fn)", "confusion matrix"]),
    ],
    [
        ("Version Control", "Git records snapshots of a project. Each commit points to its parent, and "
         "branches are just names that point at commits.",
         ["git add, git commit", "git branch feature", "git merge feature"]),
        ("Unit Tests", "Unit tests check one small piece of code at a time. Run them on every change so a "
         "regression is caught minutes after it is written.",
         ["def test_add(): assert add(2, 3) == 5", "pytest -q", "red, green, refactor"]),
        ("Containers", "A container packages an application with its libraries, so it runs the same way on "
         "a laptop, a test server and in production.",
         ["FROM python:3.11-slim", "docker build -t app .", "docker run -p 8000:8000 app"]),
        ("Databases", "A relational database stores rows in tables and answers questions written in SQL. "
         "Indexes make lookups by a column fast.",
         ["SELECT name FROM users", "WHERE age > 30", "CREATE INDEX ON users(age)"]),
        ("Caching", "A cache keeps recent answers close at hand. The hard part is deciding when a stored "
         "answer is stale and must be thrown away.",
         ["hit: return stored value", "miss: compute and store", "evict least recently used"]),
        ("Monitoring", "Monitoring collects metrics and logs from running services, and alerts a person "
         "when latency or the error rate crosses a threshold.",
         ["p99 latency < 200 ms", "error rate < 1 %", "alert on call"]),
    ],
]


# -- test media ---------------------------------------------------------------------------------------

def _unit(i: int) -> Path:
    """The i-th 1-minute narrated slide video, cached."""
    from vidray.samples import make_topic_video

    out = CACHE / f"unit{i}.mp4"
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = CACHE / f"unit{i}.tmp.mp4"
        topics = [(title, narration) for title, narration, _ in UNITS[i]]
        make_topic_video(tmp, topics, size=SIZE, body=[body for _, _, body in UNITS[i]])
        tmp.rename(out)
    return out


def make_video(minutes: int) -> Path:
    """`minutes` 1-minute units cycled and joined by stream copy (every unit has identical encode settings)."""
    if minutes == 1:
        return _unit(0)
    out = CACHE / f"talk_{minutes}min.mp4"
    if out.exists():
        return out
    units = [_unit(i % len(UNITS)) for i in range(minutes)]
    listing = CACHE / f"talk_{minutes}min.txt"
    listing.write_text("".join(f"file '{u.name}'\n" for u in units))
    tmp = out.with_suffix(".tmp.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                    str(tmp)], check=True)
    tmp.rename(out)
    return out


def duration_s(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip())


# -- measurement ----------------------------------------------------------------------------------------

def data_dir(minutes: int) -> Path:
    """VIDRAY_DATA_DIR of the runs on the `minutes` video: one per length, so lengths can run side by side."""
    return CACHE / f"data_{minutes}min"


def _env(data: Path) -> dict[str, str]:
    return {**os.environ, "VIDRAY_DATA_DIR": str(data), "VIDRAY_OFFLINE": "1", "VIDRAY_LOG_LEVEL": "INFO",
            "VIDRAY_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT)}


def ingest(video: Path, data: Path) -> str:
    """Ingest `video` into the bench data dir (the 'first download'); returns its sha256."""
    code = ("import sys; from cluster.config import load_settings; from data_pipeline.ingest import ingest; "
            "print(ingest(sys.argv[1], load_settings()).metadata.sha256)")
    out = subprocess.run([sys.executable, "-c", code, str(video)], capture_output=True, text=True, check=True,
                         env=_env(data), cwd=ROOT).stdout
    return out.strip().splitlines()[-1]


def clear_analysis(sha: str, data: Path) -> None:
    """Forget everything derived from the video (artifacts, model response cache, job state); keep the video."""
    shutil.rmtree(data / "cache" / "artifacts" / sha[:2] / sha, ignore_errors=True)
    for name in os.listdir(data) if data.exists() else []:
        if name != "cache":  # data_dir/models (response cache), job state
            p = data / name
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def analyze_once(video: Path, data: Path) -> dict[str, Any]:
    """One cold `vidray analyze` in a subprocess: wall, CPU, peak RSS, per-task/piece seconds, errors."""
    cmd = [sys.executable, "-m", "vidray", "analyze", str(video), "--tasks", TASKS, "--json"]
    for q in QUESTIONS:
        cmd += ["--question", q]
    # stdout/stderr go to files so the child can be reaped with os.wait4, which returns its own rusage
    # (peak RSS of the analysis process alone, not of earlier children).
    out_f, err_f = data / "last_stdout.json", data / "last_stderr.log"
    with out_f.open("wb") as so, err_f.open("wb") as se:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=so, stderr=se, cwd=ROOT, env=_env(data))
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out, err = out_f.read_bytes(), err_f.read_bytes()
    if p.returncode != 0:
        raise RuntimeError(f"vidray analyze failed ({p.returncode}): {err.decode()[-2000:]}")
    doc = json.loads(out)
    tasks: dict[str, float] = {}
    pieces: dict[str, float] = {}
    for line in err.decode().splitlines():
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        if "task" in rec and "seconds" in rec:
            tasks[rec["task"]] = rec["seconds"]
        elif "piece" in rec and "seconds" in rec:
            pieces[rec["piece"]] = rec["seconds"]
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024,
            "tasks": tasks, "pieces": pieces, "errors": doc.get("errors") or {},
            "n_transcript": len(doc.get("transcript") or []), "n_chapters": len(doc.get("chapters") or []),
            "answers": [str((a or {}).get("answer", ""))[:80] for a in (doc.get("qa") or doc.get("answers") or [])]}


# -- report ---------------------------------------------------------------------------------------------

def table(results: dict[str, dict[str, Any]], lengths: list[int]) -> str:
    rows = ["| video | duration s | wall s | x duration | s per video-min | process CPU s | CPU s per video-min | peak RSS MB | "
            "load avg (1 min) at start/end | failed tasks |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for m in lengths:
        r = results.get(str(m))
        if r is None:
            rows.append(f"| {m} min | | not measured | | | | | | | |")
            continue
        d = r["duration"]
        rows.append(f"| {m} min | {d:.0f} | {r['wall']:.1f} | {r['wall'] / d:.2f} | {60 * r['wall'] / d:.1f} | "
                    f"{r['cpu']:.1f} | {60 * r['cpu'] / d:.1f} | {r['rss_mb']:.0f} | {r['load_start']:.1f} / {r['load_end']:.1f} | "
                    f"{', '.join(sorted(r['errors'])) or '-'} |")
    return "\n".join(rows)


def breakdown(results: dict[str, dict[str, Any]], lengths: list[int]) -> str:
    """Rows: tasks, then shared pieces taking >= 1 s somewhere; columns: wall seconds per video length."""
    done = [m for m in lengths if str(m) in results]
    order = TASKS.split(",")
    names = sorted({k for m in done for k in results[str(m)]["tasks"]}, key=lambda t: order.index(t))
    pieces = sorted({k for m in done for k, v in results[str(m)]["pieces"].items() if v >= 1.0})
    rows = ["| step | " + " | ".join(f"{m} min: s (s/video-min)" for m in done) + " |",
            "|---|" + "---:|" * len(done)]
    for kind, keys in (("task", names), ("piece", pieces)):
        for k in keys:
            cells = []
            for m in done:
                r = results[str(m)]
                v = r[kind + "s"].get(k)
                cells.append("" if v is None else f"{v:.1f} ({60 * v / r['duration']:.1f})")
            rows.append(f"| {kind} {k} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def summary_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    one = results.get("1")
    if one:
        ok = "met" if one["wall"] < 30 else "MISSED"
        lines.append(f"- 60 s target (< 30 s, ingest cached, analysis cold): {one['wall']:.1f} s for "
                     f"{one['duration']:.0f} s of video: {ok} (load avg {one['load_start']:.0f} on 2 cores)")
    if results:
        peak = max(r["rss_mb"] for r in results.values())
        lines.append(f"- peak RSS max {peak:.0f} MB (target < 2048): {'met' if peak < 2048 else 'MISSED'}")
    longest = max((int(m) for m in results), default=0)
    if one and longest > 1:
        r = results[str(longest)]
        ratio = (r["wall"] / r["duration"]) / (one["wall"] / one["duration"])
        cpu_ratio = (r["cpu"] / r["duration"]) / (one["cpu"] / one["duration"])
        lines.append(f"- linearity, {longest}-min / 1-min per video-minute: wall {ratio:.2f}, CPU {cpu_ratio:.2f} "
                     f"(1.0 = linear; below 1: fixed start-up cost amortised)")
    return lines


def update_readme(text: str) -> None:
    """Replace the analyze section between the markers, or append it; other sections are left untouched."""
    section = f"{SECTION_START}\n{text.rstrip()}\n{SECTION_END}\n"
    old = README.read_text() if README.exists() else "# Benchmarks\n"
    if SECTION_START in old and SECTION_END in old:
        new = re.sub(re.escape(SECTION_START) + r".*?" + re.escape(SECTION_END) + r"\n?", lambda _m: section, old,
                     flags=re.S)
    else:
        new = old.rstrip() + "\n\n" + section
    README.write_text(new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="1,10,30", help="video lengths in minutes, comma-separated")
    ap.add_argument("--quick", action="store_true", help="1 minute only")
    ap.add_argument("--fresh", action="store_true", help="forget results stored by earlier runs")
    ap.add_argument("--no-readme", action="store_true", help="do not update benchmarks/README.md")
    args = ap.parse_args()
    lengths = [1] if args.quick else [int(x) for x in args.lengths.split(",") if x.strip()]
    # One results file per length, so `--lengths 30` can run in the background beside `--lengths 1,10`.
    results: dict[str, dict[str, Any]] = {}
    for f in sorted(CACHE.glob("results_*min.json")):
        if args.fresh and int(f.stem.split("_")[1][:-3]) in lengths:
            f.unlink()
        else:
            results[f.stem.split("_")[1][:-3]] = json.loads(f.read_text())
    for m in lengths:
        if str(m) in results:
            continue
        video = make_video(m)
        data = data_dir(m)
        sha = ingest(video, data)
        clear_analysis(sha, data)
        print(f"analysing {video.name} ({duration_s(video):.0f} s) ...", file=sys.stderr, flush=True)
        load_start = os.getloadavg()[0]
        r = analyze_once(video, data)
        r.update(duration=duration_s(video), load_start=load_start, load_end=os.getloadavg()[0], at=time.time())
        results[str(m)] = r
        (CACHE / f"results_{m}min.json").write_text(json.dumps(r, indent=1))
        print(f"  {m} min: {r['wall']:.1f} s wall, {r['rss_mb']:.0f} MB, errors {sorted(r['errors'])}",
              file=sys.stderr, flush=True)
    shown = sorted({*lengths, *(int(m) for m in results)})
    load = os.getloadavg()
    head = (f"`vidray analyze --tasks {TASKS}` + {len(QUESTIONS)} questions, ingest cached, analysis cold | "
            f"{platform.machine()}, {os.cpu_count()} cores, no GPU | load avg now {load[0]:.1f} | "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    errors = {m: r["errors"] for m, r in results.items() if r["errors"]}
    text = "\n\n".join([head, table(results, shown), "\n".join(summary_lines(results)),
                        "Wall seconds per task and per shared piece (a piece is computed inside the first task "
                        "that uses it and is part of that task's time):", breakdown(results, shown)])
    if errors:
        text += "\n\nTask errors: " + "; ".join(f"{m} min: {e}" for m, e in sorted(errors.items()))
    print("\n" + text)
    if not args.no_readme:
        title = "## Analyze: `vidray analyze` cost per video minute (`analyze.py`)"
        question = (__doc__ or "").split("\n\n")[0]
        update_readme(f"{title}\n\n{question}\n\nRun: `.venv/bin/python benchmarks/analyze.py --lengths 1,10,30`\n\n{text}")


if __name__ == "__main__":
    main()
