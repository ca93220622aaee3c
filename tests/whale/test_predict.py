"""The whale prediction pieces on hand-made embeddings: out-of-fold ranking, calibration, submissions."""

import numpy as np
import pandas as pd
import pytest

from spotter.config import load_config
from spotter.errors import SpotterError
from spotter.metrics import NEW_INDIVIDUAL as NEW
from spotter.whale.calibration import fit_run_calibration
from spotter.whale.config import WhaleConfig
from spotter.whale.predict import submission_frame
from spotter.whale.ranking import rank_out_of_fold
from spotter.whale.views import FoldModel, Views


def _unit(*angles_deg):
    a = np.deg2rad(np.array(angles_deg, dtype=np.float64))
    return np.stack([np.cos(a), np.sin(a)], 1).astype(np.float32)


def _views(embeddings: np.ndarray, vocab_size: int) -> Views:
    return Views(embeddings, None, np.zeros((len(embeddings), vocab_size), np.float32), np.arange(vocab_size))


ROWS = pd.DataFrame(
    {
        "image": [f"p{i}.jpg" for i in range(6)],
        "species": ["s"] * 6,
        "individual_id": ["a", "b", "c", "a", "b", "zz"],  # zz is seen once: new whichever side holds it out
        "fold": [0, 0, 0, 1, 1, 1],
    }
)
EMBEDDINGS = _unit(0, 60, 120, 2, 58, 180)
CFG = load_config(WhaleConfig, None, ["retrieval.k=5", "retrieval.head_weight=0", "retrieval.flip_tta=false"])


def test_out_of_fold_ranking_relabels_ids_unseen_on_the_train_side():
    vocab = sorted(set(ROWS["individual_id"]))
    views = _views(EMBEDDINGS, len(vocab))
    models = [FoldModel(f"fold{k}", k, None, (ROWS["fold"] != k).to_numpy()) for k in (0, 1)]
    oof = rank_out_of_fold([(m, views) for m in models], ROWS, vocab, CFG)
    assert oof.images == ["p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg", "p4.jpg", "p5.jpg"]
    # fold 0's queries a, b, c against train side {a, b, zz}: c is new; fold 1's a, b, zz against {a, b, c}: zz new
    assert oof.truths == ["a", "b", NEW, "a", "b", NEW]
    names = oof.candidates.names(vocab)
    assert [n[0] for n in names] == ["a", "b", "zz", "a", "b", "c"]  # nearest by angle among each train side
    assert oof.candidates.scores.shape == (6, 4)  # top 5 of a 4-id vocabulary

    calibration = fit_run_calibration(oof, oof, vocab, {"a": "s", "b": "s", "c": "s", "zz": "s"}, CFG.retrieval)
    record = calibration.record
    assert record["oof_map_at_5"] == pytest.approx(1.0)  # new ones score cos(60°), known ones cos(2°)
    assert record["oof_new_ratio"] == pytest.approx(2 / 6) and record["oof_map_at_5_no_new"] < 1.0
    assert record["oof_new_first_ratio"] == pytest.approx(2 / 6)
    p_new, p_known = calibration.scores(np.cos(np.deg2rad([60.0, 2.0])))
    assert p_new < calibration.threshold <= p_known  # the threshold is a probability between the two kinds


def test_a_full_fit_has_no_out_of_fold_queries_so_whale_configs_must_train_a_fold():
    vocab = sorted(set(ROWS["individual_id"]))
    full = FoldModel("full", -1, None, np.ones(len(ROWS), bool))
    assert rank_out_of_fold([(full, _views(EMBEDDINGS, len(vocab)))], ROWS, vocab, CFG) is None
    with pytest.raises(SpotterError, match="train_folds.*at least one cross-validation fold"):
        load_config(WhaleConfig, None, ["train_folds=[-1]"])
    assert load_config(WhaleConfig, None, ["train_folds=[0,-1]"]).train_folds == [0, -1]


def test_submission_frame():
    frame = submission_frame(["x.jpg"], [["a", NEW, "b", "c", "d", "e"]])
    assert frame["predictions"][0] == "a new_individual b c d"
