"""The convolutional network of the ``cnn`` model and its input augmentation."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional

from zoo_core.errors import ConfigError

IMAGE_SIZE = 28


class RandomShift(nn.Module):
    """Shift each image by up to ``max_shift`` pixels in each direction, in training mode only.

    The image is zero-padded first, so the pixels shifted in are background.
    Offsets come from the global torch generator, which zoo seeds from the run's seed.
    """

    def __init__(self, max_shift: int) -> None:
        super().__init__()
        self.max_shift = max_shift

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.training or self.max_shift == 0:
            return images
        count = images.shape[0]
        span = 2 * self.max_shift + 1
        padded = functional.pad(images, [self.max_shift] * 4)
        # Each image gets its own (row, column) offset into the padded image.
        row_offsets = torch.randint(span, (count, 1), device=images.device)
        column_offsets = torch.randint(span, (count, 1), device=images.device)
        steps = torch.arange(IMAGE_SIZE, device=images.device)
        rows = (row_offsets + steps)[:, :, None]
        columns = (column_offsets + steps)[:, None, :]
        index = torch.arange(count, device=images.device)[:, None, None]
        return padded[index, 0, rows, columns].unsqueeze(1)


def conv_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    # The convolution needs no bias because batch normalization subtracts the mean right after it.
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def check_settings(settings: dict[str, Any]) -> None:
    """Raise ConfigError naming the first invalid model setting."""
    if not 0.0 <= settings["dropout"] < 1.0:
        raise ConfigError(f"cnn setting 'dropout' must be in [0, 1), got {settings['dropout']}; try 0.25")
    if settings["hidden"] < 1:
        raise ConfigError(f"cnn setting 'hidden' must be at least 1, got {settings['hidden']}; try 128")
    if not 0 <= settings["shift"] <= 4:
        raise ConfigError(f"cnn setting 'shift' must be from 0 to 4 pixels, got {settings['shift']}; try 2")
    if settings["weight_decay"] < 0:
        raise ConfigError(f"cnn setting 'weight_decay' must be zero or positive, got {settings['weight_decay']}")


def build_network(settings: dict[str, Any]) -> nn.Sequential:
    """Build the network, which maps (batch, 1, 28, 28) images in [0, 1] to (batch, 10) logits.

    Two blocks of two 3x3 convolutions (32, then 64 channels) each end in a
    2x2 max-pool, so the dense layers see 64 maps of 7x7 pixels.
    """
    check_settings(settings)
    dropout = settings["dropout"]
    return nn.Sequential(
        RandomShift(settings["shift"]),
        *conv_block(1, 32),
        *conv_block(32, 32),
        nn.MaxPool2d(2),
        *conv_block(32, 64),
        *conv_block(64, 64),
        nn.MaxPool2d(2),
        nn.Dropout(dropout),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, settings["hidden"]),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(settings["hidden"], 10),
    )
