"""Reference points for a whale run: untrained ImageNet features with kNN, and always guessing new_individual."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from spotter.io import write_csv
from spotter.metrics import NEW_INDIVIDUAL
from spotter.progress import NullReporter, Reporter
from spotter.whale.config import WhaleConfig
from spotter.whale.data import read_whale_data
from spotter.whale.predict import submission_frame


def imagenet_baseline(
    data_dir: str | Path, cfg: WhaleConfig, out: str | Path, reporter: Reporter = NullReporter()
) -> tuple[Path, dict]:
    """Submission from the config's backbone as it comes (ImageNet weights, no whale training).

    The embedding is the GeM-pooled trunk output; ranking is kNN only (flips as configured); the
    new_individual threshold is tuned on fold 0 of the config's folds, as for a trained run.
    """
    from spotter.engine.cv import make_folds
    from spotter.engine.runtime import Runtime
    from spotter.models.heads import ArcFace
    from spotter.whale.predict import predict_with_models
    from spotter.whale.views import FoldModel
    from spotter.whale.task import build_model

    data = read_whale_data(data_dir)
    rows = data.train.copy()
    rows["fold"] = make_folds(rows, cfg.n_folds, cfg.seed, stratify="individual_id")
    vocab = sorted(set(rows["individual_id"]))
    mask = (rows["fold"] != 0).to_numpy()
    model = build_model(cfg, rows[mask], vocab)
    features = sum(model.backbone.feature_info.channels())
    model.neck, model.bn = nn.Identity(), nn.Identity()
    model.head = ArcFace(features, model.head.num_classes)  # unused with head_weight 0; keeps shapes right
    cfg.retrieval.head_weight = 0.0
    submission = predict_with_models(
        [FoldModel("imagenet", 0, model.eval(), mask)], cfg, data, rows, Runtime(cfg.mixed_precision), reporter
    )
    write_csv(out, submission.frame)
    return Path(out), submission.record


def new_first_baseline(data_dir: str | Path, out: str | Path) -> Path:
    """Submission answering new_individual first, then the four ids with the most train photos."""
    data = read_whale_data(data_dir)
    common = list(data.train["individual_id"].value_counts().index[:4])
    write_csv(out, submission_frame(list(data.test["image"]), [[NEW_INDIVIDUAL, *common]] * len(data.test)))
    return Path(out)

