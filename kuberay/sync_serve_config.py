"""Copy serve/configs/cluster.yaml into the RayService's `serveConfigV2`, verbatim.

Why a script: KubeRay takes the Serve config as a string inside the RayService, and kustomize has no
way to inline a file into a custom resource's field. Keeping the text in one place
(serve/configs/cluster.yaml, which `serve deploy` and the SERVE engineer's tests also read) and
generating the embedded copy means the cluster always runs the config that was tested locally.
tests/kuberay/test_serve_config_sync.py fails when the two differ.

    python kuberay/sync_serve_config.py           # rewrite kuberay/base/rayservice.yaml in place
    python kuberay/sync_serve_config.py --check   # exit 1 when out of date (CI, pre-commit)

Only the `serveConfigV2: |` block is rewritten, so the manifest's comments survive.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SERVE_CONFIG = ROOT / "serve" / "configs" / "cluster.yaml"
RAYSERVICE = ROOT / "kuberay" / "base" / "rayservice.yaml"

# `  serveConfigV2: |` then every following line that is blank or indented deeper than the key.
_BLOCK = re.compile(r"^(?P<indent>[ ]*)serveConfigV2: \|[-+]?\n(?P<body>(?:(?:(?P=indent)[ ]+.*)?\n)*)", re.M)


def render(manifest: str, serve_config: str) -> str:
    """Return `manifest` with its serveConfigV2 block replaced by `serve_config` (indented)."""
    if not serve_config.strip():
        raise ValueError("the serve config is empty; refusing to deploy a RayService with no applications")
    yaml.safe_load(serve_config)  # fail here, with the YAML error, rather than in the operator
    m = _BLOCK.search(manifest)
    if m is None:
        raise ValueError("no `serveConfigV2: |` block found in the RayService manifest")
    pad = m.group("indent") + "  "
    lines = serve_config.rstrip("\n").split("\n")
    body = "".join(f"{pad}{line}\n" if line.strip() else "\n" for line in lines)
    # Trailing blank lines in the old block belong to the manifest's layout, keep them out.
    return manifest[: m.start("body")] + body + manifest[m.end("body") :].lstrip("\n")


def embedded(manifest: str) -> str:
    """The serveConfigV2 string as Kubernetes will see it (parsed YAML, not regex)."""
    for doc in yaml.safe_load_all(manifest):
        if doc and doc.get("kind") == "RayService":
            return str(doc["spec"]["serveConfigV2"])
    raise ValueError("no RayService in the manifest")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 instead of writing when out of date")
    parser.add_argument("--serve-config", type=Path, default=SERVE_CONFIG)
    parser.add_argument("--manifest", type=Path, default=RAYSERVICE)
    args = parser.parse_args(argv)
    if not args.serve_config.is_file():
        print(f"sync_serve_config: {args.serve_config} does not exist yet; nothing to sync", file=sys.stderr)
        return 2
    current = args.manifest.read_text()
    wanted = render(current, args.serve_config.read_text())
    if current == wanted:
        return 0
    if args.check:
        print(
            f"sync_serve_config: {args.manifest} is out of date; run python kuberay/sync_serve_config.py",
            file=sys.stderr,
        )
        return 1
    args.manifest.write_text(wanted)
    print(f"sync_serve_config: updated {args.manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
