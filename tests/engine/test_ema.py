import pytest
import torch
from timm.utils import ModelEmaV3
from torch import nn


def test_ema_moves_toward_weights_at_configured_rate() -> None:
    model = nn.Linear(4, 2)
    decay = 0.9
    ema = ModelEmaV3(model, decay=decay)  # as the training loop builds it
    start = ema.module.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=10)  # the loop passes the optimizer step; past step 1 the decay is the configured one
    expected = decay * start + (1 - decay) * model.weight.detach()
    assert torch.allclose(ema.module.weight, expected, atol=1e-6)
    ema.update(model, step=11)
    assert torch.allclose(ema.module.weight, decay * expected + (1 - decay) * model.weight.detach(), atol=1e-6)


def test_ema_first_step_copies_weights() -> None:
    model = nn.Linear(4, 2)
    ema = ModelEmaV3(model, decay=0.999)
    with torch.no_grad():
        model.weight.mul_(3)
    ema.update(model, step=1)
    assert torch.allclose(ema.module.weight, model.weight)
