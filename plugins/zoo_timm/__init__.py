"""timm plugin: every classification architecture in timm (PyTorch Image Models).

The model list, the builders, the input sizes, the normalization and the
pretrained weights all come from timm and its pretrained configs. The shared
backbone machinery in ``zoo_core.backbones`` adapts the input, puts on a
10-class head, freezes and caches features.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from typing import Any, Callable
from unittest import mock

import timm
import torch
from timm.models import _builder as timm_builder
from timm.models import get_pretrained_cfg, model_entrypoint
from torch import nn

from zoo_core.backbones import BackbonePlugin, WeightsInfo
from zoo_core.backbones.heads import building_empty_weights, empty_weights
from zoo_core.backbones.memory import check_model_memory
from zoo_core.errors import ConfigError
from zoo_core.torch_training import count_parameters

ZOO_CONTRACT_VERSION = "1.0"

# timm names its encoder-only variants *_enc (qwen3_vit_88m_enc, mobilenetv5_300m_enc, ...).
# They return token or feature maps and have no classifier to replace, so they are left out.
ENCODER_SUFFIX = "_enc"

# Input sizes. Each timm 1.0.31 architecture was built on the meta device and
# given batches of 32, 64, 96, ..., 256 pixels, with finer steps for the models
# that failed at 32. The tables below hold what that trial found. Sizes below
# 32 were not tried, so 32 is the smallest size this plugin allows. The
# resulting defaults passed the same trial for every listed model, and a real
# forward and backward pass on the CPU for the smallest model of each family.
#
# Minimum: the entry of MIN_SIZE_BY_PREFIX, else the pretrained config's
# min_input_size where timm sets one (halo, bot and lambda nets, sapiens,
# gemma4_vit, deepseek_vit), else 32. Default: the minimum, rounded up to a multiple
# of the patch size for names with "patchN", so that the patch grid covers the
# whole image. check_settings runs a forward pass on the meta device, which
# rejects sizes above the minimum that an architecture cannot take.
MIN_INPUT_SIZE = 32
MIN_SIZE_BY_PREFIX = {
    # CrossViT takes only some sizes. From 32 to 489 pixels crossvit_tiny_240 takes 36-39, 72,
    # 120, 121, 156, 240, 360 and 480. From 32 to 299 crossvit_15_dagger_408 takes 85, 120 and 204.
    "crossvit_": 120,
    "csatv2": 64,  # at 32, a 2x2 kernel meets a 1x1 feature map
    "efficientformer_l": 224,  # attention biases are fixed to the 7x7 grid of a 224-pixel input
    "ghostnetv2_": 33,  # at 32, a pooling layer meets a 1x1 feature map
    "ghostnetv3_": 33,
    "inception_resnet_v2": 75,  # at 64, a 3x3 kernel meets a 1x1 feature map
    "inception_v3": 75,
    "inception_v4": 75,
    # Their configs give a minimum of 224, but of the multiples of 8 up to 296 only 128 and 256 work.
    "halo2botnet50ts_256": 128,
    "lamhalobotnet50ts_256": 128,
}
PATCH_SIZE = re.compile(r"patch(\d+)")

HF_URL = "https://huggingface.co"


def _by_prefix(table: dict[str, int], model: str) -> int | None:
    return next((value for prefix, value in table.items() if model.startswith(prefix)), None)


def patch_size(model: str) -> int | None:
    """Return N from a name such as vit_tiny_patch16_224, or None."""
    match = PATCH_SIZE.search(model)
    return int(match.group(1)) if match else None


@functools.cache
def _timm_builds_on_device() -> bool:
    # Older timm releases have no device argument on their layers and models.
    return "device" in inspect.signature(timm.layers.PatchEmbed.__init__).parameters


def _hf_cache_placement(repository: str) -> str:
    """Return how to put a Hugging Face repository's files where timm's download finds them offline."""
    from huggingface_hub import constants

    placement = (
        f"Copy the folder models--{repository.replace('/', '--')} from a Hugging Face cache that has it "
        f"(`hf download {repository}` fills one) into {constants.HF_HUB_CACHE}"
    )
    if not constants.HF_HUB_OFFLINE:
        placement += " (set HF_HUB_OFFLINE=1 to skip the download attempts)"
    return placement


class TimmSource:
    name = "timm"

    def model_names(self) -> list[str]:
        return [name for name in timm.list_models() if not name.endswith(ENCODER_SUFFIX)]

    def family(self, model: str) -> str:
        return model_entrypoint(model).__module__.rsplit(".", 1)[-1]

    def description(self, model: str) -> str:
        return f"timm {model} ({self.family(model)} family), 10-class head"

    def min_input_size(self, model: str) -> int:
        found = _by_prefix(MIN_SIZE_BY_PREFIX, model)
        if found:
            return found
        config = get_pretrained_cfg(model)
        if config is not None and config.min_input_size:
            return max(config.min_input_size[1:])
        return MIN_INPUT_SIZE

    def default_input_size(self, model: str) -> int:
        size = self.min_input_size(model)
        patch = patch_size(model)
        return math.ceil(size / patch) * patch if patch else size

    def _model_kwargs(self, model: str, num_classes: int, input_size: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"num_classes": num_classes}
        config = get_pretrained_cfg(model)
        if config is not None and config.fixed_input_size:
            # timm's contract: a model whose config has fixed_input_size takes an img_size argument.
            kwargs["img_size"] = input_size
        if building_empty_weights() and _timm_builds_on_device():
            kwargs["device"] = "meta"
        return kwargs

    def build(self, model: str, num_classes: int, input_size: int, pretrained: bool) -> nn.Module:
        kwargs = self._model_kwargs(model, num_classes, input_size)
        if pretrained:
            # Some architectures change when timm loads their weights (fbnetc_100 takes
            # TensorFlow's BatchNorm epsilon), so build them as timm does for its weights.
            return self._build_for_weights(model, kwargs)[0]
        return timm.create_model(model, pretrained=False, **kwargs)

    def _build_for_weights(self, model: str, kwargs: dict[str, Any]) -> tuple[nn.Module, Callable | None]:
        """Build the model as timm does for its pretrained weights, without loading them.

        Returns the model and timm's checkpoint filter for it. timm hands each
        architecture's filter only to its internal ``load_pretrained``, so this
        build records that call in place of running it.
        """
        # NOTE: relies on timm.models._builder.load_pretrained (as in timm 1.0.31). Without it the model is built
        # as for random weights, no filter runs, and the shared loader drops tensors whose shapes differ.
        if not hasattr(timm_builder, "load_pretrained"):
            return timm.create_model(model, pretrained=False, **kwargs), None
        recorded: dict[str, Any] = {}

        def record_filter(target, *args, filter_fn=None, **load_kwargs):
            recorded["filter_fn"] = filter_fn

        with mock.patch.object(timm_builder, "load_pretrained", record_filter):
            network = timm.create_model(model, pretrained=True, **kwargs)
        return network, recorded.get("filter_fn")

    def check_settings(self, model: str, settings: dict[str, Any]) -> None:
        """Reject a model too large for the memory available, and an input size that the architecture cannot take.

        Both checks run on the meta device, so they allocate no weights.
        """
        size = settings["input_size"]
        with empty_weights():
            network = self.build(model, 10, size, False)
        check_model_memory(f"timm/{model}", count_parameters(network), frozen=bool(settings["freeze"]))

        network.eval()
        try:
            network(torch.empty(2, 3, size, size, device="meta"))
        except (RuntimeError, AssertionError, ValueError) as error:  # shape errors: torch, timm's asserts, timm's checks
            raise ConfigError(
                f"timm/{model} does not work with input_size {size}: a forward pass on the meta device failed "
                f"({type(error).__name__}: {error}); its default input_size {self.default_input_size(model)} works"
            ) from error

    def adapt_state(self, model: str, state: dict[str, torch.Tensor], input_size: int) -> dict[str, torch.Tensor]:
        """Run timm's checkpoint filter for this architecture, which resizes position embeddings and renames keys.

        The filter reads only the shapes of its target model, so the target is
        built on the meta device.

        NOTE: some filters leave size-dependent tensors as they are (LeViT's and
        EfficientFormerV2's attention biases, CrossViT's position embeddings).
        The shared loader drops those, so they keep their random initialization.
        """
        with empty_weights():
            target, filter_fn = self._build_for_weights(model, self._model_kwargs(model, 10, input_size))
        if filter_fn is None:
            return state
        try:
            return filter_fn(state, target)
        except TypeError:
            return filter_fn(state)  # filters of one argument, which timm's own loader also accepts

    def default_weights(self, model: str) -> WeightsInfo | None:
        config = get_pretrained_cfg(model)
        if config is None or not (config.hf_hub_id or config.url):
            return None

        def fetch() -> dict[str, torch.Tensor]:
            # timm's own download path, which looks in timm's cache first.
            return timm.create_model(model, pretrained=True).state_dict()

        common = {"mean": tuple(config.mean), "std": tuple(config.std), "fetch": fetch}
        if config.hf_hub_id:  # timm prefers the Hugging Face Hub over a URL
            return WeightsInfo(
                id=config.hf_hub_id,
                file_name=config.hf_hub_filename or "model.safetensors",
                url=f"{HF_URL}/{config.hf_hub_id}",
                cache_name="the Hugging Face cache",
                placement=_hf_cache_placement(config.hf_hub_id),
                **common,
            )
        return WeightsInfo(
            id=f"{model}.{config.tag}" if config.tag else model,
            file_name=config.url.rsplit("/", 1)[-1],
            url=config.url,
            **common,
        )


plugin = BackbonePlugin(TimmSource())
