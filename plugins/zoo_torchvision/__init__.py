"""torchvision plugin: every classification model in ``torchvision.models``.

The model list, the builders and the default ImageNet weights all come from
torchvision itself. The shared backbone machinery in ``zoo_core.backbones``
adapts the input, puts on a 10-class head, and freezes and caches features.
"""

from __future__ import annotations

import math
import os
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision import models

from zoo_core.backbones import BackbonePlugin, WeightsInfo
from zoo_core.errors import ConfigError

ZOO_CONTRACT_VERSION = "1.0"

# Default input size per family: the smallest square size that every member
# of the family accepts, rounded up to what trains well on MNIST on a CPU.
# ViT and MaxViT fix their input size when they are built (image_size and
# input_size). A ViT's size must be a multiple of its patch size, so its
# default is the smallest multiple of the patch size from 32 up.
FAMILY_INPUT_SIZE = {
    "alexnet": 64,
    "convnext": 32,
    "densenet": 32,
    "efficientnet": 32,
    "googlenet": 32,
    "inception": 96,
    "maxvit": 224,
    "mnasnet": 32,
    "mobilenetv2": 32,
    "mobilenetv3": 32,
    "regnet": 32,
    "resnet": 32,
    "shufflenetv2": 32,
    "squeezenet": 32,
    "swin_transformer": 32,
    "vgg": 32,
}
DEFAULT_INPUT_SIZE = 64
# The minimum input sizes torchvision publishes in each weights' meta, where larger than 32.
FAMILY_MIN_SIZE = {"alexnet": 63, "inception": 75}
INCEPTION_AUX_MIN_SIZE = 299


def vit_patch_size(model: str) -> int:
    """Return the patch size from a ViT name such as vit_b_16."""
    return int(model.rsplit("_", 1)[-1])


class TorchvisionSource:
    name = "torchvision"

    def model_names(self) -> list[str]:
        return sorted(models.list_models(module=models))

    def family(self, model: str) -> str:
        return models.get_model_builder(model).__module__.rsplit(".", 1)[-1]

    def description(self, model: str) -> str:
        return f"torchvision {model} ({self.family(model)} family), 10-class head"

    def default_input_size(self, model: str) -> int:
        family = self.family(model)
        if family == "vision_transformer":
            patch = vit_patch_size(model)
            return math.ceil(32 / patch) * patch
        return FAMILY_INPUT_SIZE.get(family, DEFAULT_INPUT_SIZE)

    def min_input_size(self, model: str) -> int:
        family = self.family(model)
        if family == "vision_transformer":
            return vit_patch_size(model)
        if family == "maxvit":
            return 224  # maxvit_t's 7x7 partitions need 224 (sizes down to 32 fail to build)
        return FAMILY_MIN_SIZE.get(family, 32)

    def build(self, model: str, num_classes: int, input_size: int, pretrained: bool) -> nn.Module:
        family = self.family(model)
        kwargs = {"num_classes": num_classes}
        if family == "vision_transformer":
            patch = vit_patch_size(model)
            if input_size % patch:
                raise ConfigError(f"{model} needs an input_size that is a multiple of its patch size {patch}, got {input_size}")
            kwargs["image_size"] = input_size
        if family == "maxvit":
            kwargs["input_size"] = (input_size, input_size)
        if family in ("googlenet", "inception"):
            # torchvision builds these with transform_input=True whenever it loads its ImageNet weights.
            kwargs["transform_input"] = pretrained
            kwargs["init_weights"] = not pretrained
        if family == "inception":
            # Inception V3's auxiliary head needs 299-pixel inputs; below that it is left out.
            kwargs["aux_logits"] = input_size >= INCEPTION_AUX_MIN_SIZE
        return models.get_model(model, weights=None, **kwargs)

    def adapt_state(self, model: str, state: dict[str, torch.Tensor], input_size: int) -> dict[str, torch.Tensor]:
        """Resize ViT position embeddings when the input size differs from the weights' 224."""
        if self.family(model) == "vision_transformer" and "encoder.pos_embedding" in state:
            from torchvision.models.vision_transformer import interpolate_embeddings

            return interpolate_embeddings(input_size, vit_patch_size(model), state)
        return state

    def default_weights(self, model: str) -> WeightsInfo | None:
        try:
            weights = models.get_model_weights(model).DEFAULT
        except (ValueError, KeyError):
            return None
        transforms = weights.transforms()
        return WeightsInfo(
            id=str(weights),
            mean=tuple(transforms.mean),
            std=tuple(transforms.std),
            file_name=os.path.basename(urlparse(weights.url).path),
            url=weights.url,
            fetch=lambda: weights.get_state_dict(progress=True, check_hash=True),
        )


plugin = BackbonePlugin(TorchvisionSource())
