"""`spotter toy synth`: the toy task's own sub-command (train and predict come from the task registry)."""

from __future__ import annotations

import argparse


def register(sub, common: argparse.ArgumentParser) -> None:
    """Adds `synth` to the `toy` sub-commands."""
    synth = sub.add_parser("synth", parents=[common], help="write a toy data folder")
    synth.add_argument("out")
    synth.add_argument("--train", type=int, default=600)
    synth.add_argument("--test", type=int, default=200)
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=_synth)


def _synth(args: argparse.Namespace) -> int:
    from spotter.toy.data import synth

    print(f"toy data: {synth(args.out, args.train, args.test, args.seed)}")
    return 0
