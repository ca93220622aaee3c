"""`spotter seti ...` sub-commands of its own: synth, check, baseline, ceiling, pseudo, report, search (train and predict
come from the task registry)."""

from __future__ import annotations

import argparse

from spotter.seti.needles import DEFAULT_PRESET, NEEDLE_PRESETS
from spotter.seti.pseudo_cli import add_pseudo_command
from spotter.seti.search_cli import add_search_commands


def register(sub, common: argparse.ArgumentParser) -> None:
    """Adds the seti task's own sub-commands."""

    synth = sub.add_parser("synth", parents=[common], help="generate a data set in the Kaggle layout")
    synth.add_argument("out", help="output folder")
    synth.add_argument("--train", type=int, required=True, help="number of training cadences")
    synth.add_argument("--test", type=int, required=True, help="number of test cadences")
    synth.add_argument("--positive-rate", type=float, default=0.1, help="fraction with a needle (default 0.1)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    synth.add_argument(
        "--preset", default=DEFAULT_PRESET, help=f"needle recipe: {' | '.join(NEEDLE_PRESETS)} (default {DEFAULT_PRESET})"
    )
    synth.set_defaults(func=_synth)

    check = sub.add_parser("check", parents=[common], help="report every problem in a data folder")
    check.add_argument("data", help="data folder in the Kaggle layout")
    check.set_defaults(func=_check)

    baseline = sub.add_parser("baseline", parents=[common], help="classical de-Doppler scores for DATA's test set")
    baseline.add_argument("data", help="data folder in the Kaggle layout")
    baseline.add_argument("--out", required=True, help="submission CSV (id,target)")
    baseline.add_argument("--details", help="optional CSV with the best drift, channel and SNRs per sample")
    baseline.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    baseline.set_defaults(func=_baseline)

    ceiling = sub.add_parser(
        "ceiling", parents=[common],
        help="clairvoyant scores of generated data (a matched filter along each needle's true path): the ceiling",
    )
    ceiling.add_argument("data", help="data folder made by `spotter seti synth`")
    ceiling.add_argument("--split", default="test", help="train | test (default test)")
    ceiling.add_argument("--out", required=True, help="submission CSV (id,target), e.g. for `spotter score --by`")
    ceiling.add_argument("--details", help="optional CSV with each sample's ON and OFF statistics")
    ceiling.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    ceiling.set_defaults(func=_ceiling)

    add_pseudo_command(sub, common)

    report = sub.add_parser("report", parents=[common], help="(re)write a run's report.html from its OOF predictions")
    report.add_argument("run", help="run folder")
    report.add_argument("data", help="the data folder the run was trained on")
    report.set_defaults(func=_report)

    add_search_commands(sub, common)


def _synth(args: argparse.Namespace) -> int:
    from spotter.progress import create_reporter
    from spotter.seti.synth import write_synthetic

    summary = write_synthetic(
        args.out, args.train, args.test, args.positive_rate, args.seed, args.workers, create_reporter(args.quiet),
        preset=args.preset,
    )
    print(
        f"wrote {summary['train']} train ({summary['train_positives']} positive) and {summary['test']} test "
        f"({summary['test_positives']} positive) cadences to {summary['out']}"
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from spotter.cli import report_problems
    from spotter.progress import create_reporter
    from spotter.seti.data import check_data

    return report_problems(check_data(args.data, create_reporter(args.quiet)), args.data)


def _baseline(args: argparse.Namespace) -> int:
    from spotter.io import check_output_file, write_csv
    from spotter.progress import create_reporter
    from spotter.seti.dedoppler import baseline_scores

    for out in (args.out, args.details):
        if out is not None:
            check_output_file(out)
    scores = baseline_scores(args.data, workers=args.workers, reporter=create_reporter(args.quiet))
    write_csv(args.out, scores[["id", "target"]])
    if args.details:
        write_csv(args.details, scores)
    print(f"wrote {len(scores)} scores to {args.out}")
    return 0


def _ceiling(args: argparse.Namespace) -> int:
    from spotter.io import check_output_file, write_csv
    from spotter.progress import create_reporter
    from spotter.seti.ceiling import ceiling_scores

    for out in (args.out, args.details):
        if out is not None:
            check_output_file(out)
    scores = ceiling_scores(args.data, args.split, workers=args.workers, reporter=create_reporter(args.quiet))
    write_csv(args.out, scores[["id", "target"]])
    if args.details:
        write_csv(args.details, scores)
    print(f"wrote {len(scores)} clairvoyant scores of the {args.split} split to {args.out}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from spotter.progress import create_reporter
    from spotter.seti.report import make_report

    print(f"report: {make_report(args.run, args.data, reporter=create_reporter(args.quiet))}")
    return 0
