"""A tiny zoo plugin for tests, whose models predict the class frequencies of their training labels.

Tests install a copy of this module as a real distribution with a ``zoo.plugins``
entry point, and append lines to the copy to change one thing, for example
``ZOO_CONTRACT_VERSION = "2.0"`` or a new ``zoo_train``. ``MODEL_NAMES`` is read
when ``zoo_models`` is called, so an appended assignment also takes effect.
"""

from __future__ import annotations

import os

import numpy as np

from zoo_core import hookimpl
from zoo_core.evaluation import cross_entropy
from zoo_core.hookspecs import Evaluation, ModelSpec, TrainedModel, TrainResult

ZOO_CONTRACT_VERSION = "1.0"
MODEL_NAMES = ("freq",)
WEIGHTS_FILE = "frequencies.npy"


def _frequencies(labels: np.ndarray, smoothing: float) -> np.ndarray:
    counts = np.bincount(labels, minlength=10).astype(np.float64) + smoothing
    return counts / counts.sum()


def _probabilities(trained: TrainedModel, count: int) -> np.ndarray:
    return np.tile(trained.net, (count, 1))


@hookimpl
def zoo_models():
    return [
        ModelSpec(
            name=name,
            description=f"class frequencies ({name})",
            training={"epochs": 2, "batch_size": 1000},
            settings={"smoothing": 1.0},
        )
        for name in MODEL_NAMES
    ]


@hookimpl
def zoo_train(model, data, config, reporter):
    frequencies = _frequencies(data.train.labels, config.settings["smoothing"])
    val_probabilities = np.tile(frequencies, (len(data.val), 1))
    val_accuracy = float((val_probabilities.argmax(axis=1) == data.val.labels).mean())
    val_loss = cross_entropy(val_probabilities, data.val.labels)
    train_loss = cross_entropy(np.tile(frequencies, (len(data.train), 1)), data.train.labels)
    batches = max(1, -(-len(data.train) // config.batch_size))
    history = []
    for epoch in range(1, config.epochs + 1):
        reporter.epoch_start(epoch, batches)
        for batch in range(1, batches + 1):
            reporter.batch_end(batch, train_loss)
        reporter.epoch_end(train_loss, val_loss, val_accuracy)
        history.append({"train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy})
    trained = TrainedModel(model=model, net=frequencies, parameters=10, settings=dict(config.settings))
    return TrainResult(trained=trained, history=history, best_epoch=1)


@hookimpl
def zoo_evaluate(trained, images, labels, config):
    probabilities = _probabilities(trained, len(images))
    return Evaluation(probabilities=probabilities, loss=cross_entropy(probabilities, labels))


@hookimpl
def zoo_predict(trained, images):
    return _probabilities(trained, len(images))


@hookimpl
def zoo_save(trained, directory):
    np.save(os.path.join(directory, WEIGHTS_FILE), trained.net)


@hookimpl
def zoo_load(model, directory, settings, device):
    frequencies = np.load(os.path.join(directory, WEIGHTS_FILE))
    return TrainedModel(model=model, net=frequencies, parameters=10, settings=dict(settings))
