import math

import pytest
import torch

from spotter.models.heads import HEADS, ArcFace, SubCenterArcFace, create_head, dynamic_margins


def _unit(*degrees) -> torch.Tensor:
    radians = torch.tensor(degrees, dtype=torch.float32).deg2rad()
    return torch.stack([torch.cos(radians), torch.sin(radians)], 1)


def _head_at(*degrees, **kwargs) -> ArcFace:
    """An ArcFace head on the plane whose class centres sit at the given angles."""
    head = ArcFace(2, len(degrees), **kwargs)
    with torch.no_grad():
        head.weight.copy_(_unit(*degrees))
    return head


def test_target_logit_is_s_cos_theta_plus_m():
    head = _head_at(0, 90, 200, scale=16.0, margins=0.3)
    x, labels = _unit(30, 100, 150), torch.tensor([0, 1, 2])  # θ to the target class: 30°, 10°, 50°
    logits = head(x, labels)
    for i, theta in enumerate((30, 10, 50)):
        assert logits[i, labels[i]].item() == pytest.approx(16.0 * math.cos(math.radians(theta) + 0.3), abs=1e-4)
        others = [c for c in range(3) if c != labels[i]]
        assert torch.allclose(logits[i, others], 16.0 * head.cosine(x)[i, others], atol=1e-5)


def test_no_labels_gives_plain_cosine_logits():
    torch.manual_seed(0)
    head = ArcFace(4, 3, scale=10.0)
    x = torch.randn(2, 4)
    assert torch.allclose(head(x), 10.0 * head.cosine(x))
    assert head.cosine(x).abs().max() <= 1.0 + 1e-6


def test_per_class_margins_apply_to_their_class():
    head = _head_at(0, 90, scale=1.0, margins=torch.tensor([0.1, 0.5]))
    x = _unit(40)  # 40° from class 0, 50° from class 1
    assert head(x, torch.tensor([0]))[0, 0].item() == pytest.approx(math.cos(math.radians(40) + 0.1), abs=1e-5)
    assert head(x, torch.tensor([1]))[0, 1].item() == pytest.approx(math.cos(math.radians(50) + 0.5), abs=1e-5)


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
    torch.manual_seed(0)
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


@pytest.mark.parametrize("name", sorted(HEADS))
def test_registry_and_gradients(name):
    torch.manual_seed(0)
    head = create_head(name, 8, 4, subcenters=3)
    assert head.weight.shape == ((4 * 3, 8) if name == "subcenter" else (4, 8))  # plain ArcFace: one centre
    x = torch.randn(5, 8, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(head(x, torch.tensor([0, 1, 2, 3, 0])), torch.tensor([0, 1, 2, 3, 0]))
    loss.backward()
    assert torch.isfinite(x.grad).all() and head.weight.grad is not None
    with pytest.raises(ValueError):
        create_head("nope", 8, 4)
