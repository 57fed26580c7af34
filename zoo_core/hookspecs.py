"""The plugin contract: the hooks every model plugin implements.

A plugin is any object (usually a module) registered under the ``zoo.plugins``
entry point group. It declares the contract version it was built for in a
module-level ``ZOO_CONTRACT_VERSION = "MAJOR.MINOR"`` and implements the hooks
below with ``@zoo_core.hookimpl``. The core calls a model's hooks on the one
plugin that provides it, so every hook except ``zoo_models`` receives models
of that plugin only.

Contract versioning: the major number changes when a hook changes in a way
that breaks existing plugins; the minor number when a hook is added. A plugin
is compatible when its major number equals the core's and its minor number is
not greater than the core's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pluggy

PROJECT_NAME = "zoo"
ENTRY_POINT_GROUP = "zoo.plugins"
CONTRACT_VERSION = "1.0"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@dataclass(frozen=True)
class ModelSpec:
    """A model a plugin provides, with its defaults.

    ``training`` contains the defaults of the common training options
    (``epochs``, ``batch_size``, ``lr``). ``settings`` contains the model's own
    settings, whose default values also fix their types for ``--set key=value``.
    """

    name: str
    description: str
    training: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainedModel:
    """A trained or loaded model, as the plugin's hooks exchange it.

    ``net`` is the plugin's own object (a Keras model, an ``nn.Module``); the
    core never looks inside it. ``extra`` contains plugin-specific facts about
    training (timings, cache use) that the run writes into metrics.json.
    """

    model: str
    net: Any
    parameters: int
    settings: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    """The train hook's result.

    ``history`` has one dict per epoch with at least ``train_loss``,
    ``val_loss`` and ``val_accuracy`` (a fraction). ``best_epoch`` is 1-based,
    and ``trained`` carries the weights of that epoch.
    """

    trained: TrainedModel
    history: list[dict[str, float]]
    best_epoch: int


@dataclass
class Evaluation:
    """Class probabilities, shape (N, 10), rows summing to 1, and the mean
    cross-entropy loss over the N images."""

    probabilities: np.ndarray
    loss: float


class ZooHookSpecs:
    """Hook specifications. Arguments are passed by keyword."""

    @hookspec
    def zoo_models(self) -> list[ModelSpec]:
        """Return the models this plugin provides."""

    @hookspec(firstresult=True)
    def zoo_train(self, model: str, data: Any, config: Any, reporter: Any) -> TrainResult:
        """Train ``model`` on ``data.train``, validating on ``data.val`` after each epoch.

        Args:
            model: the plugin's own model name (without the plugin prefix).
            data: a :class:`zoo_core.data.MNIST` with ``train``, ``val`` and
                ``test`` splits of (N, 28, 28) uint8 images and int64 labels.
            config: the resolved :class:`zoo_core.config.RunConfig`; the model
                settings are in ``config.settings``.
            reporter: a :class:`zoo_core.reporting.TrainingReporter`; call
                ``epoch_start``, ``batch_end`` and ``epoch_end`` so that every
                plugin prints the same progress and loss lines.

        Returns the weights of the epoch with the best validation accuracy.
        """

    @hookspec(firstresult=True)
    def zoo_evaluate(self, trained: TrainedModel, images: np.ndarray, labels: np.ndarray, config: Any) -> Evaluation:
        """Evaluate on (N, 28, 28) uint8 images with int64 labels."""

    @hookspec(firstresult=True)
    def zoo_predict(self, trained: TrainedModel, images: np.ndarray) -> np.ndarray:
        """Return class probabilities, shape (N, 10), for (N, 28, 28) uint8 images."""

    @hookspec(firstresult=True)
    def zoo_save(self, trained: TrainedModel, directory: str) -> None:
        """Write the trained model into ``directory``, which exists and is empty."""

    @hookspec(firstresult=True)
    def zoo_load(self, model: str, directory: str, settings: dict[str, Any], device: str) -> TrainedModel:
        """Load a model that ``zoo_save`` wrote into ``directory``."""

    @hookspec(firstresult=True)
    def zoo_info(self, model: str, settings: dict[str, Any]) -> dict[str, Any] | None:
        """Return extra facts about a model for ``zoo info`` (optional hook)."""
