import numpy as np
import pytest

from spotter.metrics import NEW_INDIVIDUAL as NEW
from spotter.metrics import map_at_5
from spotter.whale.config import THRESHOLD_MODES, WhaleRetrievalConfig
from spotter.whale.threshold import (
    THRESHOLD_POLICIES,
    RankedQueries,
    best_threshold,
    best_thresholds_by_group,
    create_threshold_policy,
    insert_new_individual,
    map_by_threshold,
    relabel_unseen,
    threshold_for_new_ratio,
    thresholds_for,
)


def map_with_threshold(candidates, scores, truths, threshold) -> float:
    """MAP@5 after inserting new_individual, the literal way (what `map_by_threshold` computes in closed form)."""
    return map_at_5(list(truths), insert_new_individual(candidates, scores, threshold))

CANDIDATES = [["a", "b", "c", "d", "e"], ["b", "a", "c", "d", "e"], ["c", "a", "b", "d", "e"], ["d", "e", "a", "b", "c"]]
SCORES = np.array(
    [[0.9, 0.5, 0.4, 0.3, 0.2], [0.8, 0.7, 0.3, 0.2, 0.1], [0.4, 0.35, 0.3, 0.2, 0.1], [0.3, 0.25, 0.2, 0.1, 0.0]]
)
TRUTHS = ["a", "a", NEW, NEW]  # query 1 has its id at rank 2, queries 3 and 4 are new


def test_insert_at_first_score_below():
    out = insert_new_individual(CANDIDATES, SCORES, 0.6)
    assert out[0] == ["a", NEW, "b", "c", "d"]
    assert out[1] == ["b", "a", NEW, "c", "d"]
    assert out[2][0] == NEW and out[3][0] == NEW
    assert insert_new_individual(CANDIDATES[:1], SCORES[:1], 0.1)[0] == ["a", "b", "c", "d", "e"]  # all clear it
    assert insert_new_individual([["a"]], np.array([[0.9]]), 0.5)[0] == ["a", NEW]  # short lists get it appended
    per_query = insert_new_individual(CANDIDATES[:2], SCORES[:2], np.array([0.95, 0.0]))
    assert per_query[0][0] == NEW and NEW not in per_query[1]


def test_closed_form_map_matches_literal_map():
    thresholds = np.linspace(-0.1, 1.0, 45)
    fast = map_by_threshold(CANDIDATES, SCORES, TRUTHS, thresholds)
    slow = [map_with_threshold(CANDIDATES, SCORES, TRUTHS, t) for t in thresholds]
    assert np.allclose(fast, slow)


def test_best_threshold_on_hand_made_case():
    # 0.4 < thr <= 0.7 keeps "a" at rank 2 for query 1 and puts new first for queries 3 and 4
    thr, score = best_threshold(CANDIDATES, SCORES, TRUTHS)
    assert 0.4 < thr <= 0.7
    assert score == pytest.approx((1 + 0.5 + 1 + 1) / 4)
    assert map_with_threshold(CANDIDATES, SCORES, TRUTHS, thr) == pytest.approx(score)
    assert map_with_threshold(CANDIDATES, SCORES, TRUTHS, 0.75) < score  # too high: query 1 loses rank 2


def test_per_group_thresholds_beat_global():
    candidates = [["a", "b"], ["b", "a"], ["c", "d"], ["d", "c"]]
    scores = np.array([[0.9, 0.1], [0.5, 0.1], [0.3, 0.1], [0.2, 0.1]])
    truths = ["a", NEW, "c", NEW]  # group x: split 0.9/0.5; group y: split 0.3/0.2
    groups = ["x", "x", "y", "y"]
    table, overall = best_thresholds_by_group(candidates, scores, truths, groups, min_queries=1)
    assert 0.5 < table["x"] <= 0.9 and 0.2 < table["y"] <= 0.3
    per_group = map_with_threshold(candidates, scores, truths, thresholds_for(groups, table, overall))
    assert per_group == 1.0 > map_with_threshold(candidates, scores, truths, overall)
    assert thresholds_for(["z"], table, overall)[0] == overall


def test_threshold_for_new_ratio():
    best = np.linspace(0, 1, 200)[:, None]
    thr = threshold_for_new_ratio(best, 0.165)
    assert np.mean(best[:, 0] < thr) == pytest.approx(0.165, abs=1 / 200)
    assert np.mean(best[:, 0] < threshold_for_new_ratio(best, 0.0)) == 0.0
    assert np.mean(best[:, 0] < threshold_for_new_ratio(best, 1.0)) == 1.0
    with pytest.raises(ValueError):
        threshold_for_new_ratio(best, 1.5)


def test_relabel_unseen():
    assert relabel_unseen(["a", "z"], {"a", "b"}) == ["a", NEW]


def test_short_lists_match_literal_map():
    candidates = [["a", "b"], ["b"]]
    scores = np.array([[0.9, 0.2, -np.inf], [0.8, -np.inf, -np.inf]])
    truths = [NEW, NEW]
    thresholds = np.array([-np.inf, 0.1, 0.5, 0.85, 1.0])
    fast = map_by_threshold(candidates, scores, truths, thresholds)
    slow = [map_with_threshold(candidates, scores, truths, t) for t in thresholds]
    assert np.allclose(fast, slow)


# the per-species case below: group x splits its known/new queries at 0.9/0.5, group y at 0.3/0.2, so no one
# threshold separates both groups
GROUPED = RankedQueries(
    names=[["a", "b"], ["b", "a"], ["c", "d"], ["d", "c"]],
    scores=np.array([[0.9, 0.1], [0.5, 0.1], [0.3, 0.1], [0.2, 0.1]]),
    groups=["x", "x", "y", "y"],
    truths=["a", NEW, "c", NEW],
)


def test_config_names_every_policy_of_the_registry():
    assert set(THRESHOLD_MODES) == set(THRESHOLD_POLICIES)


@pytest.mark.parametrize("name", sorted(THRESHOLD_POLICIES))
def test_every_policy_fits_on_out_of_fold_queries_and_applies_to_new_ones(name):
    retrieval = WhaleRetrievalConfig(new_ratio=0.5, min_species_queries=1)
    policy = create_threshold_policy(name, retrieval)
    record = policy.fit(GROUPED)
    assert isinstance(record, dict)
    thresholds = np.broadcast_to(policy.thresholds(RankedQueries(GROUPED.names, GROUPED.scores, GROUPED.groups)), (4,))
    lists = insert_new_individual(GROUPED.names, GROUPED.scores, thresholds)
    new_first = np.mean([row[0] == NEW for row in lists])
    if name == "per_species":  # each group split where its own queries split: every query right
        assert map_with_threshold(GROUPED.names, GROUPED.scores, GROUPED.truths, thresholds) == 1.0
        assert record["oof_map_at_5_per_species"] == 1.0 and set(record["species_thresholds"]) == {"x", "y"}
    elif name == "best":  # one threshold for all: the best single split gets 3 of 4 queries first-right
        assert record["oof_map_at_5"] == pytest.approx(map_with_threshold(GROUPED.names, GROUPED.scores,
                                                                          GROUPED.truths, thresholds))
        assert record["oof_map_at_5"] < 1.0
    elif name == "oof_ratio":  # 4 photos are too few for a share: the best single threshold, as `best`
        assert thresholds[0] == record["threshold"] and record["new_ratio"] == pytest.approx(new_first)
    else:  # the target share of new-first answers, whatever the truths
        assert new_first == pytest.approx(retrieval.new_ratio)


def test_unknown_policy():
    with pytest.raises(ValueError, match="unknown threshold policy"):
        create_threshold_policy("median", WhaleRetrievalConfig())


def test_oof_ratio_carries_the_share_not_the_threshold():
    # fitted where the best threshold puts half of the queries new-first; test scores sit far lower (another
    # model, other conditions): the best threshold would call every test photo new, the carried share half
    policy = create_threshold_policy("oof_ratio", WhaleRetrievalConfig())
    record = policy.fit(GROUPED)
    best, _ = best_threshold(GROUPED.names, GROUPED.scores, GROUPED.truths)
    assert record["threshold"] == best
    share = np.mean([row[0] == NEW for row in insert_new_individual(GROUPED.names, GROUPED.scores, best)])
    assert record["new_ratio"] == share and 0 < share < 1
    lower = np.linspace(0.05, -0.5, 80)[:, None] + np.array([[0.0, -0.1]])
    names = [["a", "b"]] * len(lower)
    assert np.mean(lower[:, 0] < best) == 1.0
    thresholds = policy.thresholds(RankedQueries(names, lower, ["x"] * len(lower)))
    new_first = np.mean([row[0] == NEW for row in insert_new_individual(names, lower, thresholds)])
    assert new_first == pytest.approx(share)
    restored = create_threshold_policy("oof_ratio", WhaleRetrievalConfig()).restore(record)
    assert restored.thresholds(RankedQueries(names, lower, ["x"] * len(lower))) == thresholds
    # a few photos (one `whale match` photo) carry no share: they get the best out-of-fold threshold
    assert restored.thresholds(RankedQueries(names[:1], lower[:1], ["x"])) == best
