"""The `spotter` command: parses arguments, calls the library, prints, maps SpotterError to exit code 2.

Every task in the registry (`spotter.tasks`) gets `spotter <task> train` and `predict`, plus its own sub-commands.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from spotter.errors import SpotterError

DESCRIPTION = """\
spotter: find narrowband needles in radio-telescope cadences (seti) and identify individual animals in photos
(whale), with the winning Kaggle recipes on one k-fold training engine. Run `spotter COMMAND --help` for a
command's options and `spotter config TASK` for the keys a training config takes."""

EXAMPLES = """\
examples:
  spotter demo                                          both tasks end to end on generated data (minutes)
  spotter seti synth data/seti --train 6000 --test 2000 --workers 2
  spotter seti train data/seti --out runs/seti          the shipped cpu config; add key=value to override
  spotter seti predict runs/seti data/seti --out submission.csv
  spotter score submission.csv data/seti/test_labels.csv --by kind
  spotter whale train data/whale --out runs/whale epochs=5
  spotter ensemble runs/a runs/b --data data/seti --out blend.csv --method rank"""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every task's sub-commands."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS keeps a sub-command's default from hiding `spotter --quiet COMMAND`
    common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars or messages")
    parser = argparse.ArgumentParser(
        prog="spotter", parents=[common], description=DESCRIPTION, epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    score = commands.add_parser(
        "score", parents=[common], help="score a submission: ROC AUC (id,target) or MAP@5 (image,predictions)"
    )
    score.add_argument("submission", help="submission CSV")
    score.add_argument("truth", help="truth CSV (id,target or image,individual_id)")
    score.add_argument("--by", metavar="COLUMN", help="also per value of a truth column, e.g. kind or species")
    score.set_defaults(func=_score)

    config = commands.add_parser("config", parents=[common], help="list a task's config keys, defaults and meanings")
    config.add_argument("task", help="a task name, e.g. seti or whale")
    config.set_defaults(func=_config)

    demo = commands.add_parser("demo", parents=[common], help="run the tasks end to end on generated data")
    demo.add_argument("--out", default="demo", help="folder for the demo's data and runs (default: demo)")
    demo.set_defaults(func=_demo)

    from spotter import ensemble_cli
    from spotter.commands import add_task_commands
    from spotter.tasks import iter_tasks

    for spec in iter_tasks():
        add_task_commands(commands, common, spec)
    ensemble_cli.register(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `spotter` console script; returns the exit code."""
    parser = build_parser()
    # `key=value` overrides may follow options (`train DATA --out RUN epochs=3`), which argparse alone rejects
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in item and not item.startswith("-") for item in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.quiet = getattr(args, "quiet", False)
    try:
        return int(args.func(args) or 0)
    except SpotterError as err:
        print(f"spotter: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spotter: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`spotter config seti | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def report_problems(problems: Sequence[object], where: str) -> int:
    """How every `check` command reports: each problem as one line on stderr, then their count; or one ok line.

    Returns:
        The exit code: 2 when there are problems, else 0.
    """
    for problem in problems:
        print(f"spotter: error: {problem}", file=sys.stderr)
    if problems:
        print(f"spotter: {len(problems)} problem(s) in {where}", file=sys.stderr)
        return 2
    print(f"{where}: ok")
    return 0


def _score(args: argparse.Namespace) -> int:
    from spotter.metrics import score_files

    name, value = score_files(args.submission, args.truth)
    print(f"{name}: {value:.6f}")
    if args.by:
        from spotter.metrics import score_by_group

        table = score_by_group(args.submission, args.truth, args.by)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.6f}"))
    return 0


def _config(args: argparse.Namespace) -> int:
    from spotter.config import DEFAULT_CONFIG, describe_config, shipped_configs
    from spotter.tasks import get_task

    keys = describe_config(get_task(args.task).config_class)
    shipped = shipped_configs(args.task)
    if shipped:
        print(f"shipped configs (--config NAME): {', '.join(shipped)}; default: {DEFAULT_CONFIG}")
    width = max(len(k.key) for k in keys)
    for info in keys:
        if "." not in info.key and info.default == "" and info.meaning:  # a section
            print(f"\n{info.key}:  {info.meaning}")
            continue
        default = "null" if info.default is None else str(info.default).lower() if isinstance(info.default, bool) else info.default
        print(f"  {info.key:<{width}}  {str(default):<12}  {info.meaning}")
    print("\nSet any key on the command line (`key=value`, e.g. epochs=3 model.backbone=resnet34) or in a YAML file.")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from spotter.demo import run_demo
    from spotter.progress import create_reporter

    reporter = create_reporter(args.quiet)
    for line in run_demo(args.out, reporter):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
