"""The Keras model definitions and their defaults."""

from __future__ import annotations

from typing import Any

import keras

from zoo_core.errors import ConfigError
from zoo_core.hookspecs import ModelSpec
from zoo_keras.layers import FusedLSTM

ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "sigmoid", "elu", "selu")

MODELS = {
    "mlp": ModelSpec(
        name="mlp",
        description="Keras Sequential dense network: flatten, dense layers with dropout, softmax",
        training={"epochs": 20, "batch_size": 128, "lr": 1e-3},
        settings={"hidden": [512, 512], "activation": "relu", "dropout": 0.2, "schedule": "cosine"},
    ),
    "lstm": ModelSpec(
        name="lstm",
        description="Keras LSTM reading the 28 image rows as a 28-step sequence, then a dense softmax layer",
        training={"epochs": 12, "batch_size": 128, "lr": 2e-3},
        settings={"units": 128, "schedule": "cosine"},
    ),
}


def _check_settings(model: str, settings: dict[str, Any]) -> None:
    if model == "mlp":
        hidden = settings["hidden"]
        if not hidden or not all(isinstance(size, int) and size > 0 for size in hidden):
            raise ConfigError(f"mlp setting 'hidden' must list positive layer sizes, like [512, 512]; got {hidden!r}")
        if settings["activation"] not in ACTIVATIONS:
            raise ConfigError(
                f"mlp setting 'activation' has invalid value {settings['activation']!r}; use one of {', '.join(ACTIVATIONS)}"
            )
        if not 0.0 <= settings["dropout"] < 1.0:
            raise ConfigError(f"mlp setting 'dropout' must be in [0, 1), got {settings['dropout']}")
    if model == "lstm" and settings["units"] < 1:
        raise ConfigError(f"lstm setting 'units' must be at least 1, got {settings['units']}")
    if settings["schedule"] not in ("cosine", "constant"):
        raise ConfigError(f"{model} setting 'schedule' has invalid value {settings['schedule']!r}; use cosine or constant")


def build_model(model: str, settings: dict[str, Any]) -> keras.Model:
    """Build an uncompiled Keras model for (batch, 28, 28) float images in [0, 1]."""
    _check_settings(model, settings)
    if model == "mlp":
        layers: list[keras.layers.Layer] = [keras.Input(shape=(28, 28)), keras.layers.Flatten()]
        for size in settings["hidden"]:
            layers.append(keras.layers.Dense(size, activation=settings["activation"]))
            if settings["dropout"] > 0:
                layers.append(keras.layers.Dropout(settings["dropout"]))
        layers.append(keras.layers.Dense(10, activation="softmax"))
        return keras.Sequential(layers, name="mlp")
    if model == "lstm":
        # Each image row is one time step: (batch, 28, 28) reads as (batch, steps=28, features=28).
        return keras.Sequential(
            [keras.Input(shape=(28, 28)), FusedLSTM(settings["units"]), keras.layers.Dense(10, activation="softmax")],
            name="lstm",
        )
    raise ConfigError(f"the Keras plugin has no model {model!r}; choose one of {', '.join(MODELS)}")
