"""`spotter whale ...` sub-commands of its own: synth, check, pseudo, report, and catalogue index / match / review
(train and predict come from the task registry)."""

from __future__ import annotations

import argparse


def register(sub, common: argparse.ArgumentParser) -> None:
    """Adds the whale task's own sub-commands."""
    synth = sub.add_parser("synth", parents=[common], help="generate synthetic individuals in the Kaggle layout")
    synth.add_argument("out", help="output folder")
    synth.add_argument("--individuals", type=int, default=200, help="individuals with train photos (default 200)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument(
        "--test-new-ratio", type=float, default=0.2, help="share of test photos showing new individuals (default 0.2)"
    )
    synth.add_argument("--image-size", type=int, default=192, help="side of the square photos (default 192)")
    synth.add_argument("--bboxes", action="store_true", help="also write bboxes.csv with each animal's box")
    synth.add_argument(
        "--preset", default="default",
        help="capture conditions: default, or hard (rough sea and camera: pose, waves, occluders, blur, JPEG)",
    )
    synth.add_argument("--workers", type=int, default=1, help="drawing processes (default 1)")
    synth.set_defaults(func=_synth)

    check = sub.add_parser("check", parents=[common], help="list every problem in a whale data folder")
    check.add_argument("data", help="data folder (train.csv, train_images/, sample_submission.csv, test_images/)")
    check.add_argument("--no-open", action="store_true", help="only check that images exist, do not open them")
    check.set_defaults(func=_check)

    index = sub.add_parser(
        "index", parents=[common],
        help="embed a photo catalogue with a run, or bring its index up to date (only new photos are embedded)",
    )
    index.add_argument("run", help="run folder")
    index.add_argument(
        "catalogue",
        help="photo folder with catalogue.csv (image,individual_id) and optional bboxes.csv, or a whale data folder",
    )
    index.add_argument("--csv", help="the table of known photos (default: CATALOGUE/catalogue.csv or train.csv)")
    index.add_argument("--out", help="index folder (default: RUN/index)")
    index.set_defaults(func=_index)

    match = sub.add_parser("match", parents=[common], help="rank the catalogue's individuals for new photos")
    match.add_argument("run", help="run folder")
    match.add_argument("photos", nargs="+", metavar="PHOTO|FOLDER", help="photos to identify, or folders of them")
    match.add_argument("--index", help="index folder from `whale index` (default: RUN/index)")
    match.add_argument("--top", type=int, default=5, help="answers per photo, new_individual included (default 5)")
    match.add_argument("--out", default="matches.csv", help="answers CSV (default: matches.csv); a PNG goes beside it")
    match.add_argument("--bboxes", help="crop boxes of the photos (image,x1,y1,x2,y2; default: a bboxes.csv in "
                                        "each photo's folder)")
    match.set_defaults(func=_match)

    review = sub.add_parser(
        "review", parents=[common],
        help="a local review page: confirm matches or add new individuals; decisions logged, the index kept current",
    )
    review.add_argument("run", help="run folder")
    review.add_argument("photos", nargs="+", metavar="PHOTO|FOLDER", help="photos to review, or folders of them")
    review.add_argument("--index", help="index folder from `whale index` (default: RUN/index)")
    review.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0: any free one)")
    review.add_argument("--no-browser", action="store_true", help="do not open the page in a browser")
    review.add_argument("--user", help="who decides, recorded with each decision (default: the login name)")
    review.add_argument("--bboxes", help="crop boxes of the photos (image,x1,y1,x2,y2; default: a bboxes.csv in "
                                         "each photo's folder)")
    review.add_argument("--decisions", help="decisions log, appended to (default: INDEX/decisions.jsonl)")
    review.add_argument("--top", type=int, default=5, help="answers per photo, new_individual included (default 5)")
    review.set_defaults(func=_review)

    pseudo = sub.add_parser(
        "pseudo", parents=[common], help="a new data folder: train plus test photos identified with confidence"
    )
    pseudo.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s); several are blended as by `ensemble`")
    pseudo.add_argument("data", help="the data folder the runs were trained on (its test photos are labelled)")
    pseudo.add_argument("--out", required=True, help="new data folder (photos are symlinked, not copied)")
    pseudo.add_argument("--threshold", type=float, required=True,
                        help="top-1 match probability a test photo must reach, e.g. 0.9")
    pseudo.add_argument(
        "--margin", type=float, default=0.0, help="lead over the runner-up's probability it must also have (default 0)"
    )
    pseudo.add_argument("--no-tta", action="store_true", help="rank without the runs' flip TTA")
    pseudo.set_defaults(func=_pseudo)

    report = sub.add_parser("report", parents=[common], help="write RUN/report.html (MAP@5 vs threshold, by species)")
    report.add_argument("run", help="run folder (after `whale predict`, the report uses its kNN results)")
    report.add_argument("--data", help="the training data folder, to draw a gallery of photos and candidates")
    report.set_defaults(func=_report)


def _synth(args: argparse.Namespace) -> int:
    from spotter.errors import SpotterError
    from spotter.progress import create_reporter
    from spotter.whale.synth import NUISANCE_PRESETS, SynthConfig, make_synthetic

    if args.preset not in NUISANCE_PRESETS:
        raise SpotterError(f"unknown --preset {args.preset!r}; expected one of {', '.join(NUISANCE_PRESETS)}")
    config = SynthConfig(
        individuals=args.individuals,
        seed=args.seed,
        test_new_ratio=args.test_new_ratio,
        image_size=args.image_size,
        bboxes=args.bboxes,
        nuisance=NUISANCE_PRESETS[args.preset],
    )
    counts = make_synthetic(args.out, config, workers=args.workers, reporter=create_reporter(args.quiet))
    print(
        f"wrote {args.out}: {counts['train_images']} train photos of {counts['individuals']} individuals "
        f"({counts['singletons']} seen once), {counts['test_images']} test photos ({counts['test_new']} of new ones)"
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from spotter.cli import report_problems
    from spotter.whale.data import find_problems

    return report_problems(find_problems(args.data, verify_images=not args.no_open), args.data)


def _pseudo(args: argparse.Namespace) -> int:
    from spotter.progress import create_reporter
    from spotter.whale.pseudo import make_pseudo_dataset

    summary = make_pseudo_dataset(
        args.runs, args.data, args.out, args.threshold, args.margin, tta=not args.no_tta,
        reporter=create_reporter(args.quiet),
    )
    for label, key in (("top-1 probabilities", "top1_probability_quantiles"), ("margins over the runner-up", "margin_quantiles")):
        if summary.get(key):
            quantiles = ", ".join(f"{q} {v:.3f}" for q, v in summary[key].items())
            print(f"{label} of the test photos by quantile: {quantiles}")
    correct = f", {summary['pseudo_correct']} right by test_labels.csv" if "pseudo_correct" in summary else ""
    print(
        f"wrote {args.out}: {summary['train_photos']} train + {summary['pseudo_photos']} pseudo-labelled test photos "
        f"of {summary['pseudo_individuals']} individuals{correct}"
    )
    print(f"next round: spotter whale train {args.out}")
    return 0


def _index(args: argparse.Namespace) -> int:
    from spotter.progress import create_reporter
    from spotter.whale.service import index_catalogue

    update = index_catalogue(args.run, args.catalogue, csv=args.csv, out=args.out, reporter=create_reporter(args.quiet))
    d = update.index.description
    print(f"index: {update.index.folder} ({d['photos']} photos of {d['individuals']} individuals; {update.embedded} "
          f"embedded, {update.reused} reused, {update.dropped} dropped, in {update.seconds:.1f} s)")
    return 0


def _match(args: argparse.Namespace) -> int:
    from spotter.progress import create_reporter
    from spotter.whale.service import match_with_run

    matches, out, sheet = match_with_run(
        args.run, args.photos, index=args.index, top=args.top, out=args.out, bboxes=args.bboxes,
        reporter=create_reporter(args.quiet),
    )
    for match in matches:
        print(f"{match.photo}{'  LOOKS NEW' if match.looks_new else ''}")
        for c in match.candidates:
            if c.probability is None:
                print(f"  {c.rank}. new_individual  (the answers after it are below p {match.new_threshold:.3f})")
            else:
                print(f"  {c.rank}. {c.individual_id}  p {c.probability:.3f}  ({c.catalogue_photo})")
    from spotter.whale.service import SHEET_PHOTOS

    print(f"answers: {out}")
    drawn = f" (the first {SHEET_PHOTOS} of {len(matches)} photos)" if len(matches) > SHEET_PHOTOS else ""
    print(f"sheet: {sheet}{drawn}")
    return 0


def _review(args: argparse.Namespace) -> int:
    import getpass
    import sys
    import threading
    import webbrowser

    from spotter.progress import create_reporter
    from spotter.whale.review.app import create_app, listen_socket, serve
    from spotter.whale.review.session import open_review
    from spotter.whale.service import default_index

    sock = listen_socket(args.port)
    try:
        session = open_review(
            args.run, args.index or default_index(args.run), args.photos, args.user or getpass.getuser(),
            bboxes=args.bboxes, decisions=args.decisions, top=args.top, reporter=create_reporter(args.quiet),
        )
        for line in session.skipped_lines:
            print(f"spotter: warning: {session.log.path}: line {line} is not a whole record (a write cut short) and "
                  "was ignored", file=sys.stderr)
        for label, photos in (("put back in", session.sync.added), ("taken out of", session.sync.removed)):
            if photos:
                print(f"{len(photos)} photo(s) {label} the index to match the decisions log")
        for photo in session.sync.missing:
            print(f"spotter: warning: {photo}: confirmed in the decisions log but no longer on disk", file=sys.stderr)
        counts = session.counts()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        print(f"review: {url} ({len(session.items)} photos, {counts['open']} open; decisions: {session.log.path}); "
              "Ctrl+C stops", flush=True)
        if not args.no_browser:
            threading.Timer(0.5, webbrowser.open, [url]).start()
        try:
            serve(create_app(session), sock)
        except KeyboardInterrupt:  # uvicorn stops cleanly on Ctrl+C, then raises it again for the caller
            pass
    finally:
        sock.close()
    print(f"stopped; decisions: {session.log.path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from spotter.whale.report import write_report

    print(f"report: {write_report(args.run, args.data)}")
    return 0
