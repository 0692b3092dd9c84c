"""Synthetic action clips with known labels: the dataset the action recipe is accepted on.

Why synthetic: no labelled action video can be downloaded here, and a generator gives ground truth
for free. Each clip shows one shape (square, triangle, bar, L) in a random colour on a random
background (solid + gradient + noise) doing one motion: moving left, moving right, rotating,
growing or shrinking. Start position, size, speed and colours are random, so a model must read the
*motion* across frames - a single frame cannot tell "moves left" from "moves right".

Output: one small H.264 MP4 per clip and a JSONL manifest (the format train/data.py reads):
`{"clip_id", "video", "start", "end", "label", "label_name", "split", "caption", "question", "answer"}`.

    python -m train.synthetic /tmp/actions --train-per-class 100 --val-per-class 24
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASSES: tuple[str, ...] = ("move_left", "move_right", "rotate", "grow", "shrink")
ANSWERS = {
    "move_left": "moving left",
    "move_right": "moving right",
    "rotate": "rotating",
    "grow": "growing",
    "shrink": "shrinking",
}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 210, 40),
    "white": (240, 240, 240),
    "black": (20, 20, 20),
    "purple": (150, 50, 190),
    "orange": (240, 140, 30),
}
SHAPES = ("square", "triangle", "bar", "ell")
FPS = 8


@dataclass(frozen=True)
class SyntheticDataset:
    manifest: Path
    labels: tuple[str, ...]
    num_train: int
    num_val: int


def _shape_points(shape: str) -> np.ndarray:
    """Unit-size outline centred on 0 (radius ~1); asymmetric shapes so rotation is visible."""
    pts = {
        "square": [(-1, -1), (1, -1), (1, 1), (-1, 1)],
        "triangle": [(0, -1.1), (1, 0.9), (-1, 0.9)],
        "bar": [(-1.2, -0.45), (1.2, -0.45), (1.2, 0.45), (-1.2, 0.45)],
        "ell": [(-1, -1), (-0.2, -1), (-0.2, 0.3), (1, 0.3), (1, 1), (-1, 1)],
    }[shape]
    return np.asarray(pts, dtype=np.float64)


def render_clip(
    label: str, rng: np.random.Generator, *, size: int = 64, frames: int = 16
) -> tuple[np.ndarray, dict]:
    """Render one clip as uint8 [frames, size, size, 3] plus its text metadata."""
    from PIL import Image, ImageDraw

    colour_name = str(rng.choice(list(COLOURS)))
    shape = str(rng.choice(SHAPES))
    fg = np.clip(np.asarray(COLOURS[colour_name]) + rng.integers(-20, 21, 3), 0, 255)
    bg = rng.integers(0, 256, 3)
    while np.abs(bg - fg).sum() < 150:  # keep the shape visible against its background
        bg = rng.integers(0, 256, 3)
    grad_dir = rng.normal(size=2)
    yy, xx = np.mgrid[0:size, 0:size] / size
    grad = (xx * grad_dir[0] + yy * grad_dir[1])[..., None] * rng.uniform(0, 50)
    base = np.clip(bg[None, None, :] + grad, 0, 255)

    s = size
    radius0 = rng.uniform(0.12, 0.2) * s
    cx0, cy0 = rng.uniform(0.3, 0.7) * s, rng.uniform(0.3, 0.7) * s
    angle0 = rng.uniform(0, 2 * math.pi)
    speed = rng.uniform(0.025, 0.04) * s  # pixels per frame
    spin = rng.uniform(0.12, 0.25) * (1 if rng.random() < 0.5 else -1)  # radians per frame
    scale_rate = rng.uniform(0.05, 0.08)
    if label == "move_left":
        cx0 = rng.uniform(0.55, 0.8) * s
    elif label == "move_right":
        cx0 = rng.uniform(0.2, 0.45) * s
    elif label == "shrink":
        radius0 = rng.uniform(0.28, 0.36) * s
    elif label == "grow":
        radius0 = rng.uniform(0.08, 0.12) * s
    pts0 = _shape_points(shape)
    out = np.empty((frames, s, s, 3), dtype=np.uint8)
    for t in range(frames):
        cx, cy, ang, rad = cx0, cy0, angle0, radius0
        if label == "move_left":
            cx = cx0 - speed * t
        elif label == "move_right":
            cx = cx0 + speed * t
        elif label == "rotate":
            ang = angle0 + spin * t
        elif label == "grow":
            rad = radius0 * (1 + scale_rate) ** t
        elif label == "shrink":
            rad = radius0 * (1 - scale_rate * 0.6) ** t
        rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
        pts = pts0 @ rot.T * rad + np.array([cx, cy])
        noise = rng.normal(0, 6, base.shape)
        img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
        ImageDraw.Draw(img).polygon([tuple(p) for p in pts], fill=tuple(int(c) for c in fg))
        out[t] = np.asarray(img)
    answer = ANSWERS[label]
    meta = {
        "caption": f"a {colour_name} {shape} is {answer}",
        "question": f"what is the {shape} doing",
        "answer": answer,
        "colour": colour_name,
        "shape": shape,
        "rgb": [int(c) for c in fg],
    }
    return out, meta


def write_mp4(frames: np.ndarray, path: Path, fps: int = FPS) -> None:
    """Encode uint8 RGB frames as H.264 (yuv420p, near-lossless) with PyAV."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def generate(
    out_dir: str | Path,
    *,
    train_per_class: int = 100,
    val_per_class: int = 24,
    size: int = 64,
    frames: int = 16,
    seed: int = 0,
) -> SyntheticDataset:
    """Write clips and `manifest.jsonl` into `out_dir`; a complete existing dataset is reused as is.

    The manifest is written last (atomically), so a crashed generation is redone, never half-used.
    """
    out = Path(out_dir)
    manifest = out / "manifest.jsonl"
    if manifest.exists():
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        n_train = sum(r["split"] == "train" for r in rows)
        return SyntheticDataset(manifest, CLASSES, n_train, len(rows) - n_train)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        for i in range(per_class):
            for label_idx, label in enumerate(CLASSES):
                clip_id = f"{split}-{label}-{i:04d}"
                video = out / "clips" / f"{clip_id}.mp4"
                pixels, meta = render_clip(label, rng, size=size, frames=frames)
                write_mp4(pixels, video)
                rows.append(
                    {
                        "clip_id": clip_id,
                        "video": str(video.resolve()),
                        "start": 0.0,
                        "end": frames / FPS,
                        "label": label_idx,
                        "label_name": label,
                        "split": split,
                        **meta,
                    }
                )
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "labels.json").write_text(json.dumps(list(CLASSES)))
    tmp.replace(manifest)
    return SyntheticDataset(manifest, CLASSES, train_per_class * len(CLASSES), val_per_class * len(CLASSES))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--train-per-class", type=int, default=100)
    p.add_argument("--val-per-class", type=int, default=24)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    ds = generate(
        a.out_dir,
        train_per_class=a.train_per_class,
        val_per_class=a.val_per_class,
        size=a.size,
        frames=a.frames,
        seed=a.seed,
    )
    print(
        json.dumps(
            {"manifest": str(ds.manifest), "train": ds.num_train, "val": ds.num_val, "labels": ds.labels}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
