"""Time one training epoch of each Keras model against the same network in plain PyTorch.

Both sides get the same data (the 50,000-image train split, already in memory),
the same architecture, Adam at a constant learning rate, the same batch size
and the same thread count. Keras trains through ``model.fit`` as ``zoo run``
does (no validation pass), PyTorch through a hand-written loop on tensors.
Each side first runs a short warm-up epoch so that one-time costs (graph
tracing, allocator growth) are not counted.

    python benchmarks/keras_vs_torch.py [--threads N] [--batch-size 128] [--models mlp lstm]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

import zoo_keras  # noqa: F401  (selects the Keras backend)
import keras
from zoo_core.data import load_mnist
from zoo_keras.models import MODELS, build_model
from zoo_keras.training import to_inputs

WARMUP_IMAGES = 2048


class TorchLSTM(nn.Module):
    def __init__(self, units: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(28, units, batch_first=True)
        self.head = nn.Linear(units, 10)

    def forward(self, x):
        # x: (batch, 28 rows, 28 pixels), one row per time step
        _, (hidden, _) = self.lstm(x)
        return self.head(hidden[0])


def torch_model(name: str) -> nn.Module:
    settings = MODELS[name].settings
    if name == "mlp":
        layers: list[nn.Module] = [nn.Flatten()]
        width = 28 * 28
        for size in settings["hidden"]:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(settings["dropout"])]
            width = size
        layers.append(nn.Linear(width, 10))
        return nn.Sequential(*layers)
    return TorchLSTM(settings["units"])


def torch_epoch(model: nn.Module, optimizer, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
    started = time.perf_counter()
    model.train()
    order = torch.randperm(len(images))
    for start in range(0, len(images), batch_size):
        batch = order[start:start + batch_size]
        data, target = images[batch], labels[batch]

        logits = model(data)
        loss = nn.functional.cross_entropy(logits, target)

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def time_torch(name: str, x: np.ndarray, y: np.ndarray, batch_size: int, lr: float) -> float:
    torch.manual_seed(0)
    model = torch_model(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    images, labels = torch.from_numpy(x), torch.from_numpy(y)
    torch_epoch(model, optimizer, images[:WARMUP_IMAGES], labels[:WARMUP_IMAGES], batch_size)
    return torch_epoch(model, optimizer, images, labels, batch_size)


def time_keras(name: str, x: np.ndarray, y: np.ndarray, batch_size: int, lr: float) -> float:
    keras.utils.set_random_seed(0)
    settings = dict(MODELS[name].settings)
    model = build_model(name, settings)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(x[:WARMUP_IMAGES], y[:WARMUP_IMAGES], batch_size=batch_size, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="PyTorch CPU threads (default: all cores)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per batch (default: 128)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    parser.add_argument("--models", nargs="+", default=["mlp", "lstm"], choices=["mlp", "lstm"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = load_mnist()
    x, y = to_inputs(data.train.images), data.train.labels
    print(f"{len(x):,} images, batch {args.batch_size}, {args.threads} threads, torch {torch.__version__}, keras {keras.__version__}")
    print(f"{'model':<6} {'keras s':>9} {'torch s':>9} {'ratio':>7}")
    for name in args.models:
        keras_seconds = time_keras(name, x, y, args.batch_size, args.lr)
        torch_seconds = time_torch(name, x, y, args.batch_size, args.lr)
        print(f"{name:<6} {keras_seconds:9.2f} {torch_seconds:9.2f} {keras_seconds / torch_seconds:7.2f}", flush=True)


if __name__ == "__main__":
    main()
