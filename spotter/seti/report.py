"""The SETI run report: ROC, score histograms, AUC per fold and per needle kind, worst mistakes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from spotter.io import read_csv
from spotter.metrics import auc_by_group
from spotter.report import Report, histogram_figure, pyplot, roc_figure, save_figure
from spotter.seti import ON_PANELS
from spotter.binary.ensemble import read_oof
from spotter.engine.rundir import RunDir
from spotter.seti.data import TRAIN_META, load_cadence, sample_path


def make_report(run_dir: str | Path, data_dir: str | Path, mistakes: int = 4) -> Path:
    """Writes `report.html` and its PNGs into the run folder from its out-of-fold predictions.

    Args:
        run_dir: A finished `spotter seti train` run.
        data_dir: The data it was trained on (for the cadences of the mistakes and the needle metadata).
        mistakes: How many of the most confident false positives and false negatives to show.
    """
    run, data_dir = RunDir(run_dir), Path(data_dir)
    run_dir = run.path
    oof = read_oof(run)
    folds = run.read_folds("id")
    oof = oof.merge(folds, on="id", how="left")
    targets, scores = oof["target"].to_numpy(float), oof["pred"].to_numpy(float)

    report = Report(f"SETI run {run_dir.name}")
    part = report.section("Out-of-fold ROC")
    save_figure(roc_figure(targets, {"model": scores}), run_dir / "roc.png")
    part.append(report.image("roc.png", "ROC of the out-of-fold predictions"))
    labels = np.where(targets >= 0.5, "needle", "no needle")
    save_figure(histogram_figure(scores, labels, "predicted probability"), run_dir / "scores.png")
    part.append(report.image("scores.png", "score histograms per class"))

    per_fold = [
        {"fold": int(k), "samples": len(g), "auc": _auc(g["target"], g["pred"])} for k, g in oof.groupby("fold")
    ]
    report.section("AUC per fold").append(report.table(pd.DataFrame(per_fold)))

    meta_path = data_dir / TRAIN_META
    if meta_path.is_file():
        meta = read_csv(meta_path, required=["id", "kind"], dtype={"id": str})
        kinds = oof.merge(meta[["id", "kind"]], on="id", how="left")["kind"].fillna("unknown").to_numpy()
        part = report.section("AUC per needle kind (each kind's positives against all negatives)")
        part.append(report.table(auc_by_group(targets, scores, kinds)))
        negatives = pd.DataFrame({"kind": kinds, "pred": scores})[targets < 0.5]
        part.append(report.text("Mean predicted probability of the negatives, by kind (hard negatives included):"))
        part.append(report.table(negatives.groupby("kind", as_index=False)["pred"].mean()))

    part = report.section("Most confident mistakes (panels ON OFF ON OFF ON OFF)")
    false_pos = oof[oof["target"] < 0.5].nlargest(mistakes, "pred")
    false_neg = oof[oof["target"] >= 0.5].nsmallest(mistakes, "pred")
    for name, rows in (("false_positives", false_pos), ("false_negatives", false_neg)):
        if len(rows):
            save_figure(_cadence_grid(data_dir, rows), run_dir / f"{name}.png")
            part.append(report.image(f"{name}.png", name.replace("_", " ")))
    return report.write(run.report_path)


def _auc(targets: pd.Series, scores: pd.Series) -> float:
    from sklearn.metrics import roc_auc_score

    t = targets.to_numpy() >= 0.5
    return float(roc_auc_score(t, scores)) if 0 < t.sum() < len(t) else float("nan")


def _cadence_grid(data_dir: Path, rows: pd.DataFrame):
    plt = pyplot()
    fig, axes = plt.subplots(len(rows), 6, figsize=(12, 1.9 * len(rows)), squeeze=False)
    for r, (_, row) in enumerate(rows.iterrows()):
        cadence = load_cadence(sample_path(data_dir, "train", row["id"])).astype(np.float32)
        for p in range(6):
            ax = axes[r, p]
            ax.imshow(cadence[p], aspect="auto", interpolation="nearest", cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("ON" if p in ON_PANELS else "OFF", fontsize=9)
        axes[r, 0].set_ylabel(f"{row['id']}\np={row['pred']:.3f}", fontsize=7)
    fig.tight_layout()
    return fig
