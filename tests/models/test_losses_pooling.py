import pytest
import torch
import torch.nn.functional as F

from spotter.config import LossConfig
from spotter.models.losses import LOSSES, FocalLoss, create_loss
from spotter.models.pooling import GeM


def test_focal_equals_bce_at_gamma_zero() -> None:
    logits = torch.randn(64, generator=torch.Generator().manual_seed(0)) * 3
    targets = (torch.rand(64, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    assert FocalLoss(gamma=0.0)(logits, targets).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(logits, targets).item(), rel=1e-6
    )


def test_focal_down_weights_easy_samples() -> None:
    easy = FocalLoss(gamma=2.0)(torch.tensor([4.0]), torch.tensor([1.0]))
    hard = FocalLoss(gamma=2.0)(torch.tensor([-4.0]), torch.tensor([1.0]))
    bce_easy = F.binary_cross_entropy_with_logits(torch.tensor([4.0]), torch.tensor([1.0]))
    assert easy < bce_easy / 100 and hard > easy * 1000


def test_focal_alpha_weights_classes() -> None:
    pos = FocalLoss(0.0, alpha=0.75)(torch.tensor([0.0]), torch.tensor([1.0]))
    neg = FocalLoss(0.0, alpha=0.75)(torch.tensor([0.0]), torch.tensor([0.0]))
    assert pos.item() == pytest.approx(3 * neg.item())


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_is_finite_and_differentiable(name) -> None:
    loss_fn = create_loss(LossConfig(name=name))
    if name == "ce":
        logits, targets = torch.randn(4, 3, requires_grad=True), torch.tensor([0, 2, 1, 0])
    else:
        logits, targets = torch.randn(4, requires_grad=True), torch.tensor([0.0, 1.0, 0.3, 1.0])
    loss = loss_fn(logits, targets)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad.abs().sum() > 0


def test_gem_at_p1_is_average_pooling() -> None:
    x = torch.rand(2, 5, 7, 9) + 0.01
    assert torch.allclose(GeM(p=1.0)(x), x.mean(dim=(2, 3)), atol=1e-6)


def test_gem_approaches_max_for_large_p_and_learns_p() -> None:
    x = torch.rand(2, 3, 4, 4) + 0.01
    assert torch.allclose(GeM(p=200.0)(x), x.amax(dim=(2, 3)), rtol=0.05)
    gem = GeM(p=3.0)
    gem(x).sum().backward()
    assert gem.p.grad is not None and not GeM(p=4.0, learnable=False).p.requires_grad
