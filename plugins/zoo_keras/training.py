"""``model.fit`` with the core's progress output and best-epoch weights."""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from zoo_core.evaluation import cross_entropy
from zoo_core.hookspecs import Evaluation

PREDICT_BATCH_SIZE = 1000


def to_inputs(images: np.ndarray) -> np.ndarray:
    """Scale (N, 28, 28) uint8 images to float32 in [0, 1]."""
    return images.astype(np.float32) / 255.0


class ReporterCallback(keras.callbacks.Callback):
    """Feeds the core's reporter and keeps the weights of the best validation epoch."""

    def __init__(self, reporter, steps_per_epoch: int) -> None:
        super().__init__()
        self.reporter = reporter
        self.steps_per_epoch = steps_per_epoch
        self.history: list[dict[str, float]] = []
        self.best_accuracy = -1.0
        self.best_epoch = 0
        self.best_weights: list[np.ndarray] | None = None
        self._previous_mean = 0.0
        self._epoch_started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()
        self.reporter.epoch_start(epoch + 1, self.steps_per_epoch)
        self._previous_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        # Keras logs the running mean of the epoch; the batch's own loss follows from two consecutive means.
        mean = float(logs["loss"])
        loss = (batch + 1) * mean - batch * self._previous_mean
        self._previous_mean = mean
        self.reporter.batch_end(batch + 1, loss)

    def on_epoch_end(self, epoch, logs=None):
        entry = {
            "train_loss": float(logs["loss"]),
            "val_loss": float(logs["val_loss"]),
            "val_accuracy": float(logs["val_accuracy"]),
            "seconds": time.perf_counter() - self._epoch_started,
        }
        self.history.append(entry)
        self.reporter.epoch_end(entry["train_loss"], entry["val_loss"], entry["val_accuracy"])
        if entry["val_accuracy"] > self.best_accuracy:
            self.best_accuracy = entry["val_accuracy"]
            self.best_epoch = epoch + 1
            self.best_weights = [np.array(w) for w in self.model.get_weights()]


def fit_model(net: keras.Model, data, config, reporter) -> tuple[list[dict[str, float]], int]:
    """Compile and train ``net``; restore the best validation epoch's weights.

    Returns the per-epoch history and the 1-based best epoch.
    """
    x_train, y_train = to_inputs(data.train.images), data.train.labels
    x_val, y_val = to_inputs(data.val.images), data.val.labels
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)

    lr = config.lr
    if config.settings.get("schedule") == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=steps_per_epoch * config.epochs)
    net.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )

    callback = ReporterCallback(reporter, steps_per_epoch)
    net.fit(
        x_train,
        y_train,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=(x_val, y_val),
        validation_batch_size=PREDICT_BATCH_SIZE,
        shuffle=True,
        callbacks=[callback],
        verbose=0,
    )
    net.set_weights(callback.best_weights)
    return callback.history, callback.best_epoch


def predict_probabilities(net: keras.Model, images: np.ndarray) -> np.ndarray:
    """Return (N, 10) float64 class probabilities for (N, 28, 28) uint8 images."""
    probabilities = net.predict(to_inputs(images), batch_size=PREDICT_BATCH_SIZE, verbose=0)
    return np.asarray(probabilities, dtype=np.float64)


def evaluate_model(net: keras.Model, images: np.ndarray, labels: np.ndarray) -> Evaluation:
    probabilities = predict_probabilities(net, images)
    return Evaluation(probabilities=probabilities, loss=cross_entropy(probabilities, labels))
