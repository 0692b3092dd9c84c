"""Version history views: the version list and the diff of two versions.

Why not Lance's `delta()` for diffs: it walks one forward range of versions and returns whole rows
(blobs included). Comparing the scalar annotation columns of two checked-out versions works for
any two versions, in either order, tags included, and never reads video bytes.
"""

from __future__ import annotations

from typing import Any

from data_pipeline.datasets.schema import KIND_CLIP, KIND_VIDEO, DiffResult, VersionInfo

COMMIT_MESSAGE_KEY = "__lance_commit_message"  # where `write_dataset(commit_message=...)` keeps it


def list_versions(lance_ds: Any, tags: dict[str, int]) -> list[VersionInfo]:
    """Versions of a Lance dataset with operation (from the commit's transaction), message and tags."""
    by_version: dict[int, list[str]] = {}
    for name, v in tags.items():
        by_version.setdefault(v, []).append(name)
    out = []
    for v in lance_ds.versions():
        tx = lance_ds.read_transaction(v["version"])
        props = (tx.transaction_properties or {}) if tx is not None else {}
        meta = v.get("metadata") or {}
        out.append(
            VersionInfo(
                version=v["version"],
                timestamp=v["timestamp"],
                operation=type(tx.operation).__name__ if tx is not None else "unknown",
                message=props.get(COMMIT_MESSAGE_KEY),
                tags=sorted(by_version.get(v["version"], [])),
                num_rows=int(meta.get("total_rows", 0)),  # live rows (deletions already excluded)
            )
        )
    return out


def diff_rows(a: int, rows_a: list[dict[str, Any]], b: int, rows_b: list[dict[str, Any]]) -> DiffResult:
    """Compare two versions' rows (id, kind and annotation columns) by id."""
    by_a = {r["id"]: r for r in rows_a}
    by_b = {r["id"]: r for r in rows_b}

    def only(src: dict[str, Any], other: dict[str, Any], kind: str) -> list[str]:
        return sorted(i for i, r in src.items() if r["kind"] == kind and i not in other)

    changed = sorted(i for i, r in by_b.items() if r["kind"] == KIND_CLIP and i in by_a and r != by_a[i])
    return DiffResult(
        a=a,
        b=b,
        added_videos=only(by_b, by_a, KIND_VIDEO),
        removed_videos=only(by_a, by_b, KIND_VIDEO),
        added_clips=only(by_b, by_a, KIND_CLIP),
        removed_clips=only(by_a, by_b, KIND_CLIP),
        changed_clips=changed,
    )
