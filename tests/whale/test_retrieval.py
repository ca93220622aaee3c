import numpy as np
import pytest

from spotter.whale.retrieval import CosineIndex, individual_scores, l2_normalize, top_individuals


def _unit(*angles_deg):
    a = np.deg2rad(np.array(angles_deg, dtype=np.float64))
    return np.stack([np.cos(a), np.sin(a)], 1)


def test_l2_normalize_copies_into_float32():
    x = np.arange(6, dtype=np.float64).reshape(3, 2)[:, ::-1]  # non-contiguous float64
    y = l2_normalize(x)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    assert np.allclose(np.linalg.norm(y[1:], axis=1), 1.0)
    assert x[1, 0] == 3.0  # input untouched


def test_k_beyond_gallery_gives_no_minus_one():
    index = CosineIndex(_unit(0, 90) * 3)
    sims, ids = index.search(_unit(10), k=10)
    assert ids.shape == (1, 2) and (ids >= 0).all()
    assert ids[0].tolist() == [0, 1]
    assert sims[0, 0] == pytest.approx(np.cos(np.deg2rad(10)), abs=1e-6)


def test_minus_one_neighbours_are_ignored():
    sims = np.array([[0.9, 0.5, -3.4e38]], np.float32)
    ids = np.array([[1, 0, -1]])
    scores = individual_scores(sims, ids, np.array([0, 1]), num_classes=3)
    assert scores[0].tolist() == pytest.approx([0.5, 0.9, 0.5])  # class 2 unseen: filled with the lowest real sim


def test_per_individual_max_and_ranking():
    gallery = _unit(0, 5, 40, 90, 180)
    labels = np.array([0, 0, 1, 2, 3])
    result = top_individuals(_unit(3), gallery, labels, k=10, top=3)
    assert result.labels[0].tolist() == [0, 1, 2]
    assert result.scores[0, 0] == pytest.approx(np.cos(np.deg2rad(2)), abs=1e-6)  # max over id 0's photos
    assert (np.diff(result.scores[0]) <= 0).all()


def test_flipped_gallery_and_query():
    gallery, flipped = _unit(0, 90), _unit(60, 150)
    labels = np.array([0, 1])
    plain = top_individuals(_unit(130), gallery, labels, k=4, top=2)
    assert plain.labels[0, 0] == 1
    with_flips = top_individuals(_unit(55), gallery, labels, k=4, top=2, gallery_flipped=flipped)
    assert with_flips.labels[0, 0] == 0  # matched through id 0's flipped photo at 60°
    averaged = top_individuals(_unit(0), gallery, labels, k=4, top=2, queries_flipped=_unit(90))
    assert averaged.scores[0].tolist() == pytest.approx([0.5, 0.5], abs=1e-6)


def test_head_mixing_changes_order():
    gallery, labels = _unit(0, 30), np.array([0, 1])
    head = np.array([[0.0, 1.0]])
    knn_only = top_individuals(_unit(10), gallery, labels, k=2, top=2)
    mixed = top_individuals(_unit(10), gallery, labels, k=2, top=2, head_scores=head, head_weight=0.5)
    assert knn_only.labels[0, 0] == 0 and mixed.labels[0, 0] == 1


def test_batches_agree_with_one_pass():
    rng = np.random.default_rng(0)
    gallery, queries = rng.normal(size=(50, 8)), rng.normal(size=(30, 8))
    labels = rng.integers(0, 12, 50)
    a = top_individuals(queries, gallery, labels, num_classes=12, k=20)
    b = top_individuals(queries, gallery, labels, num_classes=12, k=20, batch_size=7)
    assert np.array_equal(a.labels, b.labels) and np.allclose(a.scores, b.scores)
    assert a.names([f"id{i}" for i in range(12)])[0][0].startswith("id")
