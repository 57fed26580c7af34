"""A model plugin for any library of ImageNet classification backbones.

``BackbonePlugin`` implements the hooks once. A ``BackboneSource`` supplies
the models a library has, builds one with a given number of classes and input
size, and describes where its pretrained weights come from. The torchvision
and timm plugins are such sources.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch
from torch import nn

from zoo_core.backbones.adapter import IMAGENET_MEAN, IMAGENET_STD, InputAdapter
from zoo_core.backbones.features import FeatureCache, cache_key
from zoo_core.backbones.heads import (
    empty_weights, head_module_names, head_parameter_names, pool_over_grid, replace_modules,
)
from zoo_core.backbones.weights import download_state_dict, file_digest, load_backbone_weights, read_state_dict
from zoo_core.errors import ConfigError, saved_model_error
from zoo_core.hookspecs import CONTRACT_VERSION, Evaluation, ModelSpec, TrainedModel, TrainResult, hookimpl
from zoo_core.torch_training import (
    adamw, count_parameters, evaluate_logits, fit, follow_data_with_batch_norm, predict_logits, to_tensor,
)

MODEL_FILE = "model.pt"
META_FILE = "backbone.json"
SCHEDULES = ("onecycle", "cosine", "constant")
EXTRACT_BATCH_SIZE = 256
# ImageNet backbones are trained at 224 to 600 pixels; larger inputs only cost memory on 28x28 digits.
MAX_INPUT_SIZE = 1024
MAX_HEAD_GRID = 8
FEATURE_CACHE_VERSION = 1


@dataclass
class WeightsInfo:
    """A library's default pretrained weights for one model."""

    id: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    file_name: str
    url: str
    fetch: Callable[[], dict[str, torch.Tensor]]
    # The cache that ``fetch`` reads first and how to fill it by hand, for the
    # offline error. A placement of None names the torch hub checkpoints folder.
    cache_name: str = "the torch hub cache"
    placement: str | None = None


class BackboneSource(Protocol):
    """A library of backbones.

    Two methods are optional, so they are not part of this protocol.
    ``check_settings(model, settings)`` raises ZooError for settings that the
    library cannot build, before any download or build.
    ``adapt_state(model, state, input_size)`` returns a checkpoint fitted to
    the input size (position embeddings resized, say).
    """

    name: str

    def model_names(self) -> list[str]: ...
    def family(self, model: str) -> str: ...
    def description(self, model: str) -> str: ...
    def default_input_size(self, model: str) -> int: ...
    def min_input_size(self, model: str) -> int: ...
    def build(self, model: str, num_classes: int, input_size: int, pretrained: bool) -> nn.Module: ...
    def default_weights(self, model: str) -> WeightsInfo | None: ...


class BackboneClassifier(nn.Module):
    """Input adapter, backbone network and, when the backbone is frozen, a separate head.

    Takes (batch, 1, 28, 28) images in [0, 1] and returns (batch, 10) logits
    (or the network's tuple with auxiliary logits in training mode).
    """

    def __init__(self, adapter: InputAdapter, network: nn.Module, head: nn.Module | None = None) -> None:
        super().__init__()
        self.adapter = adapter
        self.network = network
        self.head = head
        self.channels_last = False

    def forward(self, images: torch.Tensor):
        inputs = self.adapter(images)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        output = self.network(inputs)
        if self.head is None:
            return output
        return self.head(output.flatten(1))


def _log(config, line: str) -> None:
    if not config.quiet:
        print(line, file=sys.stdout, flush=True)


class BackbonePlugin:
    """Hook implementations shared by every backbone library."""

    ZOO_CONTRACT_VERSION = CONTRACT_VERSION
    training_defaults = {"epochs": 3, "batch_size": 128, "lr": 1e-3}

    def __init__(self, source: BackboneSource) -> None:
        self.source = source

    # -- catalog ---------------------------------------------------------------

    def default_settings(self, model: str) -> dict[str, Any]:
        return {
            "freeze": False,
            "pretrained": True,
            "weights": "",
            "input_size": self.source.default_input_size(model),
            "backbone_lr": None,
            "schedule": "onecycle",
            "weight_decay": 0.01,
            # Random translations of up to 2 pixels while fine-tuning; frozen features are extracted without them.
            "shift": 2,
            "invert": False,
            # Fine-tune in the channels-last memory layout (see to_channels_last).
            "channels_last": False,
            # With --freeze: the new head reads the last feature map averaged over a grid x grid grid.
            "head_grid": 1,
        }

    @hookimpl
    def zoo_models(self) -> list[ModelSpec]:
        return [
            ModelSpec(
                name=name,
                description=self.source.description(name),
                training=dict(self.training_defaults),
                settings=self.default_settings(name),
            )
            for name in self.source.model_names()
        ]

    @hookimpl
    def zoo_info(self, model: str, settings: dict[str, Any]) -> dict[str, Any]:
        size = settings["input_size"]
        with empty_weights():
            parameters = count_parameters(self.source.build(model, 10, size, False))
        heads = head_parameter_names(lambda n: self.source.build(model, n, size, False))
        weights = self.source.default_weights(model)
        return {
            "family": self.source.family(model),
            "input size": f"{size}x{size} (minimum {self.source.min_input_size(model)}), 3 channels",
            "parameters": f"{parameters:,} with a 10-class head",
            "weights": weights.id if weights else "none published",
            "weights file": f"{weights.file_name} from {weights.url}" if weights else "-",
            "head": ", ".join(head_module_names(heads)),
        }

    # -- building --------------------------------------------------------------

    def _check_settings(self, model: str, settings: dict[str, Any]) -> None:
        if settings["input_size"] > MAX_INPUT_SIZE:
            raise ConfigError(
                f"setting 'input_size' of {settings['input_size']} is above the maximum of {MAX_INPUT_SIZE} pixels; "
                f"MNIST digits are 28x28, so {self.source.default_input_size(model)} is usually enough"
            )
        if settings["weight_decay"] < 0:
            raise ConfigError(f"setting 'weight_decay' must be zero or positive, got {settings['weight_decay']}")
        minimum = self.source.min_input_size(model)
        if settings["input_size"] < minimum:
            raise ConfigError(
                f"{self.source.name}/{model} needs input_size of at least {minimum}, got {settings['input_size']}"
            )
        if settings["schedule"] not in SCHEDULES:
            raise ConfigError(f"setting 'schedule' has invalid value {settings['schedule']!r}; use one of {', '.join(SCHEDULES)}")
        if not 0 <= settings.get("shift", 0) <= 4:
            raise ConfigError(f"setting 'shift' must be from 0 to 4 pixels, got {settings['shift']}")
        grid = settings.get("head_grid", 1)
        if not 1 <= grid <= MAX_HEAD_GRID:
            raise ConfigError(f"setting 'head_grid' must be from 1 to {MAX_HEAD_GRID}, got {grid}")
        if grid > 1 and not settings["freeze"]:
            raise ConfigError(
                f"setting 'head_grid' of {grid} applies only to a frozen backbone; add --freeze or keep head_grid at 1"
            )
        backbone_lr = settings.get("backbone_lr")
        if backbone_lr is not None and (isinstance(backbone_lr, bool) or not isinstance(backbone_lr, (int, float)) or backbone_lr < 0):
            raise ConfigError(f"setting 'backbone_lr' must be a number >= 0 or null, got {backbone_lr!r}")
        check_settings = getattr(self.source, "check_settings", None)
        if check_settings is not None:
            check_settings(model, settings)

    def _weights(self, model: str, settings: dict[str, Any], seed: int):
        """Return (state dict or None, weights id, mean, std)."""
        default = self.source.default_weights(model)
        mean = default.mean if default else IMAGENET_MEAN
        std = default.std if default else IMAGENET_STD
        if settings["weights"]:
            path = Path(settings["weights"]).expanduser()
            state = read_state_dict(path)
            return state, f"file:{file_digest(path)}", mean, std
        if settings["pretrained"]:
            if default is None:
                raise ConfigError(
                    f"{self.source.name}/{model} has no published pretrained weights; "
                    f"use --no-pretrained or --weights FILE"
                )
            state = download_state_dict(default.fetch, f"{default.id} for {model}", default.file_name, default.url,
                                        default.cache_name, default.placement)
            return state, default.id, mean, std
        return None, f"random-init-seed{seed}", mean, std

    def build(self, model: str, settings: dict[str, Any], seed: int) -> tuple[BackboneClassifier, list[str], str]:
        """Build the 10-class classifier with its weights; return it, its head parameter names and the weights id."""
        self._check_settings(model, settings)
        state, weights_id, mean, std = self._weights(model, settings, seed)
        size = settings["input_size"]
        pretrained_layout = state is not None
        network = self.source.build(model, 10, size, pretrained_layout)
        heads = head_parameter_names(lambda n: self.source.build(model, n, size, pretrained_layout))
        if state is not None:
            adapt_state = getattr(self.source, "adapt_state", None)
            if adapt_state is not None:
                state = adapt_state(model, state, size)
            source = repr(settings["weights"]) if settings["weights"] else weights_id
            load_backbone_weights(network, state, heads, source)
        adapter = InputAdapter(size, mean, std, shift=settings.get("shift", 0), invert=settings.get("invert", False))
        classifier = BackboneClassifier(adapter, network)
        classifier.pretrained_layout = pretrained_layout
        return classifier, heads, weights_id

    # -- training --------------------------------------------------------------

    def _optimizer(self, model: nn.Module, config, head_names: set[str], steps: int):
        settings = config.settings
        backbone_lr = settings.get("backbone_lr")
        head_params, backbone_params = [], []
        for name, parameter in model.named_parameters():
            if not parameter.requires_grad:
                continue
            owner = name.removeprefix("network.")
            (head_params if owner in head_names or name.startswith("head.") else backbone_params).append(parameter)
        groups = [{"params": head_params, "lr": config.lr}]
        if backbone_params:
            groups.append({"params": backbone_params, "lr": config.lr if backbone_lr is None else float(backbone_lr)})
        optimizer = adamw(groups, config.lr, settings["weight_decay"], config.device)
        schedule = settings["schedule"]
        if schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=[g["lr"] for g in groups], total_steps=steps
            )
        elif schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        else:
            scheduler = None
        return optimizer, scheduler

    @hookimpl
    def zoo_train(self, model: str, data, config, reporter) -> TrainResult:
        settings = config.settings
        classifier, heads, weights_id = self.build(model, settings, config.seed)
        classifier.to(config.device)
        if settings["freeze"]:
            return self._train_frozen(model, classifier, heads, weights_id, data, config, reporter)

        if settings.get("channels_last") and not to_channels_last(classifier):
            raise ConfigError(
                f"{self.source.name}/{model} does not run in the channels-last memory layout; "
                f"leave the setting channels_last at false"
            )
        train = (to_tensor(data.train.images), torch.from_numpy(data.train.labels))
        val = (to_tensor(data.val.images), torch.from_numpy(data.val.labels))
        steps_per_epoch = math.ceil(len(train[0]) / config.batch_size)
        follow_data_with_batch_norm(classifier, steps_per_epoch)
        optimizer, scheduler = self._optimizer(classifier, config, set(heads), config.epochs * steps_per_epoch)
        result = fit(classifier, train, val, optimizer, config, reporter, scheduler)
        to_default_layout(classifier)
        trained = self._trained(model, classifier, settings, weights_id, feature_dim=None)
        return TrainResult(trained=trained, history=result.history, best_epoch=result.best_epoch)

    def _train_frozen(self, model, classifier, heads, weights_id, data, config, reporter) -> TrainResult:
        network = classifier.network
        replace_modules(network, head_module_names(heads), lambda module: nn.Identity())
        self._pool_over_grid(model, network, config.settings.get("head_grid", 1))
        classifier.requires_grad_(False)
        classifier.eval()

        features, extraction = self._features(model, classifier, weights_id, data, config)
        feature_dim = features["train"].shape[1]
        head = nn.Linear(feature_dim, 10).to(config.device)

        train = (torch.from_numpy(np.array(features["train"])), torch.from_numpy(data.train.labels))
        val = (torch.from_numpy(np.array(features["val"])), torch.from_numpy(data.val.labels))
        steps = config.epochs * math.ceil(len(train[0]) / config.batch_size)
        optimizer, scheduler = self._optimizer(head, config, set(), steps)
        started = time.perf_counter()
        result = fit(head, train, val, optimizer, config, reporter, scheduler)
        head_seconds = time.perf_counter() - started

        classifier.head = head
        trained = self._trained(model, classifier, config.settings, weights_id, feature_dim=feature_dim)
        trained.extra = {**extraction, "head_train_seconds": head_seconds,
                         "head_seconds_per_epoch": head_seconds / config.epochs}
        return TrainResult(trained=trained, history=result.history, best_epoch=result.best_epoch)

    def _pool_over_grid(self, model: str, network: nn.Module, grid: int) -> None:
        if grid > 1 and pool_over_grid(network, grid) is None:
            raise ConfigError(
                f"{self.source.name}/{model} has no global average pooling module for head_grid {grid} to replace "
                f"(it pools in its forward code); use head_grid=1"
            )

    def _features(self, model, classifier, weights_id, data, config) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Load the frozen features from the cache, or extract and cache them."""
        description = {
            "version": FEATURE_CACHE_VERSION,
            "plugin": self.source.name,
            "model": model,
            "weights": weights_id,
            "input_size": config.settings["input_size"],
            "invert": config.settings.get("invert", False),
            "data": data_fingerprint(data),
        }
        # A global pool adds no key, so that caches written before head_grid existed stay valid.
        if config.settings.get("head_grid", 1) > 1:
            description["head_grid"] = config.settings["head_grid"]
        key = cache_key(description)
        cache = FeatureCache()
        cached = cache.load(key)
        if cached is not None:
            _log(config, f"Features: reusing the cache in {cache.path(key)}")
            return cached, {"features_cached": True, "extract_seconds": 0.0, "extract_images_per_second": None}

        features = {}
        started = time.perf_counter()
        total = len(data.train) + len(data.val) + len(data.test)
        _log(config, f"Features: extracting {total:,} images with the frozen {model} backbone")
        with fast_inference(classifier, config.device):
            for split in ("train", "val", "test"):
                images = to_tensor(getattr(data, split).images)
                features[split] = predict_logits(classifier, images, config.device, EXTRACT_BATCH_SIZE).numpy()
        seconds = time.perf_counter() - started
        rate = total / max(seconds, 1e-9)
        path = cache.store(key, features, {**description, "model": f"{self.source.name}/{model}",
                                           "extract_seconds": seconds})
        _log(config, f"Features: {total:,} images in {seconds:.1f} s ({rate:.0f} images/s), cached in {path}")
        return features, {"features_cached": False, "extract_seconds": seconds, "extract_images_per_second": rate}

    def _trained(self, model, classifier, settings, weights_id, feature_dim) -> TrainedModel:
        trained = TrainedModel(model=model, net=classifier, parameters=count_parameters(classifier), settings=dict(settings))
        classifier.zoo_meta = {
            "model": model,
            "input_size": settings["input_size"],
            "freeze": settings["freeze"],
            "pretrained_layout": classifier.pretrained_layout,
            "weights": weights_id,
            "feature_dim": feature_dim,
            "invert": classifier.adapter.invert,
            "head_grid": settings.get("head_grid", 1),
            "mean": classifier.adapter.mean.flatten().tolist(),
            "std": classifier.adapter.std.flatten().tolist(),
        }
        return trained

    # -- evaluation, saving, loading ------------------------------------------

    @hookimpl
    def zoo_evaluate(self, trained: TrainedModel, images: np.ndarray, labels: np.ndarray, config) -> Evaluation:
        return evaluate_logits(self._logits(trained.net, images, config.device), torch.from_numpy(labels))

    @hookimpl
    def zoo_predict(self, trained: TrainedModel, images: np.ndarray) -> np.ndarray:
        device = str(next(trained.net.parameters()).device)
        return torch.softmax(self._logits(trained.net, images, device).double(), dim=1).numpy()

    def _logits(self, classifier: BackboneClassifier, images: np.ndarray, device: str) -> torch.Tensor:
        # Test images always go through the whole network, even when a frozen run has
        # their features cached, so that the run's inference speed is real.
        if len(images) < EXTRACT_BATCH_SIZE:
            # Switching the layout costs a probe pass, which a few images do not repay.
            return predict_logits(classifier, to_tensor(images), device)
        with fast_inference(classifier, device):
            return predict_logits(classifier, to_tensor(images), device)

    @hookimpl
    def zoo_save(self, trained: TrainedModel, directory: str) -> None:
        classifier = trained.net
        torch.save(classifier.state_dict(), os.path.join(directory, MODEL_FILE))
        with open(os.path.join(directory, META_FILE), "w", encoding="utf-8") as handle:
            json.dump(classifier.zoo_meta, handle, indent=2)

    @hookimpl
    def zoo_load(self, model: str, directory: str, settings: dict[str, Any], device: str) -> TrainedModel:
        meta_path = os.path.join(directory, META_FILE)
        try:
            with open(meta_path, encoding="utf-8") as handle:
                meta = json.load(handle)
            size = meta["input_size"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise saved_model_error(meta_path, error) from error
        network = self.source.build(model, 10, size, meta["pretrained_layout"])
        head = None
        if meta["freeze"]:
            heads = head_parameter_names(lambda n: self.source.build(model, n, size, meta["pretrained_layout"]))
            replace_modules(network, head_module_names(heads), lambda module: nn.Identity())
            self._pool_over_grid(model, network, meta.get("head_grid", 1))
            head = nn.Linear(meta["feature_dim"], 10)
        adapter = InputAdapter(size, meta["mean"], meta["std"], invert=meta.get("invert", False))
        classifier = BackboneClassifier(adapter, network, head)
        model_path = os.path.join(directory, MODEL_FILE)
        try:
            classifier.load_state_dict(torch.load(model_path, map_location="cpu", weights_only=True))
        except (OSError, RuntimeError, ValueError, EOFError) as error:  # torch reports a cut file as RuntimeError
            raise saved_model_error(model_path, error) from error
        classifier.zoo_meta = meta
        classifier.to(device).eval()
        return TrainedModel(model=model, net=classifier, parameters=count_parameters(classifier), settings=dict(settings))


def to_channels_last(classifier: BackboneClassifier) -> bool:
    """Put weights and inputs in the channels-last memory layout if the architecture runs in it.

    oneDNN's convolutions run faster in that layout on a CPU, above all the
    depthwise ones (1.7x for training EfficientNet-Lite0 at 64 pixels, 0.96x
    for ResNet-18 at 32). A forward pass on two blank images, in eval mode so
    that no batch norm statistics change, checks that the architecture runs
    in it, which code calling view() on a feature map does not. Returns
    whether the layout was kept. A model with 5-D weights (the lambda layers
    of timm's lambda_resnet26t) keeps the default layout, because PyTorch
    cannot convert its weights.
    """
    training = classifier.training
    try:
        classifier.to(memory_format=torch.channels_last)
        classifier.channels_last = True
        with torch.no_grad():
            classifier.eval()(torch.zeros(2, 1, 28, 28, device=classifier.adapter.mean.device))
    except RuntimeError:
        to_default_layout(classifier)
    classifier.train(training)
    return classifier.channels_last


def to_default_layout(classifier: BackboneClassifier) -> None:
    classifier.to(memory_format=torch.contiguous_format)
    classifier.channels_last = False


@contextlib.contextmanager
def fast_inference(classifier: BackboneClassifier, device: str) -> Iterator[None]:
    """Speed up a CPU inference pass over ``classifier``, changing its outputs only by float rounding.

    Two changes, both undone on exit: the channels-last layout where the
    architecture runs in it (``to_channels_last``; 1.3x for extracting
    EfficientNet-Lite0 features at 96 pixels), and denormal floats flushed to
    zero. MNIST's black background drives many activations into the denormal
    range, where CPU arithmetic is slow (another 1.2x).
    """
    if torch.device(device).type != "cpu":
        yield
        return
    was_channels_last = classifier.channels_last
    if not was_channels_last:
        to_channels_last(classifier)
    flushed = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flushed:
            torch.set_flush_denormal(False)
        if not was_channels_last:
            to_default_layout(classifier)


def data_fingerprint(data) -> str:
    """Identify the images and labels of every split (about 0.1 s for all of MNIST)."""
    digest = hashlib.sha256()
    for split in (data.train, data.val, data.test):
        digest.update(str(split.images.shape).encode())
        digest.update(np.ascontiguousarray(split.images).tobytes())
        digest.update(split.labels.tobytes())
    return digest.hexdigest()[:16]
