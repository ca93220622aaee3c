"""A pseudo-labelled SETI data folder: the training set plus confident test predictions, files symlinked.

`DATA2` is a Kaggle layout in its own right, so `spotter seti train DATA2` runs the next round:

- `train/<id[0]>/<id>.npy`: symlinks to DATA's training files and to the chosen test files;
- `train_labels.csv`: id, target, `pseudo` (1 for test samples) and `stratum` (origin and class, e.g.
  `train_1`, `pseudo_0`) so that `stratify_by=stratum` keeps soft-labelled folds balanced;
- `test/`, `sample_submission.csv` (and `test_labels.csv`, `old_leaky_data/` where present): symlinks;
- `train_meta.csv`: DATA's, plus the pseudo rows as kind `pseudo` (for the run report);
- `pseudo.json`: the run, the selection, counts and the predictions' cache file.

Rows that were pseudo-labels in DATA itself (a second round) are replaced, not kept, so a test sample is
never in training twice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from spotter.binary.pseudo import check_selection, select_pseudo
from spotter.errors import SpotterError
from spotter.io import read_csv
from spotter.progress import NullReporter, Reporter
from spotter.pseudo import check_pseudo_output, write_pseudo_folder
from spotter.seti.data import OLD_DATA_DIR, SPLITS, TEST_LABELS, TRAIN_META, list_split, sample_path

LINKED = (SPLITS["test"].folder, SPLITS["test"].labels, TEST_LABELS, OLD_DATA_DIR)


def make_pseudo_dataset(
    run_dir: str | Path,
    data_dir: str | Path,
    out: str | Path,
    mode: str = "soft",
    top: int | None = None,
    bottom: int | None = None,
    threshold: float | None = None,
    tta: bool = True,
    reporter: Reporter = NullReporter(),
) -> dict:
    """Writes DATA2 = DATA's training set plus the run's confident test predictions as labels.

    Args:
        run_dir: A trained run; its (cached) test predictions choose the pseudo-labels.
        data_dir: The data folder the run predicts (train and test in the Kaggle layout).
        out: The new data folder; must not exist or be empty. It is built beside and renamed into place.
        mode: "soft" (predicted probability as target) or "hard" (0/1).
        top: Highest predictions to take as positives.
        bottom: Lowest predictions to take as negatives.
        threshold: Alternative to counts: pred >= T positive, pred <= 1 - T negative.
        tta: Predict with the run's TTA.
        reporter: Progress of the prediction.

    Returns:
        The summary also written to `out/pseudo.json`.

    Raises:
        SpotterError: On bad data, a bad selection, an `out` that is not empty, or test ids already in train.
    """
    from spotter.binary.ensemble import cached_test_predictions
    from spotter.engine.rundir import RunDir
    from spotter.seti.task import SetiTask

    data_dir = Path(data_dir)
    check_selection(mode, top, bottom, threshold)  # the options, the output and the data before the predictions
    out = check_pseudo_output(out, data_dir)
    train = list_split(data_dir, "train")
    test = list_split(data_dir, "test")
    if top is not None and bottom is not None and top + bottom > len(test):
        raise SpotterError(f"--top {top} + --bottom {bottom} exceeds the {len(test)} test samples")
    predictions, cache, _ = cached_test_predictions(SetiTask(), RunDir(run_dir), data_dir, tta=tta, reporter=reporter)
    if list(predictions["id"]) != list(test["id"]):
        raise SpotterError("cached predictions do not match sample_submission.csv's ids", cache)
    chosen = select_pseudo(predictions.rename(columns={"target": "pred"}), mode, top, bottom, threshold)

    earlier = train["pseudo"].fillna(0).astype(float) > 0 if "pseudo" in train else pd.Series(False, index=train.index)
    original = train[~earlier.to_numpy()]
    clash = chosen["id"][chosen["id"].isin(original["id"])]
    if len(clash):
        raise SpotterError(f"{len(clash)} test id(s) are also training ids, e.g. {clash.iloc[0]!r}", data_dir)

    labels = pd.concat(
        [
            pd.DataFrame({"id": original["id"], "target": original["target"].astype(float), "pseudo": 0}),
            pd.DataFrame({"id": chosen["id"], "target": chosen["target"], "pseudo": 1}),
        ],
        ignore_index=True,
    )
    origin = np.where(labels["pseudo"] == 1, "pseudo", "train")
    labels["stratum"] = [f"{o}_{int(t >= 0.5)}" for o, t in zip(origin, labels["target"])]
    sources = list(original["path"]) + [str(sample_path(data_dir, "test", i)) for i in chosen["id"]]
    files = [(str(sample_path(".", "train", sample_id)), source) for sample_id, source in zip(labels["id"], sources)]
    summary = {
        "run": str(run_dir),
        "data": str(data_dir),
        "predictions": str(cache),
        "mode": mode,
        "selection": {"top": top, "bottom": bottom} if threshold is None else {"threshold": threshold},
        "tta": tta,
        "train_samples": int(len(original)),
        "replaced_earlier_pseudo": int(earlier.sum()),
        "pseudo_samples": int(len(chosen)),
        "pseudo_positive": int((chosen["target"] >= 0.5).sum()),
        "pseudo_negative": int((chosen["target"] < 0.5).sum()),
        "pseudo_pred_range": [float(chosen["pred"].min()), float(chosen["pred"].max())] if len(chosen) else None,
        "train_with": "spotter seti train DATA2 stratify_by=stratum",
    }
    tables = {SPLITS["train"].labels: labels, TRAIN_META: _meta(data_dir, original["id"], chosen["id"])}
    write_pseudo_folder(out, data_dir, files, LINKED, tables, summary)
    return summary


def _meta(data_dir: Path, original_ids: pd.Series, pseudo_ids: pd.Series) -> pd.DataFrame:
    """How each training sample was made: DATA's own rows, then the pseudo rows as kind `pseudo`."""
    meta_path = data_dir / TRAIN_META
    rows = [pd.DataFrame({"id": pseudo_ids, "kind": "pseudo"})]
    if meta_path.is_file():
        meta = read_csv(meta_path, required=["id", "kind"], dtype={"id": str})
        rows.insert(0, meta[meta["id"].isin(original_ids)])
    return pd.concat(rows, ignore_index=True)
