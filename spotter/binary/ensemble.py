"""Ensembles of id,target runs: aligned out-of-fold predictions, cached test predictions, the blender.

Every run of an ensemble must have been trained on the same samples with the same folds, so that its out-of-fold
predictions can be compared and blended row by row. Test predictions are cached in each run folder, keyed by the
test ids, the TTA setting and the run's weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from spotter.binary.blend import BlendInputs, blend_folds, create_blend, fold_rank_normalize
from spotter.binary.task import ID, PRED, TARGET, BinaryTask
from spotter.engine.rundir import RunDir, cache_key, distinct_runs
from spotter.errors import SpotterError
from spotter.io import check_output_file, read_csv, write_csv, write_json
from spotter.metrics import roc_auc
from spotter.progress import NullReporter, Reporter

TEST_PREDICTIONS = "test_pred"  # cache kind of a run's test predictions

# name -> features(data_dir, split, workers, reporter): id plus feature columns for a split ("train" or "test")
FeatureSource = Callable[[Path, str, int, Reporter], pd.DataFrame]


@dataclass
class AlignedOOF:
    """The runs' out-of-fold predictions on their shared samples.

    Attributes:
        runs: The run folders, in the order of the prediction columns.
        rows: id, target and fold of each sample, in the first run's OOF order.
        predictions: (samples, runs) out-of-fold predictions.
    """

    runs: list[Path]
    rows: pd.DataFrame
    predictions: np.ndarray


def read_oof(run: RunDir) -> pd.DataFrame:
    """A run's out-of-fold table (id,target,pred), ids as strings.

    Raises:
        SpotterError: If the file is missing (e.g. a full fit) or malformed, or repeats an id.
    """
    path = run.oof_table
    if not path.is_file():
        raise SpotterError(f"no {path.name} (a run with validation folds is needed to blend)", run.path)
    frame = read_csv(path, required=[ID, TARGET, PRED], dtype={ID: str})
    dup = frame[ID][frame[ID].duplicated()]
    if len(dup):
        raise SpotterError(f"{len(dup)} duplicated id(s), e.g. {dup.iloc[0]!r}", path)
    return frame


def align_runs(runs: Sequence[str | Path]) -> AlignedOOF:
    """Checks the runs share samples and folds, and lines up their out-of-fold predictions.

    Raises:
        SpotterError: Naming the two runs and an example id when their folds or OOF ids differ, or when
            the same run is given twice.
    """
    dirs = distinct_runs(runs)
    runs = [d.path for d in dirs]
    first_folds = dirs[0].read_folds(ID).set_index(ID)["fold"]
    first = read_oof(dirs[0])
    columns = [first[PRED].to_numpy(np.float64)]
    for run in dirs[1:]:
        folds = run.read_folds(ID).set_index(ID)["fold"]
        _check_same(runs[0], run.path, first_folds, folds, run.folds_path.name)
        oof = read_oof(run).set_index(ID)
        missing = first[ID][~first[ID].isin(oof.index)]
        extra = oof.index[~oof.index.isin(first[ID])]
        if len(missing) or len(extra):
            example = missing.iloc[0] if len(missing) else extra[0]
            raise SpotterError(
                f"out-of-fold ids differ from {runs[0]}'s ({len(missing)} missing, {len(extra)} extra, "
                f"e.g. id {example!r}); blend runs trained on the same data and folds",
                run.path,
            )
        oof = oof.loc[first[ID]]
        differs = np.abs(oof[TARGET].to_numpy(float) - first[TARGET].to_numpy(float)) > 1e-9
        if differs.any():
            example = first[ID].iloc[int(differs.argmax())]
            raise SpotterError(f"targets differ from {runs[0]}'s, e.g. id {example!r}", run.path)
        columns.append(oof[PRED].to_numpy(np.float64))
    rows = first[[ID, TARGET]].copy()
    missing = rows[ID][~rows[ID].isin(first_folds.index)]
    if len(missing):
        raise SpotterError(f"out-of-fold id {missing.iloc[0]!r} has no fold in {dirs[0].folds_path.name}", runs[0])
    rows["fold"] = first_folds.loc[rows[ID]].to_numpy()
    return AlignedOOF(runs, rows.reset_index(drop=True), np.stack(columns, axis=1))


def _check_same(run_a: Path, run_b: Path, folds_a: pd.Series, folds_b: pd.Series, name: str) -> None:
    only_a = folds_a.index[~folds_a.index.isin(folds_b.index)]
    only_b = folds_b.index[~folds_b.index.isin(folds_a.index)]
    if len(only_a) or len(only_b):
        example = only_a[0] if len(only_a) else only_b[0]
        raise SpotterError(
            f"{name} differs from {run_a}'s: {len(only_a)} id(s) only in {run_a}, {len(only_b)} only in "
            f"{run_b}, e.g. id {example!r}; blend runs trained on the same data",
            run_b,
        )
    differs = folds_a.loc[folds_b.index].to_numpy() != folds_b.to_numpy()
    if differs.any():
        example = folds_b.index[int(differs.argmax())]
        raise SpotterError(
            f"{name} differs from {run_a}'s: {int(differs.sum())} id(s) in another fold, e.g. id {example!r}; "
            "train the runs with the same seed and n_folds",
            run_b,
        )


def cached_test_predictions(
    task: BinaryTask, run: RunDir, data_dir: Path, tta: bool = True, reporter: Reporter = NullReporter()
) -> tuple[pd.DataFrame, Path, bool]:
    """A run's predictions (id,target) for DATA's test set, computed once and cached in the run folder.

    The cache key covers the test ids, the TTA setting and the run's weight files, so a different test set,
    `--no-tta` or a retrained run predicts afresh. A cache that fails `cache_problem` is dropped and predicted
    afresh: it is never blended as it is.

    Returns:
        The predictions, the cache file and whether it was already there (and valid).
    """
    from spotter.engine.predict import predict_submission

    run.trained_weights(run.read_config(task.config_class))  # readable weights, even where the cache is used
    ids = task.test_rows(data_dir)[ID].astype(str)
    key = cache_key("\n".join(ids), f"tta={bool(tta)}", run.weights_fingerprint())
    path = run.cache_path(TEST_PREDICTIONS, key, ".csv")
    if path.exists():
        try:
            return read_cached_predictions(path, ids), path, True
        except SpotterError:
            if path.is_dir():
                raise SpotterError("is a folder where the run's cached test predictions belong", path) from None
            path.unlink()
    predict_submission(task, run.path, data_dir, path, tta=tta, reporter=reporter)
    return read_cached_predictions(path, ids), path, False


def read_cached_predictions(path: Path, ids: Sequence[str]) -> pd.DataFrame:
    """Cached test predictions (id,target), checked: readable, the test set's ids in order, probabilities.

    Raises:
        SpotterError: If the file is unreadable, covers other ids, or a prediction is NaN or outside [0, 1].
    """
    frame = read_csv(path, required=[ID, TARGET], dtype={ID: str})
    if list(frame[ID]) != list(ids):
        raise SpotterError("cached test predictions cover other ids than the test set", path)
    values = pd.to_numeric(frame[TARGET], errors="coerce").to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(np.isnan(values) | (values < 0) | (values > 1))
    if len(bad):
        raise SpotterError(
            f"line {bad[0] + 2}: prediction {frame[TARGET].iloc[bad[0]]!r} is not a probability in [0, 1]", path
        )
    frame[TARGET] = values
    return frame


def extra_columns(frame: pd.DataFrame | None, ids: pd.Series, what: str) -> tuple[np.ndarray, list[str]]:
    """The feature columns of `frame` (id plus features) for `ids`, in their order; none when `frame` is None.

    Raises:
        SpotterError: If some id has no row.
    """
    if frame is None:
        return np.zeros((len(ids), 0)), []
    columns = [c for c in frame.columns if c != ID]
    frame = frame.set_index(ID)
    missing = ids[~ids.isin(frame.index)]
    if len(missing):
        raise SpotterError(f"extra features lack {len(missing)} {what} id(s), e.g. {missing.iloc[0]!r}")
    return frame.loc[ids, columns].to_numpy(np.float64), columns


@dataclass
class EnsembleResult:
    """A blended submission and the record of how it was made.

    Attributes:
        ids: Test ids, in the submission's order.
        predictions: The blended test predictions.
        record: Inputs, method, weights and metrics (JSON-ready), written beside the submission.
    """

    ids: list[str]
    predictions: np.ndarray
    record: dict


def ensemble_runs(
    aligned: AlignedOOF,
    tests: Sequence[pd.DataFrame],
    method,
    metric: Callable[[np.ndarray, np.ndarray], float],
    extra_oof: pd.DataFrame | None = None,
    extra_test: pd.DataFrame | None = None,
) -> EnsembleResult:
    """Blends the runs' test predictions and measures the blend on their out-of-fold predictions.

    Args:
        aligned: The runs' OOF predictions (see `align_runs`).
        tests: Each run's test predictions (id,target), in the same id order.
        method: A blend method (`spotter.binary.blend.create_blend`).
        metric: metric(targets, predictions), higher is better (ROC AUC for SETI).
        extra_oof: id plus extra feature columns for the OOF samples (for methods that use features).
        extra_test: The same columns for the test samples.

    Raises:
        SpotterError: On test ids that differ between runs, or missing extra features.
    """
    if (extra_oof is None) != (extra_test is None):
        raise ValueError("extra features are needed for both the OOF and the test samples")
    ids = list(tests[0][ID])
    for run, test in zip(aligned.runs[1:], tests[1:]):
        if list(test[ID]) != ids:
            raise SpotterError(f"test predictions cover other ids than {aligned.runs[0]}'s", run)
    targets = aligned.rows[TARGET].to_numpy(np.float64)
    folds = aligned.rows["fold"].to_numpy()
    oof_extra, names = extra_columns(extra_oof, aligned.rows[ID], "training")
    test_extra, _ = extra_columns(extra_test, pd.Series(ids), "test")
    inputs = BlendInputs(
        oof=aligned.predictions,
        test=np.stack([t[TARGET].to_numpy(np.float64) for t in tests], axis=1),
        targets=targets,
        folds=folds,
        cv_folds=blend_folds(folds, targets),
        metric=metric,
        run_names=[str(r) for r in aligned.runs],
        extra_oof=oof_extra,
        extra_test=test_extra,
        extra_names=names,
    )
    ranked = fold_rank_normalize(inputs.oof, folds)
    outcome = method(inputs)
    record: dict = {
        "method": method.name,
        "runs": inputs.run_names,
        "samples": {"oof": len(targets), "test": len(ids)},
        "metrics": {
            "inputs_oof": {name: metric(targets, inputs.oof[:, i]) for i, name in enumerate(inputs.run_names)},
            "inputs_oof_fold_ranked": {name: metric(targets, ranked[:, i]) for i, name in enumerate(inputs.run_names)},
            **outcome.metrics,
        },
        **outcome.record,
    }
    return EnsembleResult(ids, outcome.predictions, record)


class BinaryBlender:
    """`spotter ensemble` for id,target tasks: methods mean, rank, weights and stack, with the task's features.

    Args:
        features: Extra stacking features by name (`--features NAME`), e.g. SETI's de-Doppler search.
        default_features: The features a method that uses features gets when `--features` is not given.
    """

    methods = ("mean", "rank", "weights", "stack")

    def __init__(
        self, features: dict[str, FeatureSource] | None = None, default_features: Sequence[str] = ()
    ) -> None:
        self.features = dict(features or {})
        self.default_features = tuple(default_features)
        unknown = sorted(set(self.default_features) - set(self.features))
        if unknown:
            raise ValueError(f"default features {unknown} are not among the features {sorted(self.features)}")

    def ensemble(
        self,
        task: BinaryTask,
        runs: Sequence[str | Path],
        data_dir: str | Path,
        out: str | Path,
        method: str = "mean",
        features: Sequence[str] | None = None,
        tta: bool = True,
        workers: int = 1,
        reporter: Reporter = NullReporter(),
        fallback: bool = True,
        stacker: str | None = None,
    ) -> tuple[Path, dict]:
        """Writes the blended submission `out` and its record (`out` with `.json`); returns both.

        Args:
            features: Extra feature names for a method that uses them; None for the blender's defaults
                (for SETI the de-Doppler search's), an empty list for none.
            fallback: Whether a fitted method (weights, stack) writes the mean's blend instead when its
                cross-validated metric is below the mean's.
            stacker: The stack's model (`spotter.binary.stack.STACKERS`); None for the default.

        Raises:
            SpotterError: On an unknown method or feature, runs that cannot be blended, or bad data.
        """
        out, data_dir = check_output_file(out), Path(data_dir)
        check_output_file(out.with_suffix(".json"))
        blend = create_blend(method, fallback=fallback, stacker=stacker)
        if features is None:
            features = self.default_features if blend.uses_features else ()
        unknown = sorted(set(features) - set(self.features))
        if unknown:
            raise SpotterError(f"unknown feature(s) {unknown}; expected {', '.join(self.features) or 'none'}")
        if features and not blend.uses_features:
            raise SpotterError(f"--features only applies to --method {' | '.join(self._feature_methods())}")
        aligned = align_runs(runs)  # before any prediction: a mismatch fails fast
        for run in aligned.runs:  # every run's weights before the first run predicts
            run_dir = RunDir(run)
            run_dir.trained_weights(run_dir.read_config(task.config_class))
        tests, caches = [], []
        for run in aligned.runs:
            frame, cache, hit = cached_test_predictions(task, RunDir(run), data_dir, tta=tta, reporter=reporter)
            tests.append(frame)
            caches.append({"run": str(run), "file": str(cache), "from_cache": hit})
        extra_oof = self._features(features, data_dir, "train", workers, reporter)
        extra_test = self._features(features, data_dir, "test", workers, reporter)
        result = ensemble_runs(aligned, tests, blend, roc_auc, extra_oof, extra_test)
        write_csv(out, pd.DataFrame({ID: list(result.ids), TARGET: np.asarray(result.predictions, np.float64)}))
        record = {**result.record, "data": str(data_dir), "tta": tta, "test_predictions": caches}
        write_json(out.with_suffix(".json"), record)
        return out, record

    def summary(self, record: dict) -> list[str]:
        """What the CLI prints about a blend."""
        metrics = record["metrics"]
        lines = [f"{c['run']}: test predictions {'from cache' if c['from_cache'] else 'written to'} {c['file']}"
                 for c in record["test_predictions"]]
        for run, value in metrics["inputs_oof"].items():
            ranked = metrics["inputs_oof_fold_ranked"][run]
            lines.append(f"oof AUC {run}: {value:.5f} (ranked within folds: {ranked:.5f})")
        for name, value in metrics.get("features_oof", {}).items():
            lines.append(f"oof AUC feature {name}: {value:.5f}")
        if "weights" in record:
            lines.append("weights: " + ", ".join(f"{run} {w:.3f}" for run, w in record["weights"].items()))
            lines.append(f"oof AUC weights (fitted on all folds, in-sample): {metrics['ensemble_oof_in_sample']:.5f}")
        label = {
            "weights": "weights fitted on the other folds",
            "stack": "stack CV, runs ranked within folds",
            "rank": "rank, ranked within folds",
        }.get(record["method"], record["method"])
        cv = f"; cross-validated over {metrics['cv_folds']}" if "cv_folds" in metrics else ""
        selection = record.get("selection")
        if selection is None:
            lines.append(f"oof AUC ensemble ({label}{cv}): {metrics['ensemble_oof']:.5f}")
            return lines
        requested = selection["requested"]
        lines.append(f"oof AUC ensemble ({label}{cv}): {selection['cv_oof'][requested]:.5f}")
        lines.append(f"oof AUC mean: {selection['cv_oof']['mean']:.5f}")
        if selection["cv_oof"][requested] < selection["cv_oof"]["mean"]:
            lines.append(selection_line(selection))
        return lines

    def _feature_methods(self) -> list[str]:
        return [m for m in self.methods if create_blend(m).uses_features]

    def _features(self, names, data_dir, split, workers, reporter) -> pd.DataFrame | None:
        if not names:
            return None
        frames = [self.features[name](data_dir, split, workers, reporter) for name in names]
        merged = frames[0]
        for frame in frames[1:]:
            merged = merged.merge(frame, on=ID, how="outer")
        return merged


def selection_line(selection: dict) -> str:
    """One line saying that a fitted blend's CV fell below the mean's, and which blend was written."""
    requested, cv = selection["requested"], selection["cv_oof"]
    below = f"{requested}'s cross-validated AUC {cv[requested]:.5f} is below the mean's {cv['mean']:.5f}"
    if selection["written"] == "mean":
        return f"{below}: wrote the mean's blend instead (--no-fallback writes the {requested} blend)"
    return f"{below}: wrote the {requested} blend anyway (--no-fallback)"
