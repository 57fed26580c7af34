"""zoo plugin ``cnn``: a small convolutional network for MNIST in plain PyTorch.

Training goes through ``zoo_core.torch_training.fit``, so the progress and loss
lines look like those of every other zoo model, and the weights of the best
validation epoch are kept. The optimizer is AdamW with a one-cycle learning
rate schedule whose peak is ``--lr``.
"""

from __future__ import annotations

import math
import os

import torch

from zoo_core import hookimpl
from zoo_core.hookspecs import Evaluation, ModelSpec, TrainedModel, TrainResult
from zoo_core.torch_training import count_parameters, evaluate_logits, fit, predict_logits, to_tensor
from zoo_cnn.network import build_network

ZOO_CONTRACT_VERSION = "1.0"
WEIGHTS_FILE = "weights.pt"

CNN = ModelSpec(
    name="cnn",
    description="CNN: two blocks of two 3x3 convolutions (32, 64 channels) with batch norm and max-pool, "
                "dropout, dense 128, trained with random shifts",
    training={"epochs": 6, "batch_size": 128, "lr": 3e-3},
    settings={"dropout": 0.25, "hidden": 128, "shift": 2, "weight_decay": 0.01},
)


@hookimpl
def zoo_models() -> list[ModelSpec]:
    return [CNN]


@hookimpl
def zoo_train(model, data, config, reporter) -> TrainResult:
    torch.manual_seed(config.seed)
    network = build_network(config.settings).to(config.device)
    train = (to_tensor(data.train.images), torch.from_numpy(data.train.labels))
    val = (to_tensor(data.val.images), torch.from_numpy(data.val.labels))

    optimizer = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.settings["weight_decay"])
    steps_per_epoch = math.ceil(len(train[0]) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch
    )
    result = fit(network, train, val, optimizer, config, reporter, scheduler)

    trained = TrainedModel(
        model=model, net=network, parameters=count_parameters(network), settings=dict(config.settings)
    )
    return TrainResult(trained=trained, history=result.history, best_epoch=result.best_epoch)


def _device(trained: TrainedModel) -> torch.device:
    return next(trained.net.parameters()).device


@hookimpl
def zoo_evaluate(trained, images, labels, config) -> Evaluation:
    logits = predict_logits(trained.net, to_tensor(images), _device(trained))
    return evaluate_logits(logits, torch.from_numpy(labels))


@hookimpl
def zoo_predict(trained, images):
    logits = predict_logits(trained.net, to_tensor(images), _device(trained))
    return torch.softmax(logits.double(), dim=1).numpy()


@hookimpl
def zoo_save(trained, directory) -> None:
    torch.save(trained.net.state_dict(), os.path.join(directory, WEIGHTS_FILE))


@hookimpl
def zoo_load(model, directory, settings, device) -> TrainedModel:
    network = build_network(settings)
    state = torch.load(os.path.join(directory, WEIGHTS_FILE), map_location="cpu", weights_only=True)
    network.load_state_dict(state)
    network.to(device).eval()
    return TrainedModel(model=model, net=network, parameters=count_parameters(network), settings=dict(settings))


@hookimpl
def zoo_info(model, settings) -> dict:
    return {"parameters": f"{count_parameters(build_network(settings)):,}", "weights file": WEIGHTS_FILE}
