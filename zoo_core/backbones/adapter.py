"""Turn MNIST batches into what an ImageNet backbone expects."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def random_shift(images: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Translate each (1, H, W) image by its own random offset of up to ``max_shift`` pixels.

    Pixels shifted in are zero (background). Offsets come from the global
    torch generator, which the run seeds.
    """
    count, _, height, width = images.shape
    span = 2 * max_shift + 1
    padded = nn.functional.pad(images, [max_shift] * 4)
    rows = torch.randint(span, (count, 1, 1), device=images.device) + torch.arange(height, device=images.device).view(1, -1, 1)
    columns = torch.randint(span, (count, 1, 1), device=images.device) + torch.arange(width, device=images.device).view(1, 1, -1)
    batch = torch.arange(count, device=images.device).view(-1, 1, 1)
    return padded[batch, 0, rows, columns].unsqueeze(1)  # (count, H, W) -> (count, 1, H, W)


class InputAdapter(nn.Module):
    """Resize (batch, 1, 28, 28) images in [0, 1] to (batch, 3, size, size), normalized.

    The gray channel is repeated into three, and each channel is normalized
    with the mean and std that the backbone's weights were trained with. In
    training mode, ``shift`` > 0 first translates each image by up to that
    many pixels, a standard augmentation for digits. ``invert`` turns MNIST's
    white digits on black into dark digits on white, as ink on paper, which is
    closer to the photographs that ImageNet features were learned from.
    """

    def __init__(self, size: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 shift: int = 0, invert: bool = False) -> None:
        super().__init__()
        self.size = size
        self.shift = shift
        self.invert = invert
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.training and self.shift > 0:
            images = random_shift(images, self.shift)
        if self.invert:
            images = 1.0 - images
        if images.shape[-1] != self.size or images.shape[-2] != self.size:
            images = nn.functional.interpolate(images, size=(self.size, self.size), mode="bilinear", align_corners=False)
        images = images.expand(-1, 3, -1, -1)  # (batch, 1, S, S) -> (batch, 3, S, S)
        return (images - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"size={self.size}, shift={self.shift}, invert={self.invert}"
