"""`spotter demo`: each task end to end on generated data, small enough for a laptop CPU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from spotter.progress import NullReporter, Reporter


def run_demo(out: str | Path, reporter: Reporter = NullReporter()) -> Iterator[str]:
    """Runs the demo steps, yielding one line per result for the CLI to print."""
    yield from toy_demo(Path(out) / "toy", reporter)


def toy_demo(out: Path, reporter: Reporter) -> Iterator[str]:
    """Engine check on the toy problem: synth → 3-fold train → predict with TTA → score."""
    from spotter.config import default_config_path, load_config
    from spotter.engine.cv import train
    from spotter.metrics import score_files
    from spotter.toy.config import ToyConfig
    from spotter.toy.data import synth
    from spotter.toy.task import ToyTask, predict_submission

    data = synth(out / "data", n_train=600, n_test=200, seed=0)
    cfg = load_config(ToyConfig, default_config_path("toy"))
    result = train(ToyTask(), data, cfg, out / "run", reporter=reporter)
    submission = predict_submission(out / "run", data, out / "submission.csv", reporter=reporter)
    _, auc = score_files(submission, data / "test_labels.csv")
    yield f"toy: out-of-fold AUC {result.oof_metric:.4f}, test AUC {auc:.4f}"
    yield f"toy: data {data}, run {out / 'run'}, submission {submission}"
