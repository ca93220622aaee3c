"""Whale re-ranking by local-feature inliers: MAP@5 with and without it, overall / known / new, and its time per query.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/whale_local_features.py RUN DATA [--shortlist 10]
        [--splits 5] [--out whale_local_features.png] [--store]

RUN is a trained whale run (with out-of-fold photos), DATA its data folder (test_labels.csv for the test figures;
`spotter whale synth DATA --individuals 300 --seed 1` then `spotter whale train DATA --out RUN epochs=4 n_folds=5
train_folds=[0] threads=1`). Each out-of-fold query's shortlist (its `--shortlist` best candidates by the global
score) is verified with OpenCV SIFT + RANSAC against each candidate's train-side photo most like the query, then:

- out-of-fold, cross-fitted: the queries are split in `--splits` parts; for each part, both the global calibration
  (score → probability, new_individual threshold) and the fused one (score + inliers → probability, threshold
  refitted on it) are fitted on the other parts and scored on this one, so neither sees the queries it is scored on;
- test: the run's own calibration (what `whale predict` answers) against the fusion fitted on all out-of-fold
  queries, the test photos ranked against every train photo.

Prints MAP@5 (overall, known, new) without / with, the time the local features add per query, and writes a PNG
of the figures (`--out`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

COLD_QUERIES = 30  # test queries timed alone, with no features cached


def ap_at_5(truths, lists) -> np.ndarray:
    """Per-query average precision at 5 (Kaggle's)."""
    from spotter.metrics import average_precision_at_5

    return np.array([average_precision_at_5(t, p) for t, p in zip(truths, lists)])


def summary(truths, lists) -> dict[str, float]:
    """MAP@5 overall, over known-animal queries and over new-animal queries."""
    from spotter.metrics import NEW_INDIVIDUAL

    ap = ap_at_5(truths, lists)
    new = np.array([t == NEW_INDIVIDUAL for t in truths])
    return {"all": float(ap.mean()), "known": float(ap[~new].mean()) if (~new).any() else float("nan"),
            "new": float(ap[new].mean()) if new.any() else float("nan")}


def global_decision(names, scores, truths, retrieval):
    """The run's decision refitted on these queries: score → probability (its calibration method), threshold."""
    from spotter.whale.calibration import fit_calibration
    from spotter.whale.threshold import (
        RankedQueries,
        create_threshold_policy,
        insert_new_individual,
    )

    calibration = fit_calibration(names, scores, truths, retrieval.calibration)
    policy = create_threshold_policy(retrieval.threshold_mode, retrieval)
    policy.fit(RankedQueries(names, calibration(scores), [""] * len(names), list(truths)))

    def decide(names_, scores_):
        """(probabilities, lists with new_individual inserted)."""
        probabilities = calibration(scores_)
        thresholds = policy.thresholds(RankedQueries(names_, probabilities, [""] * len(names_)))
        return probabilities, insert_new_individual(names_, probabilities, thresholds)

    return decide


def cross_fitted(names, scores, inliers, truths, retrieval, settings, splits: int, seed: int = 0):
    """Out-of-fold lists without / with re-ranking, each part decided by a fit on the other parts, and the
    expected calibration error of each one's held-out probabilities (first 5 candidates)."""
    from spotter.whale.calibration import (
        candidate_pairs,
        expected_calibration_error,
        reliability,
    )
    from spotter.whale.ranking import fit_inlier_fusion

    count = len(truths)
    part = np.random.default_rng(seed).permutation(count) % splits
    lists = {"without": [None] * count, "with": [None] * count}
    pairs = {"without": ([], []), "with": ([], [])}

    def pick(seq, idx):
        return [seq[i] for i in idx]

    for p in range(splits):
        fit, held = np.flatnonzero(part != p), np.flatnonzero(part == p)
        decide = global_decision(pick(names, fit), scores[fit], pick(truths, fit), retrieval)
        probabilities, rows = decide(pick(names, held), scores[held])
        fusion = fit_inlier_fusion(pick(names, fit), scores[fit], inliers[fit], pick(truths, fit), retrieval, settings)
        fused = fusion.rerank(pick(names, held), scores[held], inliers[held])
        for kind, ranked, probs, answers in (("without", pick(names, held), probabilities, rows),
                                              ("with", fused.names, fused.probabilities, fused.lists)):
            for i, row in zip(held, answers):
                lists[kind][i] = row
            x, y = candidate_pairs(ranked, probs, pick(truths, held))
            pairs[kind][0].extend(x)
            pairs[kind][1].extend(y)
    errors = {kind: expected_calibration_error(reliability(np.array(x), np.array(y))) for kind, (x, y) in pairs.items()}
    return lists["without"], lists["with"], errors


def plot(figures: dict[str, tuple[dict, dict]], out: Path, title: str) -> None:
    """Grouped bars: per data set, MAP@5 overall / known / new, without and with re-ranking."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spotter.io import atomic_path

    fig, axes = plt.subplots(1, len(figures), figsize=(4.2 * len(figures), 3.4), sharey=True, squeeze=False)
    for ax, (name, (without, with_)) in zip(axes[0], figures.items()):
        groups = list(without)
        x = np.arange(len(groups))
        for offset, values, label, colour in ((-0.2, without, "global score", "#8a8a8a"),
                                              (0.2, with_, "+ local-feature inliers", "#2a7ab8")):
            bars = ax.bar(x + offset, [values[g] for g in groups], 0.4, label=label, color=colour)
            ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
        ax.set_xticks(x, groups)
        ax.set_title(name, fontsize=9)
        ax.set_ylim(0, 1.08)
    axes[0][0].set_ylabel("MAP@5")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main() -> None:
    import cv2

    from spotter.engine.rundir import RunDir
    from spotter.engine.runtime import Runtime
    from spotter.io import read_csv
    from spotter.progress import RichReporter
    from spotter.whale.config import WhaleConfig
    from spotter.whale.data import read_whale_data
    from spotter.whale.local_features import (
        FeatureSettings,
        clear_feature_cache,
        shortlist_inliers,
    )
    from spotter.whale.predict import boxes_of, load_calibration
    from spotter.whale.ranking import (
        INLIER_FUSION,
        best_candidate_species,
        fit_inlier_fusion,
        out_of_fold_inliers,
        photo_places,
        rank,
        rank_out_of_fold,
        shortlist_photos,
    )
    from spotter.whale.task import WhaleTask
    from spotter.whale.views import (
        combine,
        embed_models,
        restore_fold_models,
        run_rows,
        train_views,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="a trained whale run (default: a small one made in a temporary folder)")
    parser.add_argument("data", nargs="?", help="the data it was trained on")
    parser.add_argument("--shortlist", type=int, default=10, help="candidates verified per query")
    parser.add_argument("--splits", type=int, default=5, help="parts of the out-of-fold queries for cross-fitting")
    parser.add_argument("--detector", default="sift")
    parser.add_argument("--geometry", default="similarity")
    parser.add_argument("--out", default="whale_local_features.png")
    parser.add_argument("--store", action="store_true",
                        help=f"store the re-ranking fitted on all out-of-fold queries in RUN ({INLIER_FUSION}), "
                             "where `whale match` uses it")
    args = parser.parse_args()
    if args.run is None:
        import tempfile

        from _whale_setup import small_whale_run

        args.run, args.data = small_whale_run(tempfile.mkdtemp(prefix="whale-features-"))
        print(f"no RUN DATA given: a small run on generated data, {args.run}")
    cv2.setNumThreads(1)  # one core, as the time per query is quoted
    settings = FeatureSettings(detector=args.detector, geometry=args.geometry)
    reporter = RichReporter()

    run = RunDir(args.run)
    cfg = run.read_config(WhaleConfig)
    data = read_whale_data(args.data)
    rows = run_rows(run, data)
    models = restore_fold_models(WhaleTask(), run, cfg, rows)
    boxes = boxes_of(data, cfg) or {}
    runtime = Runtime(cfg.mixed_precision)
    views = train_views(run, models, rows, cfg, boxes, runtime, reporter)
    vocab = sorted(set(rows["individual_id"]))
    oof = rank_out_of_fold(list(zip(models, views)), rows, vocab, cfg, top=args.shortlist)
    names, scores = oof.candidates.names(vocab), oof.candidates.scores

    started, cpu = time.perf_counter(), time.process_time()
    inliers = out_of_fold_inliers(list(zip(models, views)), rows, oof, vocab, boxes, settings, reporter)
    oof_seconds, oof_cpu = time.perf_counter() - started, time.process_time() - cpu
    truths = oof.truths
    known = np.array([n[: args.shortlist].count(t) > 0 for n, t in zip(names, truths)])
    right = np.array([[j < len(n) and n[j] == t for j in range(scores.shape[1])] for n, t in zip(names, truths)])
    print(f"out-of-fold: {len(truths)} queries ({np.mean([t == 'new_individual' for t in truths]):.0%} new), "
          f"truth in the shortlist of {known.mean():.0%}; inliers: right candidates median "
          f"{np.median(inliers[right]) if right.any() else float('nan'):.0f}, wrong ones median "
          f"{np.median(inliers[~right & np.isfinite(scores)]):.0f}; "
          f"{1000 * oof_seconds / len(truths):.0f} ms per query ({1000 * oof_cpu / len(truths):.0f} ms CPU; "
          f"{args.shortlist} pairs)")

    figures = {}
    without, with_, errors = cross_fitted(names, scores, inliers, truths, cfg.retrieval, settings, args.splits)
    print(f"out-of-fold, cross-fitted: expected calibration error of the held-out probabilities (first 5 "
          f"candidates) without / with re-ranking {errors['without']:.3f} / {errors['with']:.3f}")
    figures[f"out-of-fold ({len(truths)} queries, cross-fitted)"] = (summary(truths, without), summary(truths, with_))

    fusion = fit_inlier_fusion(names, scores, inliers, truths, cfg.retrieval, settings,
                               dict(zip(rows["individual_id"], rows["species"])))
    a, c, b = fusion.coef
    print(f"fusion on all out-of-fold queries: P = sigmoid({a:.2f}·score + {c:.2f}·log(1 + inliers) {b:+.2f}), "
          f"new_individual below {fusion.record['threshold']:.3f}")
    if args.store:
        fusion.save(run.file(INLIER_FUSION))
        print(f"stored: {run.file(INLIER_FUSION)}")

    truth_path = Path(args.data) / "test_labels.csv"
    if truth_path.is_file():
        calibration = load_calibration(run, cfg)
        queries = combine(embed_models(models, data.test, cfg, boxes, runtime, reporter, "test photos"), len(vocab))
        gallery = combine(views, len(vocab))
        labels = np.searchsorted(vocab, rows["individual_id"].to_numpy().astype(str))
        cands = rank(queries, gallery, labels, len(vocab), cfg, top=args.shortlist)
        test_names = cands.names(vocab)
        species_of = dict(zip(rows["individual_id"], rows["species"]))
        _, plain_lists, _ = calibration.decide([n[:5] for n in test_names], cands.scores[:, :5],
                                               best_candidate_species(test_names, species_of))
        started, cpu = time.perf_counter(), time.process_time()
        shortlists = shortlist_photos(queries.plain, cands.labels, gallery.plain, labels, photo_places(rows, boxes))
        test_in = shortlist_inliers(photo_places(data.test, boxes), shortlists, settings, reporter)
        test_seconds, test_cpu = time.perf_counter() - started, time.process_time() - cpu
        cold = []  # one query on its own, no photo's features computed before (a review page's first look)
        for query, shortlist in list(zip(photo_places(data.test, boxes), shortlists))[:COLD_QUERIES]:
            clear_feature_cache()
            started, cpu = time.perf_counter(), time.process_time()
            shortlist_inliers([query], [shortlist], settings)
            cold.append((time.perf_counter() - started, time.process_time() - cpu))
        fused = fusion.rerank(test_names, cands.scores, test_in)
        truth = read_csv(truth_path, required=["image", "individual_id"], dtype=str).set_index("image")
        test_truths = list(truth.loc[data.test["image"], "individual_id"])
        figures[f"test ({len(test_truths)} photos)"] = (summary(test_truths, plain_lists),
                                                        summary(test_truths, fused.lists))
        cold_wall, cold_cpu = np.mean(cold, axis=0)
        print(f"test: {1000 * test_seconds / len(test_truths):.0f} ms per query ({1000 * test_cpu / len(test_truths):.0f}"
              f" ms CPU; {args.shortlist} pairs, catalogue photos' features reused across queries); "
              f"{1000 * cold_wall:.0f} ms ({1000 * cold_cpu:.0f} ms CPU) for a query alone with no features cached "
              f"(mean of {len(cold)})")

    for name, (before, after) in figures.items():
        print(f"{name}: MAP@5 without / with re-ranking  " + "  ".join(
            f"{g} {before[g]:.4f} / {after[g]:.4f}" for g in before))
    title = (f"re-ranking the {args.shortlist} best candidates by {settings.detector.upper()} + RANSAC "
             f"({settings.geometry}) inliers")
    plot(figures, Path(args.out), title)
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
