"""`vidray models`: every model backend, whether it can run here (or why not), and each task's order.

vidray models            # a table
vidray models --json     # the same, machine-readable
VIDRAY_OFFLINE=1 vidray models   # what offline mode leaves
"""

from __future__ import annotations

import argparse

from vidray.commands._common import print_json, settings_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list model backends, their availability and the router order per task")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from models.router import Router

    settings = settings_from(args)
    router = Router(settings.models, offline=settings.offline)  # no data_dir: listing writes nothing
    doc = router.describe()
    router.close()
    if args.json:
        print_json(doc)
        return 0
    print(f"offline mode: {'on' if doc['offline'] else 'off'}\n")
    print(f"{'backend':<16} {'kinds':<36} {'here':<5} reason")
    for b in doc["backends"]:
        kinds = ",".join(b["kinds"]) or "-"
        print(f"{b['name']:<16} {kinds:<36} {'yes' if b['available'] else 'no':<5} {b['reason']}")
    print("\ntask order (usable here marked *):")
    for task, t in doc["tasks"].items():
        marked = " -> ".join(f"{n}*" if n in t["usable"] else n for n in t["order"])
        print(f"  {task:<12} {marked}")
    for name, split in doc["ab"].items():
        print(
            f"  A/B {name}: {split['variants'][0]} / {split['variants'][1]} ({split['fraction_b']:.0%} to b)"
        )
    return 0
