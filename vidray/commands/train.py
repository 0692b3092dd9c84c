"""`vidray train`: the CLI face of `python -m train.run` (same config, same overrides, same JSON line).

vidray train run train/configs/action_tiny_cpu.yaml optim.max_steps=10
vidray train synthetic /tmp/actions --train-per-class 100
"""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from train.run import main

    return main(["--config", args.train_config, *args.train_overrides])


def _synthetic(args: argparse.Namespace) -> int:
    from train.synthetic import main

    return main(
        [
            args.out_dir,
            "--train-per-class",
            str(args.train_per_class),
            "--val-per-class",
            str(args.val_per_class),
            "--size",
            str(args.size),
        ]
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="fine-tune a video model with Ray Train + DeepSpeed (train/configs/*.yaml)"
    )
    tsub = p.add_subparsers(dest="train_command", metavar="{run,synthetic}")
    run = tsub.add_parser("run", help="train from a YAML config; last stdout line is the JSON summary")
    run.add_argument("train_config", metavar="CONFIG", help="e.g. train/configs/action_tiny_cpu.yaml")
    run.add_argument("train_overrides", nargs="*", metavar="KEY=VALUE")
    run.set_defaults(func=_run)
    syn = tsub.add_parser("synthetic", help="generate the synthetic action dataset (clips + manifest.jsonl)")
    syn.add_argument("out_dir")
    syn.add_argument("--train-per-class", type=int, default=100)
    syn.add_argument("--val-per-class", type=int, default=24)
    syn.add_argument("--size", type=int, default=64)
    syn.set_defaults(func=_synthetic)
    p.set_defaults(func=lambda a: p.print_help() or 2)
