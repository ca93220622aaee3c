"""The SETI run report: the model against the de-Doppler baseline, learning curves, AUC per fold, needle kind
and SNR band, and the most confident mistakes with their cadences."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from spotter.binary.ensemble import read_oof
from spotter.engine.rundir import RunDir, fold_name
from spotter.errors import SpotterError
from spotter.io import read_csv
from spotter.metrics import auc_by_group
from spotter.progress import NullReporter, Reporter
from spotter.report import (
    BASELINE_COLOR,
    FOLD_COLORS,
    MODEL_COLOR,
    Callout,
    Card,
    Figure,
    ReportAssets,
    figure_style,
    format_value,
    grouped_bars_figure,
    histogram_figure,
    pyplot,
    render_page,
    roc_figure,
    table,
)
from spotter.seti import ON_PANELS
from spotter.seti.data import TRAIN_META, load_cadence, read_labels, sample_path

TEMPLATE = "seti_report.html.j2"
SNR_BANDS = 4  # quantile bands of the positives' SNR
# train_meta.csv columns worth showing beside a mistake (zeros and blanks mean "not applicable" there)
MISTAKE_FACTS = {"kind": "kind", "snr": "SNR", "drift": "drift (ch/row)", "width": "width (ch)",
                 "panels": "panels", "rfi": "RFI"}


def make_report(
    run_dir: str | Path,
    data_dir: str | Path,
    mistakes: int = 4,
    baseline_sample: int = 2000,
    reporter: Reporter = NullReporter(),
) -> Path:
    """Writes `report.html` into the run folder, its figures into the report's image folder.

    Args:
        run_dir: A finished `spotter seti train` run with out-of-fold predictions.
        data_dir: The data it was trained on: the cadences of the mistakes, `train_meta.csv` where present, and
            the de-Doppler baseline's scores.
        mistakes: How many of the most confident false positives and false negatives to show.
        baseline_sample: The de-Doppler search scores the whole training split (cached in the data folder) when
            it has at most this many cadences, else this many out-of-fold cadences drawn at random (the search
            takes tens of milliseconds a cadence on a CPU); 0 leaves the baseline out.
        reporter: Progress of the de-Doppler search.

    Raises:
        SpotterError: If the run has no out-of-fold predictions or the data folder's labels are unreadable.
    """
    run, data_dir = RunDir(run_dir), Path(data_dir)
    if not run.oof_table.is_file():
        raise SpotterError(f"no out-of-fold predictions ({run.oof_table.name}); a report needs a run trained with "
                           "validation folds", run.path)
    oof = read_oof(run).merge(run.read_folds("id"), on="id", how="left")
    metrics = run.read_metrics() if run.is_finished() else {}
    meta = _read_meta(data_dir, oof["id"])
    baseline, baseline_note = _baseline_scores(data_dir, oof["id"], baseline_sample, reporter)
    oof["baseline"] = baseline
    assets = ReportAssets(run)

    targets, model = oof["target"].to_numpy(float), oof["pred"].to_numpy(float)
    compared = np.isfinite(oof["baseline"].to_numpy(float))  # rows both scorings have: the comparison's rows
    model_auc = _auc(targets, model)
    summary, roc = _summary(oof, compared, model_auc, baseline_note), None
    if compared.any():
        rows = oof[compared]
        scorings = {"model": rows["pred"].to_numpy(float), "de-Doppler baseline": rows["baseline"].to_numpy(float)}
        where = "the same out-of-fold rows" if compared.all() else f"the same {compared.sum():,} sampled out-of-fold rows"
        roc = assets.figure(roc_figure(rows["target"].to_numpy(float), scorings, (MODEL_COLOR, BASELINE_COLOR)),
                            "roc.png", f"Does the model find needles better than the classical de-Doppler search? "
                            f"ROC of both on {where}; the higher curve wins.")
    else:
        roc = assets.figure(roc_figure(targets, {"model": model}, (MODEL_COLOR,)), "roc.png",
                            "How well does the model rank cadences with a needle above those without? "
                            "ROC of the out-of-fold predictions.")
    classes = np.where(targets >= 0.5, "needle", "no needle")
    histogram = assets.figure(
        histogram_figure(model, classes, "predicted probability of a needle", ("#9aa4b5", MODEL_COLOR),
                         order=("no needle", "needle")),
        "scores.png", "Are the predicted probabilities of the two classes apart, and where would a cut-off fall?",
    )
    learning, learning_note = _learning_curves(run, assets, metrics, sorted(oof["fold"].dropna().unique()))
    groups = _group_sections(oof, compared, meta, assets)
    render_page(
        TEMPLATE,
        run.report_path,
        title=f"SETI run {run.path.name}",
        run_path=str(run.path),
        data_path=str(data_dir),
        assets=assets.folder.name,
        sections=[(s, n) for s, n in SECTIONS if s != "kinds" or groups["any"]],
        summary=summary,
        roc=roc,
        histogram=histogram,
        learning=learning,
        learning_note=learning_note,
        folds=_fold_table(oof, metrics),
        groups=groups,
        mistakes=_mistakes(oof, meta, data_dir, assets, mistakes),
        baseline_note=baseline_note,
        baseline_shown=bool(compared.any()),
    )
    return run.report_path


SECTIONS = [
    ("baseline", "Model vs baseline"),
    ("training", "Learning curves"),
    ("folds", "Per fold"),
    ("kinds", "Needle kinds and SNR"),
    ("mistakes", "Mistakes"),
]


# ------------------------------------------------------------------------------------------- data


def _read_meta(data_dir: Path, ids: pd.Series) -> pd.DataFrame | None:
    """train_meta.csv's rows for the out-of-fold ids (None when the data folder has no such file)."""
    path = data_dir / TRAIN_META
    if not path.is_file():
        return None
    meta = read_csv(path, required=["id"], dtype={"id": str}).drop_duplicates("id")
    return pd.DataFrame({"id": ids}).merge(meta.drop(columns=["target"], errors="ignore"), on="id", how="left")


def _baseline_scores(
    data_dir: Path, ids: pd.Series, sample: int, reporter: Reporter
) -> tuple[np.ndarray, str]:
    """The de-Doppler score of each out-of-fold id (NaN where not searched) and a note on where they come from.

    A failed search (a missing or unreadable cadence, ids the data folder does not have) leaves the baseline out
    with the reason, rather than failing the report.
    """
    from spotter.seti.ensemble import dedoppler_features

    scores = np.full(len(ids), np.nan)
    if sample <= 0:
        return scores, "The de-Doppler baseline was not computed (baseline_sample=0)."
    try:
        if len(read_labels(data_dir, "train")) <= sample:
            features = dedoppler_features(data_dir, "train", reporter=reporter).set_index("id")["dedoppler_score"]
            scores = ids.map(features).to_numpy(float)
            missing = int(np.isnan(scores).sum())
            if missing == len(ids):
                return scores, (f"The de-Doppler baseline is not shown: none of the run's ids is in "
                                f"{data_dir.name}'s training split (was the run trained on this data folder?).")
            note = f" ({missing:,} out-of-fold ids are not in the data folder's training split)" if missing else ""
            return scores, f"De-Doppler baseline: every out-of-fold row{note}."
        chosen = np.sort(np.random.default_rng(0).choice(len(ids), min(sample, len(ids)), replace=False))
        for i, score in zip(chosen, _search(data_dir, ids.iloc[chosen], reporter)):
            scores[i] = score
        return scores, (f"De-Doppler baseline: {len(chosen):,} out-of-fold rows drawn at random (of {len(ids):,}); "
                        f"both curves use these rows.")
    except SpotterError as err:
        return np.full(len(ids), np.nan), f"The de-Doppler baseline is not shown: {err}"


def _search(data_dir: Path, ids: pd.Series, reporter: Reporter) -> list[float]:
    from spotter.seti.dedoppler import Dedoppler

    search = Dedoppler()
    return [search.search(load_cadence(sample_path(data_dir, "train", i))).score
            for i in reporter.track(list(ids), len(ids), "de-Doppler (report)")]


def _auc(targets: np.ndarray, scores: np.ndarray) -> float:
    from spotter.metrics import roc_auc

    positive = np.asarray(targets) >= 0.5
    return float(roc_auc(positive, scores)) if 0 < positive.sum() < len(positive) else float("nan")


# ------------------------------------------------------------------------------------------- sections


def _summary(oof: pd.DataFrame, compared: np.ndarray, model_auc: float, baseline_note: str) -> dict:
    targets = oof["target"].to_numpy(float)
    folds = ", ".join(str(int(f)) for f in sorted(oof["fold"].dropna().unique()))
    cards = [Card("model AUC (out-of-fold)", format_value(model_auc, 3),
                  f"{len(oof):,} cadences, {int((targets >= 0.5).sum()):,} with a needle; fold {folds}")]
    if not compared.any():
        return {"cards": cards, "verdict": Callout("note", baseline_note)}
    rows = oof[compared]
    t = rows["target"].to_numpy(float)
    model, baseline = _auc(t, rows["pred"].to_numpy(float)), _auc(t, rows["baseline"].to_numpy(float))
    same = "the same rows" if compared.all() else f"the same {compared.sum():,} sampled rows"
    if not compared.all():
        cards.append(Card("model AUC (sampled rows)", format_value(model, 3), f"{compared.sum():,} rows"))
    cards.append(Card("de-Doppler baseline AUC", format_value(baseline, 3), same))
    if not np.isfinite(model) or not np.isfinite(baseline):
        verdict = Callout("note", f"AUC needs both classes among {same}; the comparison is undefined.")
    elif baseline > model:
        verdict = Callout("warn", f"The classical de-Doppler search beats the model on {same}: AUC "
                                  f"{baseline:.3f} against {model:.3f}. Train longer or on more data, or check "
                                  "the preprocessing, before trusting the model's scores.")
    else:
        verdict = Callout("good", f"The model beats the classical de-Doppler search on {same}: AUC {model:.3f} "
                                  f"against {baseline:.3f}.")
    return {"cards": cards, "verdict": verdict}


def _learning_curves(run: RunDir, assets: ReportAssets, metrics: dict, folds: list) -> tuple[Figure | None, str]:
    """Loss and validation AUC by epoch, one colour per fold, the best epoch starred."""
    logs = {}
    for fold in folds:
        path = run.log_path(int(fold))
        if path.is_file():
            log = read_csv(path, required=["epoch", "train_loss"])
            best = metrics.get("best_epoch", {}).get(fold_name(int(fold)))
            if log["epoch"].min() == 0:  # runs written before epochs were counted from 1 in files
                log["epoch"] += 1
                best = None if best is None else best + 1
            logs[int(fold)] = (log, best)
    if not logs:
        return None, "No per-epoch logs in the run folder (fold<k>/log.csv)."
    metric_name = metrics.get("metric_name", "AUC")
    with figure_style():
        fig, (loss_ax, metric_ax) = pyplot().subplots(1, 2, figsize=(9.6, 3.3))
        for (fold, (log, best)), color in zip(logs.items(), itertools.cycle(FOLD_COLORS)):
            epochs = log["epoch"].to_numpy()
            loss_ax.plot(epochs, log["train_loss"], color=color, marker="o", markersize=3, label=f"fold {fold} train")
            if "valid_loss" in log:
                loss_ax.plot(epochs, log["valid_loss"], color=color, marker="o", markersize=3, linestyle="--",
                             label=f"fold {fold} validation")
            if "metric" in log:
                metric_ax.plot(epochs, log["metric"], color=color, marker="o", markersize=3, label=f"fold {fold}")
                if best is None:
                    best = int(epochs[int(np.nanargmax(log["metric"].to_numpy(float)))])
                at = log.loc[log["epoch"] == best, "metric"]
                if len(at):
                    metric_ax.plot([best], [float(at.iloc[0])], marker="*", markersize=13, color=color,
                                   markeredgecolor="black", linestyle="none",
                                   label=f"fold {fold} best: epoch {best}")
        loss_ax.set(xlabel="epoch", ylabel="loss", title="loss (solid: train, dashed: validation)")
        metric_ax.set(xlabel="epoch", ylabel=f"validation {metric_name}", title=f"validation {metric_name}")
        for ax in (loss_ax, metric_ax):
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.legend(fontsize=7)
    figure = assets.figure(fig, "learning_curves.png",
                           "Did training converge, and when did it start to overfit (validation loss rising while "
                           "training loss falls)? The star marks the epoch whose weights were kept.")
    return figure, ""


def _fold_table(oof: pd.DataFrame, metrics: dict):
    rows = []
    for fold, part in oof.groupby("fold"):
        t = part["target"].to_numpy(float)
        scored = np.isfinite(part["baseline"].to_numpy(float))
        rows.append({
            "fold": int(fold),
            "cadences": len(part),
            "with a needle": int((t >= 0.5).sum()),
            "model AUC": _auc(t, part["pred"].to_numpy(float)),
            "baseline AUC": _auc(t[scored], part["baseline"].to_numpy(float)[scored]) if scored.any() else np.nan,
            "best epoch": metrics.get("best_epoch", {}).get(fold_name(int(fold))),
        })
    frame = pd.DataFrame(rows)
    return table(frame, "Is the result stable across folds? Each fold's validation cadences, scored by the model "
                        "trained without them (baseline AUC on the rows it searched).", {"model AUC": 3, "baseline AUC": 3})


def _group_sections(oof: pd.DataFrame, compared: np.ndarray, meta: pd.DataFrame | None, assets: ReportAssets) -> dict:
    """AUC per needle kind (and per negative kind) and per SNR band, model beside baseline, where the data says."""
    out = {"any": False, "kinds": None, "snr": None, "note": ""}
    if meta is None:
        out["note"] = f"The data folder has no {TRAIN_META}, so needle kinds and SNRs are unknown."
        return out
    # the comparison's rows when the baseline is there, so both columns score the same cadences
    rows = oof[compared] if compared.any() else oof
    info = meta.set_index("id").loc[rows["id"]]
    t = rows["target"].to_numpy(float)
    scorings = {"model AUC": rows["pred"].to_numpy(float)}
    if compared.any():
        scorings["baseline AUC"] = rows["baseline"].to_numpy(float)
    bars = {"model": "model AUC", "de-Doppler baseline": "baseline AUC"} if compared.any() else {"model": "model AUC"}
    colors = (MODEL_COLOR, BASELINE_COLOR)
    scope = "" if compared.all() or not compared.any() else f" (on the {len(rows):,} rows the baseline searched)"
    if "kind" in info:
        kinds = info["kind"].fillna("unknown").astype(str).to_numpy()
        frame = _by_group(t, scorings, kinds)
        if len(frame):
            out["kinds"] = {
                "figure": assets.figure(
                    grouped_bars_figure(frame, "group", bars, "AUC", colors=colors, xlim=(0, 1.08), reference=0.5),
                    "auc_by_kind.png",
                    "Which needle shapes does the model miss, and which kinds of negative fool it? A needle kind's "
                    "cadences against every negative; a negative kind's against every needle" + scope + "."),
                "table": table(frame.rename(columns={"group": "kind", "count": "cadences"}), digits={c: 3 for c in scorings}),
            }
    if "snr" in info:
        snr = pd.to_numeric(info["snr"], errors="coerce").to_numpy(float)
        bands = _snr_bands(snr, t >= 0.5)
        if bands is not None:
            frame = _by_group(t, scorings, bands, negatives=False)
            frame = frame.sort_values("group", key=lambda g: g.map(_band_start)).reset_index(drop=True)
            out["snr"] = {
                "figure": assets.figure(
                    grouped_bars_figure(frame, "group", bars, "AUC", colors=colors, xlim=(0, 1.08), reference=0.5),
                    "auc_by_snr.png",
                    "How faint a needle can the model still find, compared with the baseline? Needles in quarters "
                    "of their SNR (setigen's per-panel definition) against every negative" + scope + "."),
                "table": table(frame.rename(columns={"group": "SNR band", "count": "cadences"}),
                               digits={c: 3 for c in scorings}),
            }
    out["any"] = out["kinds"] is not None or out["snr"] is not None
    if not out["any"]:
        out["note"] = f"{TRAIN_META} carries neither a kind nor an SNR column."
    return out


def _by_group(t: np.ndarray, scorings: dict[str, np.ndarray], groups: np.ndarray, negatives: bool = True) -> pd.DataFrame:
    """AUC of each group of needles against all negatives and, with `negatives`, of all needles against each group
    of negatives; one column per scoring."""
    parts = []
    positive_groups = auc_by_group(t, next(iter(scorings.values())), groups)[["group", "positives"]]
    positive_groups = positive_groups.rename(columns={"positives": "count"})
    for name, scores in scorings.items():
        positive_groups[name] = auc_by_group(t, scores, groups)["auc"].to_numpy()
    positive_groups["group"] = [f"needle: {g}" if negatives else str(g) for g in positive_groups["group"]]
    parts.append(positive_groups)
    if negatives:
        # flipping the labels and negating the scores turns "each needle kind against all negatives" into "all
        # needles against each negative kind", with the same AUC value (P(needle scores above that negative))
        flipped = 1.0 - t
        negative_groups = auc_by_group(flipped, -next(iter(scorings.values())), groups)[["group", "positives"]]
        negative_groups = negative_groups.rename(columns={"positives": "count"})
        for name, scores in scorings.items():
            negative_groups[name] = auc_by_group(flipped, -scores, groups)["auc"].to_numpy()
        negative_groups["group"] = [f"no needle: {g}" for g in negative_groups["group"]]
        parts.append(negative_groups)
    return pd.concat(parts, ignore_index=True)


def _snr_bands(snr: np.ndarray, positive: np.ndarray) -> np.ndarray | None:
    """A band label ("SNR 4.1–7.9") per needle by quantiles of the needles' SNR; None without SNRs."""
    known = positive & np.isfinite(snr) & (snr > 0)
    if known.sum() < 2:
        return None
    bands = pd.qcut(snr[known], q=min(SNR_BANDS, len(np.unique(snr[known]))), duplicates="drop")
    labels = np.full(len(snr), "unknown", dtype=object)
    labels[known] = [f"SNR {b.left:.3g}–{b.right:.3g}" for b in bands]
    labels[positive & ~known] = "SNR unknown"
    return labels


def _band_start(label: str) -> float:
    try:
        return float(label.removeprefix("SNR ").split("–")[0])
    except ValueError:
        return float("inf")


# ------------------------------------------------------------------------------------------- mistakes


@dataclass(frozen=True)
class Mistake:
    id: str
    kind: str  # "false positive" or "false negative"
    facts: list[tuple[str, str]]
    figure: Figure | None
    problem: str = ""


def _mistakes(oof: pd.DataFrame, meta: pd.DataFrame | None, data_dir: Path, assets: ReportAssets, count: int) -> dict:
    info = meta.set_index("id") if meta is not None else None
    out = {}
    negatives, positives = oof[oof["target"] < 0.5], oof[oof["target"] >= 0.5]
    for key, name, rows in (("false_positives", "false positive", negatives.nlargest(count, "pred")),
                            ("false_negatives", "false negative", positives.nsmallest(count, "pred"))):
        out[key] = [_mistake(row, name, info, data_dir, assets, f"{key}_{rank}.png")
                    for rank, (_, row) in enumerate(rows.iterrows(), start=1)]
    return out


def _mistake(row: pd.Series, name: str, info: pd.DataFrame | None, data_dir: Path, assets: ReportAssets,
             file_name: str) -> Mistake:
    facts = [("predicted probability", f"{row['pred']:.3f}"), ("fold", str(int(row["fold"])))]
    if np.isfinite(row["baseline"]):
        facts.append(("de-Doppler score", f"{row['baseline']:.2f}"))
    if info is not None and row["id"] in info.index:
        for column, label in MISTAKE_FACTS.items():
            value = info.at[row["id"], column] if column in info.columns else None
            if column == "panels" and _meaningful(value):
                facts.append((label, _panel_names(value)))
            elif _meaningful(value):
                facts.append((label, format_value(value, 2) if isinstance(value, float) else str(value)))
    try:
        cadence = load_cadence(sample_path(data_dir, "train", row["id"])).astype(np.float32)
    except SpotterError as err:
        return Mistake(row["id"], name, facts, None, f"cadence not shown: {err}")
    question = "Why does the model see a needle here?" if name == "false positive" else "Why does the model miss this needle?"
    caption = f"{question} The cadence's six panels in observing order (time down, frequency across, one colour scale)."
    return Mistake(row["id"], name, facts, assets.figure(_cadence_figure(cadence), file_name, caption))


def panel_title(panel: int) -> str:
    """"ON 1", "OFF 1", "ON 2", ...: a panel (0-based) as observers name it."""
    return f"{'ON' if panel in ON_PANELS else 'OFF'} {panel // 2 + 1}"


def _panel_names(value) -> str:
    """train_meta's 0-based panel list ("0,2,4") in the panel titles' names ("ON 1, ON 2, ON 3")."""
    try:
        return ", ".join(panel_title(int(p)) for p in str(value).replace(";", ",").split(",") if p.strip())
    except ValueError:
        return str(value)


def _meaningful(value) -> bool:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return value != 0
    return str(value).strip() not in ("", "nan", "False")


def _cadence_figure(cadence: np.ndarray):
    low, high = np.percentile(cadence, [1, 99.7])  # one scale: a signal in an OFF panel shows as bright as in an ON
    with figure_style():
        fig, axes = pyplot().subplots(1, 6, figsize=(11, 2.2))
        for p, ax in enumerate(axes):
            ax.imshow(cadence[p], aspect="auto", interpolation="nearest", cmap="viridis", vmin=low, vmax=high)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            on = p in ON_PANELS
            ax.set_title(panel_title(p), fontsize=9, fontweight="bold" if on else "normal",
                         color="#1d2430" if on else "#5d6778")
            for spine in ax.spines.values():  # a dark frame on the ON (target) panels, a light one on the OFF
                spine.set_visible(True)
                spine.set_color("#1d2430" if on else "#b0b7c3")
                spine.set_linewidth(2 if on else 1)
        fig.subplots_adjust(wspace=0.05)
    return fig
