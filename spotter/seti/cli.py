"""`spotter seti ...` sub-commands of its own: synth, check, baseline, pseudo, report, scan (train and predict
come from the task registry)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spotter.seti.pseudo_cli import add_pseudo_command


def register(sub, common: argparse.ArgumentParser) -> None:
    """Adds the seti task's own sub-commands."""

    synth = sub.add_parser("synth", parents=[common], help="generate a data set in the Kaggle layout")
    synth.add_argument("out", help="output folder")
    synth.add_argument("--train", type=int, required=True, help="number of training cadences")
    synth.add_argument("--test", type=int, required=True, help="number of test cadences")
    synth.add_argument("--positive-rate", type=float, default=0.1, help="fraction with a needle (default 0.1)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
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

    add_pseudo_command(sub, common)

    report = sub.add_parser("report", parents=[common], help="(re)write a run's report.html from its OOF predictions")
    report.add_argument("run", help="run folder")
    report.add_argument("data", help="the data folder the run was trained on")
    report.set_defaults(func=_report)

    scan = sub.add_parser("scan", parents=[common], help="search a real cadence (6 .fil/.h5 files) for needles")
    scan.add_argument("files", nargs="+", help="six files in cadence order ON OFF ON OFF ON OFF")
    scan.add_argument("--out", required=True, help="candidates CSV, best first (a PNG of the top ones goes beside it)")
    scan.add_argument("--step", type=int, default=128, help="channels between 256-channel windows (default 128)")
    scan.add_argument("--top", type=int, default=4, help="candidates shown in the PNG (default 4)")
    scan.add_argument("--run", help="a trained run (spotter seti train) to rank snippets with, beside the baseline")
    scan.set_defaults(func=_scan)


def _synth(args: argparse.Namespace) -> int:
    from spotter.progress import create_reporter
    from spotter.seti.synth import write_synthetic

    summary = write_synthetic(
        args.out, args.train, args.test, args.positive_rate, args.seed, args.workers, create_reporter(args.quiet)
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


def _report(args: argparse.Namespace) -> int:
    from spotter.progress import create_reporter
    from spotter.seti.report import make_report

    print(f"report: {make_report(args.run, args.data, reporter=create_reporter(args.quiet))}")
    return 0


def _scan(args: argparse.Namespace) -> int:
    from spotter.io import write_csv
    from spotter.progress import create_reporter
    from spotter.seti.filterbank import plot_candidates, scan

    scorer = None
    if args.run:
        from spotter.seti.task import run_scorer

        scorer = run_scorer(args.run)
    candidates, observations = scan(args.files, step=args.step, reporter=create_reporter(args.quiet), model_scorer=scorer)
    write_csv(args.out, candidates)
    png = Path(args.out).with_suffix(".png")
    plot_candidates(candidates, observations, png, top=args.top)
    print(f"wrote {len(candidates)} candidates to {args.out} and the top {min(args.top, len(candidates))} to {png}")
    if len(candidates):
        best = candidates.iloc[0]
        model = f", model score {best['model_score']:.4f}" if "model_score" in candidates else ""
        print(f"best: {best['freq_mhz']:.6f} MHz, drift {best['drift_hz_s']:.4f} Hz/s, score {best['score']:.1f}{model}")
    return 0
