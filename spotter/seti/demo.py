"""The SETI part of `spotter demo`: synth → baseline → train → predict → score, small enough for a CPU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from spotter.progress import NullReporter, Reporter


def seti_demo(out: str | Path, reporter: Reporter = NullReporter(), n_train: int = 1000, n_test: int = 300) -> Iterator[str]:
    """Runs the SETI pipeline on freshly generated cadences, yielding printable result lines."""
    from spotter.config import default_config_path, load_config
    from spotter.engine.cv import train
    from spotter.io import write_csv
    from spotter.metrics import score_files
    from spotter.seti.config import SetiConfig
    from spotter.seti.data import SPLITS, TEST_LABELS
    from spotter.seti.dedoppler import baseline_scores
    from spotter.seti.report import make_report
    from spotter.seti.synth import write_synthetic
    from spotter.engine.predict import predict_submission
    from spotter.seti.task import SetiTask

    out = Path(out)
    data = out / "data"
    if not (data / SPLITS["train"].labels).is_file():
        write_synthetic(data, n_train, n_test, positive_rate=0.1, seed=0, workers=2, reporter=reporter)
    truth = data / TEST_LABELS
    baseline = out / "baseline.csv"
    write_csv(baseline, baseline_scores(data, reporter=reporter)[["id", "target"]])
    yield f"seti: de-Doppler baseline test AUC {score_files(baseline, truth)[1]:.4f}"

    # the cpu config, shortened: the demo shows the pipeline, `spotter seti train` gives the real figures
    cfg = load_config(SetiConfig, default_config_path("seti"), ["epochs=6", "augment.inject=0.5"])
    result = train(SetiTask(), data, cfg, out / "run", reporter=reporter, overwrite=True)
    submission = out / "submission.csv"
    predict_submission(SetiTask(), out / "run", data, submission, reporter=reporter)
    report = make_report(out / "run", data)
    yield f"seti: CNN out-of-fold AUC {result.oof_metric:.4f}, test AUC {score_files(submission, truth)[1]:.4f}"
    yield f"seti: data {data}, run {out / 'run'}, report {report}, submission {submission}"
