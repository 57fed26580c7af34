"""``zoo run`` and ``zoo evaluate``: train or reload a model, test it, keep the run."""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata as metadata
import json
import platform
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
import yaml

from zoo_core import __version__, runs
from zoo_core.config import DEVICE_PATTERN, RunConfig
from zoo_core.data import MNIST, load_mnist
from zoo_core.errors import ConfigError, PluginError
from zoo_core.evaluation import (
    Metrics,
    compute_metrics,
    format_results,
    plot_confusion,
    plot_learning_curves,
    write_confusion_csv,
)
from zoo_core.hookspecs import Evaluation, TrainedModel, TrainResult
from zoo_core.plugins import PluginHost
from zoo_core.registry import ResolvedModel
from zoo_core.reporting import TrainingReporter
from zoo_core.results import DB_NAME, ResultsStore, RunRecord

VERSIONED_PACKAGES = ("numpy", "torch", "torchvision", "timm", "keras", "scikit-learn", "pluggy")

# glibc gives memory at the top of the heap back to the system when training
# frees it, and the next batch's allocations fault the same pages in again.
# Keeping 256 MiB free there made training steps of timm's selecsls42 on one
# CPU thread 15% faster (benchmarks/training_step.py). M_TOP_PAD is mallopt's -2.
HEAP_TOP_PAD = 256 * 1024 * 1024
M_TOP_PAD = -2


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    metrics: Metrics
    record: RunRecord


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "zoo": __version__}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def resolve_device(device: str) -> str:
    """Turn ``auto`` into ``cuda`` or ``cpu``; reject a GPU device that is not present."""
    if not DEVICE_PATTERN.match(device):
        raise ConfigError(f"device {device!r} is invalid: use auto, cpu, cuda, cuda:N or mps")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} is not available: no CUDA GPU was found; use --device cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' is not available on this machine; use --device cpu")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare(config: RunConfig) -> None:
    """Apply threads, device and seed before any model is built."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    config.device = resolve_device(config.device)
    seed_everything(config.seed)
    pad_heap()


@functools.cache
def pad_heap(pad: int = HEAP_TOP_PAD) -> bool:
    """Ask glibc to keep ``pad`` bytes free at the top of the heap, and return whether it agreed.

    Elsewhere (macOS, Windows, musl) nothing changes and the result is False.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        return ctypes.CDLL("libc.so.6").mallopt(M_TOP_PAD, pad) == 1
    except (OSError, AttributeError):
        return False


def evaluate(host: PluginHost, plugin: str, trained: TrainedModel, data: MNIST, config: RunConfig) -> tuple[Metrics, float]:
    """Evaluate on the test split; return the metrics and inference images per second."""
    started = time.perf_counter()
    evaluation = host.call(
        plugin,
        "zoo_evaluate",
        expected=Evaluation,
        trained=trained,
        images=data.test.images,
        labels=data.test.labels,
        config=config,
    )
    seconds = time.perf_counter() - started
    probabilities = np.asarray(evaluation.probabilities)
    if probabilities.shape != (len(data.test), 10):
        raise PluginError(
            f"plugin {plugin!r} zoo_evaluate returned probabilities of shape {probabilities.shape}, "
            f"expected {(len(data.test), 10)}"
        )
    metrics = compute_metrics(data.test.labels, probabilities, evaluation.loss)
    return metrics, len(data.test) / max(seconds, 1e-9)


def write_artifacts(run_dir: Path, config: RunConfig, resolved: ResolvedModel, result: TrainResult,
                    metrics: Metrics, extra: dict) -> None:
    settings = {"plugin": resolved.plugin, **config.to_dict()}
    (run_dir / runs.SETTINGS_FILE).write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    summary = {**metrics.summary(), **extra, "best_epoch": result.best_epoch, "history": result.history}
    (run_dir / runs.METRICS_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (run_dir / runs.REPORT_FILE).write_text(format_results(metrics), encoding="utf-8")
    write_confusion_csv(metrics.confusion, run_dir / "confusion_matrix.csv")
    title = f"{resolved.qualified}, seed {config.seed}: test accuracy {metrics.accuracy * 100:.2f}%"
    plot_confusion(metrics.confusion, run_dir / "confusion_matrix.png", title)
    plot_learning_curves(result.history, run_dir / "learning_curves.png", resolved.qualified)


def run(config: RunConfig, resolved: ResolvedModel, host: PluginHost, stream: TextIO | None = None) -> RunOutcome:
    """Train, test and keep one run; an interrupted or failed run leaves nothing behind.

    ``stream`` defaults to the current ``sys.stdout``, looked up at call time.
    """
    stream = stream if stream is not None else sys.stdout
    prepare(config)
    data = load_mnist(config.data_dir).limit(config.limit)
    root = runs.runs_root(config.runs_dir)
    config.runs_dir = str(root)
    run_id = runs.new_run_id(resolved.plugin, resolved.model, config.seed)
    database = root / DB_NAME
    # Opening an existing database first reports a damaged one before any training time is spent.
    store = ResultsStore(database) if database.exists() else None
    partial = runs.start_run(root, run_id)
    if not config.quiet:
        print(
            f"Training {resolved.qualified} on {len(data.train):,} images "
            f"(validation {len(data.val):,}, test {len(data.test):,}) on {config.device}, seed {config.seed}",
            file=stream,
        )

    try:
        reporter = TrainingReporter(config.epochs, config.log_interval, config.quiet, stream)
        started = time.perf_counter()
        try:
            result = host.call(
                resolved.plugin, "zoo_train", expected=TrainResult,
                model=resolved.model, data=data, config=config, reporter=reporter,
            )
        finally:
            reporter.close()
        train_seconds = time.perf_counter() - started
        if not isinstance(result.trained, TrainedModel):
            raise PluginError(f"plugin {resolved.plugin!r} zoo_train returned no TrainedModel in TrainResult.trained")

        metrics, images_per_second = evaluate(host, resolved.plugin, result.trained, data, config)
        model_dir = partial / runs.MODEL_DIR
        model_dir.mkdir()
        host.call(resolved.plugin, "zoo_save", trained=result.trained, directory=str(model_dir))

        record = RunRecord(
            run_id=run_id,
            model=resolved.qualified,
            plugin=resolved.plugin,
            settings=config.hyperparameters(),
            seed=config.seed,
            test_accuracy=metrics.accuracy,
            macro_f1=metrics.macro_f1,
            test_loss=metrics.loss,
            parameters=int(result.trained.parameters),
            train_seconds=train_seconds,
            images_per_second=images_per_second,
            device=config.device,
            versions=library_versions(),
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            run_dir=str(root / run_id),
        )
        extra = {
            "parameters": record.parameters,
            "train_seconds": train_seconds,
            "images_per_second": images_per_second,
            "device": config.device,
            "versions": record.versions,
            "data": data.source,
            "training_details": result.trained.extra,
        }
        write_artifacts(partial, config, resolved, result, metrics, extra)
        run_dir = runs.finish_run(partial, run_id)
    except BaseException:
        runs.discard_run(partial)
        raise

    # The database row is written last: a run is either complete on disk and in the table, or absent.
    try:
        (store or ResultsStore(database)).add(record)
    except BaseException:
        runs.discard_run(run_dir)
        raise
    return RunOutcome(run_id=run_id, run_dir=run_dir, metrics=metrics, record=record)


def load_run(run_dir: Path, host: PluginHost, device: str = "auto") -> tuple[RunConfig, str, TrainedModel]:
    """Reload a kept run's settings and model."""
    saved = runs.read_settings(run_dir)
    plugin = saved.pop("plugin")
    config = RunConfig(**saved)
    config.device = resolve_device(device)
    _, _, model = config.model.partition("/")
    trained = host.call(
        plugin, "zoo_load", expected=TrainedModel,
        model=model, directory=str(run_dir / runs.MODEL_DIR), settings=config.settings, device=config.device,
    )
    return config, plugin, trained
