"""Local-feature matching: a photo and a moved copy agree, unrelated photos do not, boxes crop, the drawing's size,
and re-ranking a shortlist by inliers (only when a fusion is given)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from spotter.errors import SpotterError
from spotter.whale.local_features import (
    CAPTION,
    LINE_COLOURS,
    FeatureSettings,
    draw_correspondences,
    match_features,
    shortlist_inliers,
)
from spotter.whale.ranking import InlierFusion, fit_inlier_fusion
from spotter.whale.threshold import BestMap

SIZE = 240


def textured_photo(seed: int, size: int = SIZE) -> Image.Image:
    """A photo of random shapes: corners and blobs for a detector to find, different for each seed."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.uniform(0, size, 2)
        w, h = rng.uniform(8, size / 5, 2)
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            draw.ellipse([x, y, x + w, y + h], fill=colour)
        else:
            draw.polygon([tuple(p) for p in rng.uniform([x, y], [x + w, y + h], (3, 2))], fill=colour)
    return image


def moved(image: Image.Image) -> Image.Image:
    """The same scene rotated, reduced and cropped: another sighting of it."""
    turned = image.rotate(18, resample=Image.BICUBIC, expand=False, fillcolor=(90, 90, 90))
    small = turned.resize((int(SIZE * 0.8), int(SIZE * 0.8)), Image.LANCZOS)
    return small.crop((10, 16, small.width - 6, small.height - 4))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("local_features")
    paths = {}
    for name, image in {"a": textured_photo(1), "a_moved": moved(textured_photo(1)), "b": textured_photo(2)}.items():
        paths[name] = folder / f"{name}.png"
        image.save(paths[name])
    # a wide photo: scene a on the left, scene b on the right
    wide = Image.new("RGB", (2 * SIZE, SIZE))
    wide.paste(textured_photo(1), (0, 0))
    wide.paste(textured_photo(2), (SIZE, 0))
    paths["wide"] = folder / "wide.png"
    wide.save(paths["wide"])
    return paths


def test_a_moved_copy_matches_and_an_unrelated_photo_does_not(photos):
    same = match_features(photos["a"], None, photos["a_moved"], None)
    other = match_features(photos["a"], None, photos["b"], None)
    assert same.inliers >= 15
    assert other.inliers <= 3
    assert same.tentative >= same.inliers and same.points_a.shape == same.points_b.shape == (same.tentative, 2)
    # inliers first: the fitted similarity maps them onto their partners (within RANSAC's distance)
    pa, pb = same.inlier_pairs
    mapped = pa * 1.0 @ same.transform[:, :2].T + same.transform[:, 2]  # photos under max_side: detection = pixels
    assert np.median(np.linalg.norm(mapped - pb, axis=1)) < 0.02 * SIZE


@pytest.mark.parametrize("detector, geometry", [("sift", "affine"), ("sift", "homography"), ("orb", "similarity")])
def test_every_named_part_tells_same_from_other(photos, detector, geometry):
    settings = FeatureSettings(detector=detector, geometry=geometry)
    same = match_features(photos["a"], None, photos["a_moved"], None, settings).inliers
    other = match_features(photos["a"], None, photos["b"], None, settings).inliers
    assert same >= 15 and same > 3 * max(other, 1)


def test_boxes_crop_the_photo_before_matching(photos):
    left, right = (0, 0, SIZE, SIZE), (SIZE, 0, 2 * SIZE, SIZE)
    on_a = match_features(photos["wide"], left, photos["a_moved"], None)
    on_b = match_features(photos["wide"], right, photos["a_moved"], None)
    assert on_a.inliers >= 15 and on_b.inliers <= 3
    # points are in the cropped photo's pixels: the right half's crop starts at x = 0
    on_b_itself = match_features(photos["wide"], right, photos["b"], None)
    assert on_b_itself.inliers >= 15 and on_b_itself.points_a[:, 0].max() < SIZE * 1.1


def test_a_small_max_side_still_matches(photos):
    same = match_features(photos["a"], None, photos["a_moved"], None, FeatureSettings(max_side=160))
    assert same.inliers >= 10
    assert same.points_a[:, 0].max() > 160  # reported in full-resolution pixels


def test_images_are_taken_as_they_are_and_bad_input_is_refused(photos, tmp_path):
    assert match_features(textured_photo(1), None, moved(textured_photo(1)), None).inliers >= 15
    with pytest.raises(SpotterError, match="crop"):
        match_features(textured_photo(1), (0, 0, 10, 10), photos["b"], None)
    with pytest.raises(SpotterError, match="not found"):
        match_features(tmp_path / "missing.png", None, photos["b"], None)
    with pytest.raises(SpotterError, match="detector"):
        FeatureSettings(detector="surf")


def test_blank_photos_have_no_inliers():
    blank = Image.new("RGB", (100, 100), (40, 80, 120))
    assert match_features(blank, None, blank, None).inliers == 0


def test_drawing_size_and_lines(photos):
    drawing = draw_correspondences(photos["a"], None, photos["a_moved"], None)
    moved_width, moved_height = Image.open(photos["a_moved"]).size
    gap = 9  # width // 100
    height = int((900 - gap) / (1 + moved_width / moved_height))  # both photos at one height
    assert drawing.size == (900, height + CAPTION) and 400 < height < 500
    colours = {tuple(c) for c in np.asarray(drawing).reshape(-1, 3)[::7]}
    assert set(LINE_COLOURS) & colours
    wide = draw_correspondences(photos["wide"], None, photos["b"], (0, 0, SIZE / 2, SIZE), width=600, caption="")
    assert wide.width == 600 and wide.height < 600 / 2.5  # a 2:1 photo beside a ~1:2 crop, no caption strip


def test_shortlist_inliers_follow_the_shortlists(photos):
    inliers = shortlist_inliers([(photos["a"], None), (photos["b"], None)],
                                [[(photos["b"], None), (photos["a_moved"], None)], [(None, None)]])
    assert inliers.shape == (2, 2)
    assert inliers[0, 1] >= 15 and inliers[0, 0] <= 3 and inliers[1].tolist() == [0, 0]


# ----------------------------------------------------------------------------------------------- re-ranking


def fusion(inlier_weight: float, threshold: float = 0.3) -> InlierFusion:
    return InlierFusion((10.0, inlier_weight, -8.0), BestMap().restore({"threshold": threshold}), 2, FeatureSettings(),
                        {})


def test_many_inliers_lift_a_candidate_above_a_slightly_higher_score():
    names, scores, inliers = [["x", "y"]], np.array([[0.80, 0.78]]), np.array([[0, 40]])
    lifted = fusion(2.0).rerank(names, scores, inliers)
    assert lifted.names == [["y", "x"]] and lifted.inliers.tolist() == [[40, 0]]
    assert lifted.probabilities[0, 0] > lifted.probabilities[0, 1]
    assert lifted.lists[0][0] == "y" and np.all(np.diff(lifted.probabilities[0]) <= 0)
    # a fusion that gives inliers no weight keeps the global order
    assert fusion(0.0).rerank(names, scores, inliers).names == [["x", "y"]]


def test_the_fused_threshold_inserts_new_individual():
    names, scores = [["x", "y"], ["x", "y"]], np.array([[0.5, 0.4], [0.5, 0.4]])
    reranked = fusion(2.0, threshold=0.5).rerank(names, scores, np.array([[0, 0], [60, 0]]))
    assert reranked.lists[0][0] == "new_individual" and reranked.lists[1][:2] == ["x", "new_individual"]


def test_fit_learns_that_inliers_tell_right_from_wrong(tmp_path):
    from spotter.whale.config import WhaleConfig

    rng = np.random.default_rng(0)
    count, k = 300, 4
    scores = np.sort(rng.uniform(0.3, 0.7, (count, k)), axis=1)[:, ::-1].copy()
    names = [[f"id{i}_{j}" for j in range(k)] for i in range(count)]
    right = rng.choice(k + 1, count, p=[0.4, 0.2, 0.1, 0.1, 0.2])  # k: an animal not in the shortlist
    truths = [names[i][r] if r < k else "new_individual" for i, r in enumerate(right)]
    inliers = rng.integers(0, 4, (count, k))
    inliers[np.arange(count)[right < k], right[right < k]] += 25  # the right photo agrees
    retrieval = WhaleConfig().retrieval
    fitted = fit_inlier_fusion(names, scores, inliers, truths, retrieval, FeatureSettings())
    assert fitted.coef[1] > 0.5 and 0 < fitted.record["threshold"] < 1
    ranked = fitted.rerank(names, scores, inliers)
    from spotter.metrics import map_at_5

    assert map_at_5(truths, ranked.lists) > 0.9
    fitted.save(tmp_path / "fusion.json")
    again = InlierFusion.load(tmp_path / "fusion.json", retrieval)
    assert again.coef == pytest.approx(fitted.coef) and again.settings == fitted.settings
    assert again.rerank(names, scores, inliers).lists == ranked.lists
    # inliers that say nothing get no weight (never a negative one)
    noise = fit_inlier_fusion(names, scores, rng.integers(0, 30, (count, k)), truths, retrieval, FeatureSettings())
    assert noise.coef[1] < 0.3


# ----------------------------------------------------------------------------------------------- in the matcher


def stub_matcher(tmp_path, photos, query_vector, rerank):
    """A matcher whose embeddings are given (no model): the query is a little closer to x (an unrelated photo)
    than to y (the same scene)."""
    from spotter.engine.rundir import RunDir
    from spotter.whale.calibration import RunCalibration, ScoreCalibration
    from spotter.whale.config import WhaleConfig
    from spotter.whale.index import CatalogueIndex
    from spotter.whale.matcher import Matcher
    from spotter.whale.views import Views

    class StubMatcher(Matcher):
        fingerprint = "stub"

        def embed(self, photos, boxes, reporter=None, what=""):
            return Views(np.tile(query_vector, (len(photos), 1)), None, np.zeros((len(photos), 0), np.float32),
                         np.zeros(0, np.int64))

    cfg = WhaleConfig()
    cfg.retrieval.flip_tta, cfg.retrieval.head_weight = False, 0.0
    calibration = RunCalibration(ScoreCalibration("logistic", (10.0, -5.0)), BestMap().restore({"threshold": 0.2}),
                                 {"threshold": 0.2})
    matcher = StubMatcher(RunDir(tmp_path / "run"), cfg, [], calibration, [], None, rerank)
    gallery = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    index = CatalogueIndex(tmp_path, pd.DataFrame({"image": ["b.png", "a.png"], "individual_id": ["x", "y"],
                                                   "path": [str(photos["b"]), str(photos["a"])], "sha1": ["", ""],
                                                   "box": ["", ""]}),
                           gallery, None, {"fingerprint": "stub"})
    return matcher, index


@pytest.mark.parametrize("rerank", [None, fusion(2.0)], ids=["off", "on"])
def test_the_matcher_reranks_only_with_a_fusion(tmp_path, photos, rerank):
    from spotter.whale.matcher import matches_frame
    from spotter.whale.sheet import write_match_sheet

    vector = np.array([0.80, 0.78], np.float32)  # cosine 0.80 with x, 0.78 with y (not normalized: plain dot)
    matcher, index = stub_matcher(tmp_path, photos, vector, rerank)
    [match] = matcher.match(index, pd.DataFrame({"path": [str(photos["a_moved"])]}), top=3)
    known = match.known
    if rerank is None:
        assert [c.individual_id for c in known] == ["x", "y"] and known[0].inliers is None
    else:
        assert [c.individual_id for c in known] == ["y", "x"]
        assert known[0].inliers >= 15 and known[0].catalogue_photo == str(photos["a"])
    frame = matches_frame([match])
    assert "inliers" in frame and frame["inliers"].notna().any() == (rerank is not None)
    sheet = write_match_sheet([match], tmp_path / "sheet.png", thumb=80)
    columns = 1 + len(match.candidates)
    assert Image.open(sheet).size == (columns * 80 + 2 * 80, 80 + 34)


def test_a_damaged_fusion_file_is_one_line_naming_it(tmp_path):
    from spotter.whale.config import WhaleConfig

    path = tmp_path / "inlier_fusion.json"
    assert InlierFusion.load(path, WhaleConfig().retrieval) is None
    path.write_text('{"coef": [1, 2], "shortlist": 10, "settings": {}, "mode": "best", "threshold": 0.3}')
    with pytest.raises(SpotterError, match="coef") as err:
        InlierFusion.load(path, WhaleConfig().retrieval)
    assert str(path) in str(err.value)
    path.write_text('{"coef": [1, 2, 3], "shortlist": 10, "settings": {"detector": "surf"}, "mode": "best"}')
    with pytest.raises(SpotterError, match="detector") as err:
        InlierFusion.load(path, WhaleConfig().retrieval)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------------------------- a run end to end


def test_a_run_fits_its_fusion_and_match_uses_it(whale_data, tmp_path):
    """Train a tiny run, fit its re-ranking on its out-of-fold shortlists, and match through the CLI with it."""
    from spotter.cli import main
    from spotter.engine.rundir import RunDir
    from spotter.engine.runtime import Runtime
    from spotter.whale.config import WhaleConfig
    from spotter.whale.data import read_whale_data
    from spotter.whale.predict import boxes_of
    from spotter.whale.ranking import INLIER_FUSION, calibrate_inlier_fusion
    from spotter.whale.task import WhaleTask
    from spotter.whale.views import restore_fold_models, run_rows, train_views
    from tests.whale.test_task import TINY

    run_dir = tmp_path / "run"
    assert main(["--quiet", "whale", "train", str(whale_data), "--out", str(run_dir), *TINY, "train_folds=[]"]) == 0
    run = RunDir(run_dir)
    cfg = run.read_config(WhaleConfig)
    data = read_whale_data(whale_data)
    rows = run_rows(run, data)
    models = restore_fold_models(WhaleTask(), run, cfg, rows)
    boxes = boxes_of(data, cfg)
    views = train_views(run, models, rows, cfg, boxes, Runtime(cfg.mixed_precision))
    fusion = calibrate_inlier_fusion(run, list(zip(models, views)), rows, cfg, boxes, shortlist=4)
    assert (run_dir / INLIER_FUSION).is_file() and fusion.shortlist == 4
    assert fusion.coef[0] >= 0 and fusion.coef[1] >= 0 and fusion.record["queries"] == len(rows)

    out = tmp_path / "matches.csv"
    assert main(["--quiet", "whale", "index", str(run_dir), str(whale_data)]) == 0
    assert main(["--quiet", "whale", "match", str(run_dir), str(whale_data / "test_images"), "--out", str(out),
                 "--bboxes", str(whale_data / "bboxes.csv")]) == 0
    matches = pd.read_csv(out, dtype={"individual_id": str})
    known = matches[matches["individual_id"] != "new_individual"]
    assert known["inliers"].notna().all() and (known["inliers"] >= 0).all()
    for _, answers in known.groupby("photo"):
        assert answers["probability"].is_monotonic_decreasing  # ranked by the fused probability
