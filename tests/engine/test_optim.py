import math

import pytest
import torch
from torch import nn

from spotter.engine.optim import OPTIMIZERS, create_optimizer, set_lr, warmup_cosine
from spotter.errors import SpotterError


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.25),  # warmup: (step + 1) / 4
        (3, 1.0),  # last warmup step reaches the peak
        (4, 1.0),  # cosine starts at the peak
        (9, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 5 / 10))),  # halfway through the decay
        (14, 0.1),  # end of the decay: the floor
        (20, 0.1),  # past the end stays at the floor
    ],
)
def test_warmup_cosine_values(step, expected) -> None:
    assert warmup_cosine(step, total_steps=14, warmup_steps=4, min_ratio=0.1) == pytest.approx(expected)


def test_warmup_cosine_without_warmup_is_monotone() -> None:
    values = [warmup_cosine(s, 50, 0) for s in range(51)]
    assert values[0] == 1.0 and values[-1] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(values, values[1:]))


class TwoPart(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(3, 3)
        self.head = nn.Linear(3, 1)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizers_have_backbone_and_head_rates(name) -> None:
    optimizer = create_optimizer(name, TwoPart(), lr=0.1, weight_decay=0.0, head_lr_mult=10)
    rates = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert rates == {"backbone": pytest.approx(0.1), "head": pytest.approx(1.0)}
    set_lr(optimizer, 0.5)
    assert {g["name"]: g["lr"] for g in optimizer.param_groups} == {"backbone": pytest.approx(0.05), "head": pytest.approx(0.5)}
    model = TwoPart()
    optimizer = create_optimizer(name, model, lr=0.1, weight_decay=0.0)
    before = model.head.weight.detach().clone()
    model.head(model.backbone(torch.ones(2, 3))).sum().backward()
    optimizer.step()
    assert not torch.equal(before, model.head.weight)


def test_unknown_optimizer() -> None:
    with pytest.raises(SpotterError, match="unknown optimizer 'adamx'"):
        create_optimizer("adamx", TwoPart(), 0.1, 0.0)
