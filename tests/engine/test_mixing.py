import numpy as np
import pytest
import torch

from spotter.engine.mixing import MIXERS, CutMix, Mixup, create_mixer, or_labels


def _batch():
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 1, 8, 8).clone()
    y = torch.tensor([1.0, 0.0, 0.0, 1.0])
    return x, y


def _expected_draws(seed: int, n: int):
    rng = np.random.default_rng(seed)
    return float(rng.beta(1.0, 1.0)), rng.permutation(n)


def test_mixup_blends_inputs_and_targets_by_lambda() -> None:
    x, y = _batch()
    lam, perm = _expected_draws(0, 4)
    mixed_x, mixed_y = Mixup(1.0)(x, y, np.random.default_rng(0))
    assert torch.allclose(mixed_x, lam * x + (1 - lam) * x[perm])
    assert torch.allclose(mixed_y, lam * y + (1 - lam) * y[perm])


def test_or_mixup_targets_are_probabilistic_or() -> None:
    x, y = _batch()
    _, perm = _expected_draws(0, 4)
    _, mixed_y = Mixup(1.0, or_targets=True)(x, y, np.random.default_rng(0))
    expected = torch.tensor([1.0 if (y[i] or y[perm[i]]) else 0.0 for i in range(4)])
    assert torch.equal(mixed_y, expected)
    assert torch.allclose(or_labels(torch.tensor([0.3]), torch.tensor([0.5])), torch.tensor([0.65]))


def test_cutmix_targets_follow_pasted_area() -> None:
    x, y = _batch()
    rng = np.random.default_rng(5)
    rng.beta(1.0, 1.0), rng.integers(8), rng.integers(8)  # the draws CutMix makes before its permutation
    perm = rng.permutation(4)
    mixed_x, mixed_y = CutMix(1.0)(x, y, np.random.default_rng(5))
    assert (perm != np.arange(4)).any()
    for i in range(4):
        # every image holds its own value outside the box and its partner's inside
        kept = (mixed_x[i] == x[i, 0, 0, 0]).float().mean().item() if perm[i] != i else 1.0
        assert 0 < kept <= 1
        assert mixed_y[i].item() == pytest.approx(kept * y[i].item() + (1 - kept) * y[perm[i]].item())


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_every_mixer_keeps_shapes(name) -> None:
    x, y = _batch()
    mixed_x, mixed_y = create_mixer(name, 0.4)(x, y, np.random.default_rng(1))
    assert mixed_x.shape == x.shape and mixed_y.shape == y.shape
    assert ((mixed_y >= 0) & (mixed_y <= 1)).all()


def test_none_and_unknown() -> None:
    from spotter.errors import SpotterError

    assert create_mixer("none", 1.0) is None
    with pytest.raises(SpotterError, match="unknown mixing"):
        create_mixer("mixdown", 1.0)
