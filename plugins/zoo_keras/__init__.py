"""Keras plugin: the dense network and the row-by-row LSTM, trained with ``model.fit``.

Keras 3 runs here on its PyTorch backend, which this module selects before
Keras is imported, so no TensorFlow is needed.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402  (the backend must be chosen first)

if keras.backend.backend() != "torch":
    raise ImportError(
        f"Keras was already imported with the {keras.backend.backend()!r} backend; "
        f"zoo's Keras plugin needs 'torch': unset KERAS_BACKEND or import zoo before keras"
    )

from zoo_core import hookimpl  # noqa: E402
from zoo_core.errors import saved_model_error  # noqa: E402
from zoo_core.hookspecs import Evaluation, ModelSpec, TrainedModel, TrainResult  # noqa: E402

from zoo_keras.models import MODELS, build_model  # noqa: E402
from zoo_keras.training import evaluate_model, fit_model, predict_probabilities  # noqa: E402

ZOO_CONTRACT_VERSION = "1.0"
MODEL_FILE = "model.keras"


@hookimpl
def zoo_models() -> list[ModelSpec]:
    return list(MODELS.values())


@hookimpl
def zoo_train(model, data, config, reporter) -> TrainResult:
    keras.utils.set_random_seed(config.seed)
    with keras.device(config.device):
        net = build_model(model, config.settings)
        history, best_epoch = fit_model(net, data, config, reporter)
    trained = TrainedModel(model=model, net=net, parameters=net.count_params(), settings=dict(config.settings))
    return TrainResult(trained=trained, history=history, best_epoch=best_epoch)


@hookimpl
def zoo_evaluate(trained, images, labels, config) -> Evaluation:
    with keras.device(config.device):
        return evaluate_model(trained.net, images, labels)


@hookimpl
def zoo_predict(trained, images):
    return predict_probabilities(trained.net, images)


@hookimpl
def zoo_save(trained, directory) -> None:
    trained.net.save(os.path.join(directory, MODEL_FILE))


@hookimpl
def zoo_load(model, directory, settings, device) -> TrainedModel:
    path = os.path.join(directory, MODEL_FILE)
    try:
        with keras.device(device):
            net = keras.models.load_model(path, compile=False)
    except (OSError, ValueError, KeyError, EOFError) as error:  # a .keras file is a zip archive
        raise saved_model_error(path, error) from error
    return TrainedModel(model=model, net=net, parameters=net.count_params(), settings=dict(settings))
