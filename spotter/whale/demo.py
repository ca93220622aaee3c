"""The whale part of `spotter demo`: synth a few individuals → train one fold → predict → score MAP@5."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from spotter.progress import NullReporter, Reporter

DEMO_OVERRIDES = [
    "epochs=4",
    "image_size=96",
    "batch_size=16",
    "warmup_epochs=0.5",
    "retrieval.k=50",
    "train_folds=[0]",  # one fold, no full fit: the demo stays a few minutes
]


def whale_demo(out: str | Path, reporter: Reporter = NullReporter(), individuals: int = 80) -> Iterator[str]:
    """Runs the whale pipeline small enough for a laptop CPU (a few minutes), yielding printable lines.

    Args:
        out: Folder for the demo's data, run and submission.
        reporter: Progress reporting.
        individuals: Synthetic individuals with train photos.
    """
    from spotter.config import default_config_path, load_config
    from spotter.engine.cv import train
    from spotter.metrics import score_files
    from spotter.whale.baseline import new_first_baseline
    from spotter.whale.config import WhaleConfig
    from spotter.whale.layout import TEST_LABELS_CSV
    from spotter.engine.predict import predict_submission
    from spotter.whale.synth import SynthConfig, make_synthetic
    from spotter.whale.task import WhaleTask

    out = Path(out)
    data = out / "data"
    counts = make_synthetic(data, SynthConfig(individuals=individuals, seed=0, image_size=128), reporter=reporter)
    yield (
        f"whale: {counts['train_images']} train photos of {counts['individuals']} synthetic individuals, "
        f"{counts['test_images']} test photos ({counts['test_new']} of new ones)"
    )
    cfg = load_config(WhaleConfig, default_config_path("whale"), DEMO_OVERRIDES)
    result = train(WhaleTask(), data, cfg, out / "run", reporter=reporter, overwrite=True)
    task = WhaleTask()
    submission = out / "submission.csv"
    calibration = predict_submission(task, out / "run", data, submission, reporter=reporter).record
    _, score = score_files(submission, data / TEST_LABELS_CSV)
    _, reference = score_files(new_first_baseline(data, out / "new_first.csv"), data / TEST_LABELS_CSV)
    yield (
        f"whale: out-of-fold MAP@5 {result.oof_metric:.4f} (head), {calibration['oof_map_at_5']:.4f} (kNN + head); "
        f"test MAP@5 {score:.4f} vs {reference:.4f} answering new_individual first"
    )
    yield f"whale: data {data}, run {out / 'run'}, submission {submission}"
