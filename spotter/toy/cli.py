"""`spotter toy ...`: synth, train and predict for the built-in toy problem."""

from __future__ import annotations

import argparse

from spotter.commands import add_train_command, run_train


def register(commands, common: argparse.ArgumentParser) -> None:
    toy = commands.add_parser("toy", help="a tiny built-in problem that exercises the engine")
    sub = toy.add_subparsers(dest="toy_command", required=True, metavar="COMMAND")

    synth = sub.add_parser("synth", parents=[common], help="write a toy data folder")
    synth.add_argument("out")
    synth.add_argument("--train", type=int, default=600)
    synth.add_argument("--test", type=int, default=200)
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=_synth)

    add_train_command(sub, common, "toy", _train)

    predict = sub.add_parser("predict", parents=[common], help="predict DATA's test set with a run")
    predict.add_argument("run")
    predict.add_argument("data")
    predict.add_argument("--out", required=True, help="submission CSV (id,target)")
    predict.add_argument("--no-tta", action="store_true", help="no horizontal-flip TTA")
    predict.set_defaults(func=_predict)


def _train(args: argparse.Namespace) -> int:
    from spotter.toy.config import ToyConfig

    def make_task():
        from spotter.toy.task import ToyTask

        return ToyTask()

    run_train(args, "toy", ToyConfig, make_task)
    return 0


def _synth(args: argparse.Namespace) -> int:
    from spotter.toy.data import synth

    print(f"toy data: {synth(args.out, args.train, args.test, args.seed)}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from spotter.progress import create_reporter
    from spotter.toy.task import predict_submission

    path = predict_submission(args.run, args.data, args.out, tta=not args.no_tta, reporter=create_reporter(args.quiet))
    print(f"submission: {path}")
    return 0
