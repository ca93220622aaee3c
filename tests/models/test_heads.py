import math

import pytest
import torch

from spotter.models.heads import ArcFace, SubCenterArcFace, create_head, dynamic_margins


def _angles(head, x):
    return torch.acos(head.cosine(x).detach().clamp(-1, 1))


def test_target_logit_is_s_cos_theta_plus_m():
    torch.manual_seed(0)
    head = ArcFace(8, 5, scale=16.0, margins=0.3)
    x, labels = torch.randn(6, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    logits = head(x, labels)
    theta = _angles(head, x)
    for i, y in enumerate(labels):
        expected = 16.0 * math.cos(theta[i, y].item() + 0.3) if theta[i, y] + 0.3 < math.pi else None
        if expected is not None:
            assert logits[i, y].item() == pytest.approx(expected, abs=1e-4)
        others = [c for c in range(5) if c != y]
        assert torch.allclose(logits[i, others], 16.0 * head.cosine(x)[i, others], atol=1e-5)


def test_no_labels_gives_plain_cosine_logits():
    head = ArcFace(4, 3, scale=10.0)
    x = torch.randn(2, 4)
    assert torch.allclose(head(x), 10.0 * head.cosine(x))
    assert head.cosine(x).abs().max() <= 1.0 + 1e-6


def test_per_class_margins_apply_to_their_class():
    head = ArcFace(4, 2, scale=1.0, margins=torch.tensor([0.1, 0.5]))
    x = torch.randn(1, 4)
    theta = _angles(head, x)[0]
    for y, m in ((0, 0.1), (1, 0.5)):
        if theta[y] + m < math.pi:
            assert head(x, torch.tensor([y]))[0, y].item() == pytest.approx(math.cos(theta[y] + m), abs=1e-5)


def test_theta_plus_m_beyond_pi_stays_monotonic():
    head = ArcFace(2, 1, scale=1.0, margins=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0]]))
    angles = torch.linspace(2.7, math.pi, 20)  # θ + m > π for all of these (π − 0.5 ≈ 2.64)
    x = torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    with torch.no_grad():
        target = head(x, torch.zeros(20, dtype=torch.long))[:, 0]
    assert (target[1:] < target[:-1]).all()  # larger angle, lower logit: no reward for a worse embedding
    cos = torch.cos(angles)
    assert torch.allclose(target, cos - 0.5 * math.sin(0.5), atol=1e-5)


def test_easy_margin_only_where_cos_positive():
    head = ArcFace(2, 1, scale=1.0, margins=0.4, easy_margin=True)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0]]))
    x = torch.tensor([[math.cos(2.0), math.sin(2.0)], [math.cos(0.5), math.sin(0.5)]])
    out = head(x, torch.tensor([0, 0]))[:, 0]
    assert out[0].item() == pytest.approx(math.cos(2.0), abs=1e-5)
    assert out[1].item() == pytest.approx(math.cos(0.9), abs=1e-5)


def test_unlabelled_samples_get_no_margin():
    head = ArcFace(4, 3, scale=2.0, margins=0.5)
    x = torch.randn(2, 4)
    assert torch.allclose(head(x, torch.tensor([-1, -1])), head(x))


def test_dynamic_margins():
    counts = [1, 10, 100]
    m = dynamic_margins(counts, a=0.27126, lam=0.364399, b=0.05)
    expected = torch.tensor([0.27126 * n**-0.364399 + 0.05 for n in counts])
    assert torch.allclose(m, expected)
    assert m[0] > m[1] > m[2] > 0.05  # rare ids get bigger margins
    with pytest.raises(ValueError):
        dynamic_margins([0, 3], 0.3, 0.4, 0.05)
    head = ArcFace(4, 3, margins=m)
    assert torch.equal(head.margins, m) and "margins" in head.state_dict()


def test_subcenter_picks_max_centre():
    head = SubCenterArcFace(2, 2, subcenters=3, scale=1.0)
    with torch.no_grad():
        # class 0 centres at 0°, 90°, 180°; class 1 centres at 45°, 225°, 270°
        degrees = torch.tensor([0, 90, 180, 45, 225, 270], dtype=torch.float32).deg2rad()
        head.weight.copy_(torch.stack([torch.cos(degrees), torch.sin(degrees)], 1))
    x = torch.tensor([[math.cos(math.radians(80)), math.sin(math.radians(80))]])
    cos = head.cosine(x)[0]
    assert cos[0].item() == pytest.approx(math.cos(math.radians(10)), abs=1e-5)  # the 90° centre
    assert cos[1].item() == pytest.approx(math.cos(math.radians(35)), abs=1e-5)  # the 45° centre
    assert head.weight.shape == (6, 2)


@pytest.mark.parametrize("name", ["arcface", "subcenter_arcface"])
def test_registry_and_gradients(name):
    head = create_head(name, 8, 4)
    x = torch.randn(5, 8, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(head(x, torch.tensor([0, 1, 2, 3, 0])), torch.tensor([0, 1, 2, 3, 0]))
    loss.backward()
    assert torch.isfinite(x.grad).all() and head.weight.grad is not None
    with pytest.raises(ValueError):
        create_head("nope", 8, 4)
