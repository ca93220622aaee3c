"""Turn an embedding network into the `photos -> (N, D) array` function that catalogues and retrieval take."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from spotter.whale.data import IMAGENET_MEAN, IMAGENET_STD, build_transform


def create_embedder(
    model: nn.Module,
    image_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    flip: bool = False,
    device: str | torch.device = "cpu",
):
    """An `EmbedFn` running `model` (images → (N, D) embeddings) in eval mode without gradients.

    Args:
        model: Maps a normalized NCHW batch to embeddings.
        image_size: Side the photos are resized to (as in training).
        mean: Normalization mean (the backbone's pretrained one).
        std: Normalization std.
        flip: Embed the mirrored photos instead (the gallery's flipped copies).
        device: Where to run the model.
    """
    transform = build_transform(image_size, train=False, mean=mean, std=std)
    model = model.to(device).eval()

    def embed(images: list[Image.Image]) -> np.ndarray:
        if flip:
            images = [image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for image in images]
        batch = torch.stack([transform(image.convert("RGB")) for image in images]).to(device)
        with torch.inference_mode():
            return model(batch).float().cpu().numpy()

    return embed
