"""The report of a whale run: out-of-fold MAP@5 against the new_individual threshold, MAP@5 by species and for
known vs new animals, and a gallery of validation photos with their top-5 candidates."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from spotter.engine.rundir import RunDir
from spotter.errors import SpotterError
from spotter.io import atomic_path, read_csv, write_text
from spotter.metrics import NEW_INDIVIDUAL, average_precision_at_5
from spotter.whale.threshold import candidate_thresholds, insert_new_individual, map_by_threshold


def load_oof_retrieval(run_dir: str | Path) -> tuple[pd.DataFrame, float, str]:
    """Out-of-fold candidates, their threshold and where they come from.

    Prefers `oof_retrieval.csv` (kNN + head, written by `whale predict`), else the head's ranking in `oof.npz`.

    Raises:
        SpotterError: If the run has neither (a full fit, or not trained).
    """
    from spotter.whale.predict import OOF_RETRIEVAL, read_calibration

    run = RunDir(run_dir)
    calibration = read_calibration(run)
    if run.file(OOF_RETRIEVAL).is_file() and calibration and "threshold" in calibration:
        frame = read_csv(run.file(OOF_RETRIEVAL), required=["image", "truth", "candidates", "scores"], dtype=str)
        return frame, float(calibration["threshold"]), "kNN + head (whale predict)"
    path = run.oof_arrays
    if not path.is_file():
        raise SpotterError(f"no out-of-fold results ({path.name}) in the run folder", run.path)
    oof = np.load(path, allow_pickle=False)
    vocab = list(oof["vocab"])
    names = [" ".join(vocab[c] for c in row[:5] if c >= 0) for row in oof["head_top_class"]]
    scores = [" ".join(f"{v:.6f}" for v, c in zip(r[:5], cls[:5]) if c >= 0)
              for r, cls in zip(oof["head_top_cosine"], oof["head_top_class"])]
    frame = pd.DataFrame({"image": oof["images"], "species": oof["species"], "truth": oof["truths"],
                          "candidates": names, "scores": scores})
    return frame, float(oof["head_threshold"]), "id head (training)"


def _parse(frame: pd.DataFrame) -> tuple[list[list[str]], np.ndarray]:
    names = [str(c).split() if isinstance(c, str) else [] for c in frame["candidates"]]
    scores = np.full((len(frame), 5), -np.inf)
    for i, text in enumerate(frame["scores"]):
        values = [float(v) for v in str(text).split()][:5] if isinstance(text, str) else []
        scores[i, : len(values)] = values
    return names, scores


def write_report(run_dir: str | Path, data_dir: str | Path | None = None, gallery_rows: int = 8) -> Path:
    """Writes `report.html` and its PNGs into the run folder.

    Args:
        run_dir: A trained whale run (ideally after `whale predict`, for the kNN results).
        data_dir: The training data folder, for the photo gallery (skipped when None).
        gallery_rows: Validation photos shown in the gallery.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    frame, threshold, source = load_oof_retrieval(run_dir)
    names, scores = _parse(frame)
    truths = list(frame["truth"])
    thresholds = candidate_thresholds(scores)
    maps = map_by_threshold(names, scores, truths, thresholds)
    lists = insert_new_individual(names, scores, threshold)
    ap = np.array([average_precision_at_5(t, p) for t, p in zip(truths, lists)])
    is_new = np.array([t == NEW_INDIVIDUAL for t in truths])

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(thresholds[1:-1], maps[1:-1])
    ax.axvline(threshold, color="red", linestyle="--", label=f"chosen {threshold:.3f}")
    ax.set_xlabel("new_individual threshold")
    ax.set_ylabel("out-of-fold MAP@5")
    ax.legend()
    fig.tight_layout()
    _save(fig, run_dir / "map_vs_threshold.png")
    plt.close(fig)

    groups = {"known": ap[~is_new], "new": ap[is_new]}
    by_species = frame.assign(ap=ap).groupby("species")["ap"].agg(["mean", "count"]).sort_values("count", ascending=False)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = list(by_species.index) + ["known", "new"]
    values = list(by_species["mean"]) + [float(np.mean(v)) if len(v) else 0.0 for v in groups.values()]
    ax.barh(labels, values, color=["tab:blue"] * len(by_species) + ["tab:green", "tab:orange"])
    ax.set_xlabel("out-of-fold MAP@5")
    ax.invert_yaxis()
    fig.tight_layout()
    _save(fig, run_dir / "map_by_group.png")
    plt.close(fig)

    gallery = ""
    if data_dir is not None:
        _gallery(run_dir / "gallery.png", Path(data_dir), frame, lists, gallery_rows)
        gallery = '<h2>Validation photos and their top 5</h2><img src="gallery.png">'
    run = RunDir(run_dir)
    metrics = run.read_metrics() if run.is_finished() else {}
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{v['mean']:.4f}</td><td>{int(v['count'])}</td></tr>"
        for k, v in by_species.iterrows()
    )
    rows += "".join(
        f"<tr><td>{k}</td><td>{(np.mean(v) if len(v) else float('nan')):.4f}</td><td>{len(v)}</td></tr>"
        for k, v in groups.items()
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>whale run {html.escape(run_dir.name)}</title></head>
<body><h1>whale run {html.escape(str(run_dir))}</h1>
<p>Out-of-fold MAP@5 {float(np.mean(ap)):.4f} at new_individual threshold {threshold:.4f} ({html.escape(source)});
{len(truths)} validation photos, {int(is_new.sum())} of individuals unseen on their fold's train side.
Training: {html.escape(json.dumps({k: metrics.get(k) for k in ("fold_metric", "best_epoch", "seconds")}))}</p>
<img src="map_vs_threshold.png"><img src="map_by_group.png">
<table border="1" cellpadding="3"><tr><th>group</th><th>MAP@5</th><th>photos</th></tr>{rows}</table>
{gallery}</body></html>
"""
    write_text(run.report_path, page)
    return run.report_path


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def _gallery(path: Path, data_dir: Path, frame: pd.DataFrame, lists: list[list[str]], count: int, thumb: int = 96) -> None:
    from spotter.whale.data import load_image
    from spotter.whale.layout import TRAIN_CSV, TRAIN_DIR

    train = read_csv(data_dir / TRAIN_CSV, required=["image", "individual_id"], dtype=str)
    example = train.drop_duplicates("individual_id").set_index("individual_id")["image"].to_dict()
    picks = np.linspace(0, len(frame) - 1, num=min(count, len(frame))).round().astype(int)
    label = 14
    sheet = Image.new("RGB", (6 * thumb, len(picks) * (thumb + label)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for row, i in enumerate(picks):
        y = row * (thumb + label)
        truth = frame["truth"].iloc[i]
        cells = [(data_dir / TRAIN_DIR / frame["image"].iloc[i], "query: " + truth[:10], None)]
        for name in lists[i]:
            photo = data_dir / TRAIN_DIR / example[name] if name in example else None
            cells.append((photo, name[:14], name == truth))
        for col, (photo, text, correct) in enumerate(cells):
            tile = Image.new("RGB", (thumb, thumb), (230, 230, 230))
            if photo is not None:
                try:
                    image = load_image(photo)
                    image.thumbnail((thumb, thumb))
                    tile.paste(image, ((thumb - image.width) // 2, (thumb - image.height) // 2))
                except SpotterError:
                    pass
            sheet.paste(tile, (col * thumb, y))
            if correct:
                draw.rectangle([col * thumb, y, col * thumb + thumb - 1, y + thumb - 1], outline=(0, 180, 0), width=3)
            draw.text((col * thumb + 2, y + thumb), text, fill=(0, 0, 0))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
