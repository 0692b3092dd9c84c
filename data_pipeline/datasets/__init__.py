"""Versioned video datasets on Lance: store, labels, import/export, auto-label, training reader.

Start here: `VideoDataset` (store.py) for curation, `read_clips` (reader.py) for training input.
docs/datasets.md has the layout, the CLI (`vidray dataset ...`) and the guarantees.
"""

from data_pipeline.datasets.reader import ClipDataset, read_clips, torch_collate
from data_pipeline.datasets.schema import QA, Clip, ClipSpec, Span
from data_pipeline.datasets.store import VideoDataset, VideoInput

__all__ = [
    "QA",
    "Clip",
    "ClipDataset",
    "ClipSpec",
    "Span",
    "VideoDataset",
    "VideoInput",
    "read_clips",
    "torch_collate",
]
