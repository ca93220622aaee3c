"""A pseudo-labelled whale data folder: the training photos plus test photos the runs identify confidently.

`DATA2` is a Kaggle layout in its own right, so `spotter whale train DATA2` runs the next round (the
Happywhale winners' largest single gain):

- `train_images/`: symlinks to DATA's training photos and to the chosen test photos;
- `train.csv`: DATA's rows plus one per chosen test photo under its top-1 id (with that id's species),
  and a `pseudo` column (1 for test photos);
- `test_images/`, `sample_submission.csv` (and `test_labels.csv`, `bboxes.csv` where present): symlinks;
- `pseudo.json`: the runs, the threshold, counts and, when DATA has `test_labels.csv`, how many chosen ids
  are right.

A test photo is chosen when its top-1 score (the runs' blended per-individual score, as `spotter ensemble`
ranks) clears the threshold and, optionally, leads the runner-up's by a margin. Rows that were pseudo-labels
in DATA itself are replaced, not kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from spotter.engine.rundir import distinct_runs
from spotter.errors import SpotterError
from spotter.io import read_csv
from spotter.progress import NullReporter, Reporter
from spotter.pseudo import check_pseudo_output, write_pseudo_folder
from spotter.whale.layout import BBOX_CSV, TEST_CSV, TEST_DIR, TEST_LABELS_CSV, TRAIN_COLUMNS, TRAIN_CSV, TRAIN_DIR

LINKED = (TEST_DIR, TEST_CSV, TEST_LABELS_CSV, BBOX_CSV)


def select_confident(
    images: Sequence[str], names: Sequence[str], scores: np.ndarray, threshold: float,
    margins: np.ndarray | None = None, min_margin: float = 0.0,
) -> pd.DataFrame:
    """Test photos whose top-1 score clears `threshold` (and whose lead over the runner-up is >= `min_margin`).

    Returns:
        image, individual_id (the top-1 id), score and margin, best score first.
    """
    scores = np.asarray(scores, dtype=np.float64)
    margins = np.full(len(scores), np.inf) if margins is None else np.asarray(margins, dtype=np.float64)
    chosen = (scores >= threshold) & (margins >= min_margin)
    frame = pd.DataFrame({"image": list(images), "individual_id": list(names), "score": scores, "margin": margins})
    return frame[chosen].sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def make_pseudo_dataset(
    runs: Sequence[str | Path],
    data_dir: str | Path,
    out: str | Path,
    threshold: float,
    min_margin: float = 0.0,
    tta: bool = True,
    reporter: Reporter = NullReporter(),
) -> dict:
    """Writes DATA2 = DATA's training photos plus the test photos whose top-1 match probability clears `threshold`.

    Args:
        runs: Whale runs trained on DATA with the same folds (one, or several to blend).
        data_dir: Their training data folder, with the test photos to label.
        out: The new data folder; must not exist or be empty. It is built beside and renamed into place.
        threshold: Top-1 match probability a test photo must reach (the runs' blend calibrated on their out-of-fold
            photos, as every whale probability is).
        min_margin: Lead of the top-1 probability over the runner-up's it must also have: individuals with many
            train photos collect high top-1 scores (a max over more photos), and the lead discounts that.
        tta: Rank with the runs' flip TTA.
        reporter: Progress of the embedding.

    Returns:
        The summary also written to `out/pseudo.json`.

    Raises:
        SpotterError: On bad data or runs, an `out` that is not empty, or test photo names already in train.
    """
    from spotter.whale.data import read_whale_data
    from spotter.whale.ensemble import blend_runs

    data_dir = Path(data_dir)
    for option, value in (("--threshold", threshold), ("--margin", min_margin)):
        if not np.isfinite(value):
            raise SpotterError(f"{option} must be a number, got {value}")
    distinct_runs(runs)
    out = check_pseudo_output(out, data_dir)  # before the (slow) embedding
    data = read_whale_data(data_dir)
    blend = blend_runs(runs, data_dir, tta, reporter=reporter)
    scores, caches, vocab = blend.runs, blend.caches, blend.vocab
    probabilities = blend.calibration.scores(blend.test.scores[:, :2])
    margins = probabilities[:, 0] - probabilities[:, 1] if probabilities.shape[1] > 1 else None
    chosen = select_confident(
        scores[0].test_images, [vocab[c] for c in blend.test.labels[:, 0]], probabilities[:, 0], threshold, margins,
        min_margin,
    )

    table = read_csv(data_dir / TRAIN_CSV, required=TRAIN_COLUMNS, dtype=str)
    earlier = pd.to_numeric(table.get("pseudo", pd.Series(0, index=table.index)), errors="coerce").fillna(0) > 0
    original = data.train[~earlier.to_numpy()]
    clash = chosen["image"][chosen["image"].isin(original["image"])]
    if len(clash):
        raise SpotterError(f"{len(clash)} test photo name(s) are also training photos, e.g. {clash.iloc[0]!r}", data_dir)
    species_of = dict(zip(original["individual_id"], original["species"]))
    rows = pd.concat(
        [
            original[TRAIN_COLUMNS].assign(pseudo=0),
            pd.DataFrame({"image": chosen["image"], "species": [species_of[i] for i in chosen["individual_id"]],
                          "individual_id": chosen["individual_id"], "pseudo": 1}),
        ],
        ignore_index=True,
    )
    sources = list(original["path"]) + [data_dir / TEST_DIR / name for name in chosen["image"]]
    summary = {
        "runs": [str(r) for r in runs],
        "data": str(data_dir),
        "scores": [str(c) for c in caches],
        "threshold": float(threshold),
        "min_margin": float(min_margin),
        "tta": tta,
        "train_photos": int(len(original)),
        "replaced_earlier_pseudo": int(earlier.sum()),
        "test_photos": int(len(scores[0].test_images)),
        "pseudo_photos": int(len(chosen)),
        "pseudo_individuals": int(chosen["individual_id"].nunique()),
        "top1_probability_quantiles": _quantiles(probabilities[:, 0]),
        "margin_quantiles": _quantiles(margins) if margins is not None else None,
        "train_with": "spotter whale train DATA2",
    }
    truth_path = data_dir / TEST_LABELS_CSV
    if truth_path.is_file() and len(chosen):
        truth = read_csv(truth_path, required=["image", "individual_id"], dtype=str).set_index("image")["individual_id"]
        summary["pseudo_correct"] = int((truth.reindex(chosen["image"]).to_numpy() == chosen["individual_id"]).sum())

    files = [(f"{TRAIN_DIR}/{name}", source) for name, source in zip(rows["image"], sources)]
    write_pseudo_folder(out, data_dir, files, LINKED, {TRAIN_CSV: rows}, summary)
    return summary


def _quantiles(values: np.ndarray) -> dict[str, float]:
    return {f"{q:.2f}": float(np.quantile(values, q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)}
