"""`spotter seti pseudo RUN DATA --out DATA2 [--mode soft|hard] [--top K --bottom K | --threshold T]`."""

from __future__ import annotations

import argparse


def add_pseudo_command(sub, common: argparse.ArgumentParser) -> None:
    """Adds `pseudo` to the `seti` sub-commands."""
    pseudo = sub.add_parser(
        "pseudo", parents=[common], help="a new data folder: train plus confident test predictions as labels"
    )
    pseudo.add_argument("run", help="run folder written by `spotter seti train`")
    pseudo.add_argument("data", help="data folder in the Kaggle layout (its test set is predicted)")
    pseudo.add_argument("--out", required=True, help="new data folder (files are symlinked, not copied)")
    pseudo.add_argument("--mode", default="soft", choices=["soft", "hard"], help="probability or 0/1 (default soft)")
    pseudo.add_argument("--top", type=int, help="highest test predictions taken as positives")
    pseudo.add_argument("--bottom", type=int, help="lowest test predictions taken as negatives")
    pseudo.add_argument("--threshold", type=float, help="instead of counts: pred >= T positive, pred <= 1-T negative")
    pseudo.add_argument("--no-tta", action="store_true", help="predict without the run's test-time flips")
    pseudo.set_defaults(func=_pseudo)


def _pseudo(args: argparse.Namespace) -> int:
    from spotter.progress import create_reporter
    from spotter.seti.pseudo import make_pseudo_dataset

    summary = make_pseudo_dataset(
        args.run, args.data, args.out, args.mode, args.top, args.bottom, args.threshold,
        tta=not args.no_tta, reporter=create_reporter(args.quiet),
    )
    print(
        f"wrote {args.out}: {summary['train_samples']} train + {summary['pseudo_samples']} pseudo-labelled test "
        f"samples ({summary['pseudo_positive']} positive, {summary['pseudo_negative']} negative, {summary['mode']})"
    )
    print(f"next round: spotter seti train {args.out} stratify_by=stratum")
    return 0
