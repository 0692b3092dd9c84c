"""`vidray` command line: one subcommand group per module in `vidray.commands`.

Why discovery: each package owns its commands (media, models, analyze, dataset, serve, …) in its own
module with a `register(subparsers)` function, so adding a command never edits this file.
Every `VidrayError` becomes one line on stderr and its exit code; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from cluster.errors import VidrayError


def build_parser() -> argparse.ArgumentParser:
    from vidray import __version__, commands

    parser = argparse.ArgumentParser(prog="vidray", description="Videos into answers, summaries, code and training data.")
    parser.add_argument("--version", action="version", version=f"vidray {__version__}")
    parser.add_argument("--config", help="YAML settings file (default: $VIDRAY_CONFIG)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set ingest.max_height=720 (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"vidray.commands.{mod.name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from cluster.log import setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    try:
        return int(args.func(args) or 0)
    except VidrayError as e:
        print(f"vidray {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"vidray {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
