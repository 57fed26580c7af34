"""The conformance kit: checks that a plugin's models honor the hook contract.

For each model the kit trains on a small MNIST subset (1,000 training images,
250 validation and 1,000 test images by default) and checks that:

- ``train``: zoo_train returns a TrainResult with a TrainedModel, a history of
  one entry per epoch and a valid best epoch, and feeds the reporter.
- ``loss_falls``: the mean batch loss of the last few batches is below that of
  the first few.
- ``evaluate``: zoo_evaluate returns float probabilities of shape (N, 10) whose
  rows sum to 1, and a finite loss that matches them.
- ``accuracy``: the test accuracy is above chance.
- ``predict``: zoo_predict returns the same probabilities as zoo_evaluate, on
  the first 256 test images.
- ``save_load``: a model saved into an empty folder and loaded back predicts
  the same probabilities.
- ``seed``: two short trainings with the same seed give the same predictions.
- ``info``: the optional zoo_info hook returns a dict or None.

A plugin-level ``hooks`` check comes first, and a check whose prerequisite
failed is reported as SKIP.

Every hook is called through PluginHost.call, so an exception or a result of
the wrong type becomes a failed check that names the plugin and the hook.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from zoo_core.config import RunConfig, build_config, validate
from zoo_core.data import MNIST, Split, load_mnist
from zoo_core.errors import ConfigError, ModelNotFoundError, ZooError
from zoo_core.evaluation import PROBABILITY_FLOOR, cross_entropy
from zoo_core.hookspecs import Evaluation, ModelSpec, TrainedModel, TrainResult
from zoo_core.plugins import PluginHost
from zoo_core.reporting import TrainingReporter

PASS = "PASS"
FAIL = "FAIL"
SKIP = "SKIP"
TABLE_HEADERS = ["MODEL", "CHECK", "RESULT", "SECONDS", "MESSAGE"]

REQUIRED_HOOKS = ("zoo_models", "zoo_train", "zoo_evaluate", "zoo_predict", "zoo_save", "zoo_load")
HISTORY_KEYS = ("train_loss", "val_loss", "val_accuracy")

DEFAULT_TRAIN_SIZE = 1000
DEFAULT_EVAL_SIZE = 1000
# Validation only picks the best epoch, so 250 images are enough. Validating
# vit_b_16 on 1,000 images after each epoch took about a tenth of its kit run.
DEFAULT_VAL_SIZE = 250
# Two epochs of 32-image batches on 1,000 images give 64 steps: enough for the
# loss to fall and the accuracy to clear chance, yet quick on a CPU.
DEFAULT_EPOCHS = 2
DEFAULT_BATCH_SIZE = 32
# Chance is 0.1 on ten roughly balanced classes. By default the accuracy must
# clear chance by CHANCE_MARGIN standard deviations of a guesser's accuracy on
# the test images: 0.147 on 1,000 images, 0.195 on 250. By the normal
# approximation, a model that guesses passes with a probability below one in a million.
CHANCE = 0.1
CHANCE_MARGIN = 5.0
DEFAULT_MIN_ACCURACY = None

ROW_SUM_TOLERANCE = 1e-4
AGREEMENT_TOLERANCE = 1e-5
LOSS_RELATIVE_TOLERANCE = 1e-2
LOSS_WINDOW = 5
MIN_BATCH_LOSSES = 4
# The predict, save_load and seed checks compare probabilities on this many test images.
COMPARED_IMAGES = 256
# The seed check trains twice on the first SEED_CHECK_BATCHES batches of the
# training images, for the kit's epochs, and validates on one batch. An
# unseeded generator already changes the first steps, and two short trainings
# cost far less than one more full training.
SEED_CHECK_BATCHES = 4
# A model that fails only these checks after a short run from random weights
# may learn slowly rather than be broken, so check_with_retries gives it longer runs.
LEARNING_CHECKS = ("accuracy", "loss_falls")
RETRY_EPOCHS = 4
# Some networks collapse at the backbone plugins' learning rate of 1e-3 and give
# every image the same class: timm poolformerv2_s36 scores 0.116, the share of
# the digit 2, after 128 steps, and 0.208 after 64 steps at 3e-4.
RETRY_LR = 3e-4


@dataclass
class CheckResult:
    """The outcome of one check of one model: PASS, FAIL or SKIP, with a message and its duration."""

    plugin: str
    model: str
    check: str
    outcome: str
    message: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.outcome == PASS

    def row(self) -> list[str]:
        """Return the cells of this result under TABLE_HEADERS."""
        return [self.model, self.check, self.outcome, f"{self.seconds:.1f}", self.message]


class CheckFailed(Exception):
    """Raised inside a check to fail it with a message."""


class RecordingReporter(TrainingReporter):
    """A TrainingReporter that also keeps every call, so the kit can check what the plugin reported."""

    def __init__(self, epochs: int, quiet: bool = True, stream=None) -> None:
        super().__init__(epochs, log_interval=100, quiet=quiet, stream=stream)
        self.batch_losses: list[float] = []
        self.epochs_started: list[int] = []
        self.epochs_ended: list[tuple[float, float, float]] = []

    def epoch_start(self, epoch: int, num_batches: int) -> None:
        self.epochs_started.append(epoch)
        super().epoch_start(epoch, num_batches)

    def batch_end(self, batch: int, loss: float) -> None:
        self.batch_losses.append(float(loss))
        super().batch_end(batch, loss)

    def epoch_end(self, train_loss: float, val_loss: float, val_accuracy: float) -> None:
        self.epochs_ended.append((float(train_loss), float(val_loss), float(val_accuracy)))
        super().epoch_end(train_loss, val_loss, val_accuracy)


@dataclass
class CheckOptions:
    """Training options and thresholds of one conformance run."""

    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"
    min_accuracy: float | None = DEFAULT_MIN_ACCURACY
    quiet: bool = True
    assignments: tuple[str, ...] = ()


def small_mnist(
    data: MNIST,
    train_size: int = DEFAULT_TRAIN_SIZE,
    eval_size: int = DEFAULT_EVAL_SIZE,
    val_size: int = DEFAULT_VAL_SIZE,
) -> MNIST:
    """Return ``data`` cut to its first ``train_size`` training, ``val_size`` validation and ``eval_size`` test images."""
    for name, size in (("evaluation", eval_size), ("validation", val_size)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"invalid {name} size {size!r}: expected a number of images of at least 1")
    limited = data.limit(train_size)
    return dataclasses.replace(limited, val=_head(data.val, val_size), test=_head(data.test, eval_size))


def _head(split: Split, count: int) -> Split:
    return Split(split.name, split.images[:count], split.labels[:count])


def check_plugin(
    host: PluginHost,
    plugin_name: str,
    models: Sequence[str] | None = None,
    data: MNIST | None = None,
    *,
    limit: int = DEFAULT_TRAIN_SIZE,
    eval_size: int = DEFAULT_EVAL_SIZE,
    val_size: int = DEFAULT_VAL_SIZE,
    data_dir: str | None = None,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    threads: int | None = None,
    device: str = "cpu",
    min_accuracy: float | None = DEFAULT_MIN_ACCURACY,
    quiet: bool = True,
    settings: Sequence[str] = (),
) -> list[CheckResult]:
    """Run the conformance checks on ``models`` of one plugin (all its models when None).

    ``data`` is used as given. Without it, the kit loads MNIST from
    ``data_dir`` (default: $ZOO_DATA_DIR, else the shipped copy). It then keeps
    ``limit`` training, ``val_size`` validation and ``eval_size`` test images. The device
    defaults to the CPU because CUDA kernels may be nondeterministic, which
    would fail the seed check. ``settings`` holds ``key=value`` model settings,
    as ``zoo run --set`` takes them, applied to every checked model
    (``pretrained=false`` checks backbones without downloading weights). Raises PluginError when the plugin is not
    installed, ModelNotFoundError when a requested model is not one of its
    models, and ConfigError for an invalid option. A plugin that is installed but failed to load gets one failed
    ``load`` check.
    """
    info = host.plugins.get(plugin_name)
    if info is None:
        host.get(plugin_name)  # raises PluginError naming the installed plugins
    if not info.loaded:
        return [CheckResult(plugin_name, "-", "load", FAIL, info.error or "the plugin failed to load", 0.0)]

    # Invalid options raise ConfigError here, before any training, instead of failing every model's train check.
    validate(RunConfig(model=plugin_name, epochs=epochs, batch_size=batch_size, seed=seed, threads=threads, device=device))
    selected = _select_models(plugin_name, info.models, models)
    for spec in selected:  # a misspelled or mistyped setting raises ConfigError here, before any training
        build_config(f"{plugin_name}/{spec.name}", spec.training, spec.settings, assignments=list(settings))
    results = [_check_hooks(plugin_name, info.hooks)]
    if data is None:
        data = small_mnist(load_mnist(data_dir), limit, eval_size, val_size)
    options = CheckOptions(epochs, batch_size, seed, threads, device, min_accuracy, quiet, tuple(settings))
    for spec in selected:
        results.extend(ModelChecker(host, plugin_name, spec, data, options).run())
    return results


def _select_models(plugin: str, available: dict[str, ModelSpec], requested: Sequence[str] | None) -> list[ModelSpec]:
    if requested is None:
        return list(available.values())
    unknown = [name for name in requested if name not in available]
    if unknown:
        names = ", ".join(available) or "none"
        raise ModelNotFoundError(
            f"plugin {plugin!r} provides no model {', '.join(repr(name) for name in unknown)}; "
            f"its models are: {names}"
        )
    return [available[name] for name in requested]


def _check_hooks(plugin: str, hooks: list[str]) -> CheckResult:
    missing = [hook for hook in REQUIRED_HOOKS if hook not in hooks]
    if missing:
        message = f"required hooks not implemented: {', '.join(missing)}"
        return CheckResult(plugin, "-", "hooks", FAIL, message, 0.0)
    optional = [hook for hook in hooks if hook not in REQUIRED_HOOKS]
    message = "all required hooks implemented" + (f", plus {', '.join(optional)}" if optional else "")
    return CheckResult(plugin, "-", "hooks", PASS, message, 0.0)


@dataclass
class _Trained:
    result: TrainResult
    reporter: RecordingReporter
    config: RunConfig


@dataclass
class ModelChecker:
    """Runner of the checks of one model, in order, because later checks use what earlier ones produced."""

    host: PluginHost
    plugin: str
    spec: ModelSpec
    data: MNIST
    options: CheckOptions
    results: list[CheckResult] = field(default_factory=list)
    trained: _Trained | None = None
    evaluation: Evaluation | None = None
    predicted: np.ndarray | None = None

    def run(self) -> list[CheckResult]:
        self._check("train", self.check_train)
        self._check("loss_falls", self.check_loss_falls, needs=("train",))
        self._check("evaluate", self.check_evaluate, needs=("train",))
        self._check("accuracy", self.check_accuracy, needs=("evaluate",))
        self._check("predict", self.check_predict, needs=("train",))
        self._check("save_load", self.check_save_load, needs=("train",))
        self._check("seed", self.check_seed, needs=("train",))
        self._check("info", self.check_info)
        return self.results

    def _check(self, name: str, check: Callable[[], str], needs: tuple[str, ...] = ()) -> None:
        failed = [r.check for r in self.results if r.check in needs and not r.passed]
        if failed:
            message = f"not run because the {' and '.join(failed)} check failed"
            self.results.append(CheckResult(self.plugin, self.spec.name, name, SKIP, message, 0.0))
            return
        started = time.perf_counter()
        try:
            message = check()
            outcome = PASS
        except (CheckFailed, ZooError) as error:
            message, outcome = str(error), FAIL
        # A broken plugin can return objects that make any step of a check raise,
        # and the kit must report that as a failed check instead of stopping.
        except Exception as error:
            message, outcome = f"{type(error).__name__}: {error}", FAIL
        seconds = time.perf_counter() - started
        self.results.append(CheckResult(self.plugin, self.spec.name, name, outcome, message, seconds))

    # -- training -------------------------------------------------------------

    def _config(self) -> RunConfig:
        options = {
            "epochs": self.options.epochs,
            "batch_size": self.options.batch_size,
            "seed": self.options.seed,
            "limit": len(self.data.train),
            "threads": self.options.threads,
            "device": self.options.device,
            "quiet": self.options.quiet,
        }
        qualified = f"{self.plugin}/{self.spec.name}"
        return build_config(
            qualified, self.spec.training, self.spec.settings, options=options, assignments=list(self.options.assignments)
        )

    def _train(self, config: RunConfig, data: MNIST) -> _Trained:
        from zoo_core import runner  # imports torch, so only when a model is trained

        runner.prepare(config)
        reporter = RecordingReporter(config.epochs, quiet=config.quiet)
        try:
            result = self.host.call(
                self.plugin, "zoo_train", expected=TrainResult,
                model=self.spec.name, data=data, config=copy.deepcopy(config), reporter=reporter,
            )
        finally:
            reporter.close()
        if not isinstance(result.trained, TrainedModel):
            raise CheckFailed(
                f"plugin {self.plugin!r} returned a TrainResult from zoo_train whose 'trained' is "
                f"{type(result.trained).__name__}, expected TrainedModel"
            )
        return _Trained(result, reporter, config)

    def check_train(self) -> str:
        self.trained = self._train(self._config(), self.data)
        result, reporter = self.trained.result, self.trained.reporter
        epochs = self.trained.config.epochs
        history = result.history
        if not isinstance(history, list) or not 1 <= len(history) <= epochs:
            count = len(history) if isinstance(history, list) else type(history).__name__
            raise CheckFailed(f"TrainResult.history must list one dict per epoch (1 to {epochs}), got {count}")
        for number, entry in enumerate(history, start=1):
            missing = [key for key in HISTORY_KEYS if not isinstance(entry, dict) or key not in entry]
            if missing:
                raise CheckFailed(f"history entry of epoch {number} lacks {', '.join(missing)}")
        best = result.best_epoch
        if isinstance(best, bool) or not isinstance(best, int) or not 1 <= best <= len(history):
            raise CheckFailed(f"TrainResult.best_epoch is {best!r}, expected a 1-based epoch from 1 to {len(history)}")
        if len(reporter.epochs_ended) != len(history):
            raise CheckFailed(
                f"reporter.epoch_end was called {len(reporter.epochs_ended)} times for {len(history)} epochs; "
                f"call it once at the end of every epoch"
            )
        return (
            f"{len(history)} epochs, {len(reporter.batch_losses)} batches on {len(self.data.train):,} images, "
            f"best epoch {best}, {result.trained.parameters:,} parameters"
        )

    def check_loss_falls(self) -> str:
        losses = self.trained.reporter.batch_losses
        if len(losses) < MIN_BATCH_LOSSES:
            raise CheckFailed(
                f"only {len(losses)} batch losses were reported, and the check needs at least {MIN_BATCH_LOSSES}; "
                f"call reporter.batch_end after every batch, or lower --batch-size"
            )
        if not all(math.isfinite(loss) for loss in losses):
            raise CheckFailed("the reported batch losses include NaN or infinity")
        window = max(1, min(LOSS_WINDOW, len(losses) // 4))
        first = float(np.mean(losses[:window]))
        last = float(np.mean(losses[-window:]))
        message = f"mean loss of the first {window} batches {first:.4f}, of the last {window} {last:.4f}"
        if not last < first:
            raise CheckFailed(f"training loss did not fall: {message}")
        return message

    # -- outputs --------------------------------------------------------------

    def check_evaluate(self) -> str:
        test = self.data.test
        evaluation = self.host.call(
            self.plugin, "zoo_evaluate", expected=Evaluation,
            trained=self.trained.result.trained, images=test.images, labels=test.labels,
            config=copy.deepcopy(self.trained.config),
        )
        _check_probabilities("zoo_evaluate", "Evaluation.probabilities", evaluation.probabilities, len(test))
        loss = evaluation.loss
        if isinstance(loss, bool) or not isinstance(loss, (int, float, np.floating)) or not math.isfinite(loss):
            raise CheckFailed(f"Evaluation.loss is {loss!r}, expected a finite float")
        expected_loss = cross_entropy(evaluation.probabilities, test.labels)
        tolerance = LOSS_RELATIVE_TOLERANCE * max(1.0, expected_loss)
        picked = evaluation.probabilities[np.arange(len(test)), test.labels]
        floored = int((picked < PROBABILITY_FLOOR).sum())
        message = f"probabilities {evaluation.probabilities.shape} {evaluation.probabilities.dtype}, loss {loss:.4f}"
        if floored:
            # The true label's probability underflowed on some images, so the
            # cross-entropy of the probabilities is only a lower bound of the loss.
            if loss < expected_loss - tolerance:
                raise CheckFailed(
                    f"Evaluation.loss is {loss:.4f}, below {expected_loss:.4f}, the least cross-entropy that its "
                    f"probabilities allow"
                )
            message += (
                f" (at least {expected_loss:.4f}: the true label's probability is below {PROBABILITY_FLOOR:.0e} "
                f"on {floored} of {len(test):,} images)"
            )
        elif abs(loss - expected_loss) > tolerance:
            raise CheckFailed(
                f"Evaluation.loss is {loss:.4f}, but the cross-entropy of its probabilities is {expected_loss:.4f}"
            )
        self.evaluation = evaluation
        return message

    def check_accuracy(self) -> str:
        labels = self.data.test.labels
        accuracy = float((self.evaluation.probabilities.argmax(axis=1) == labels).mean())
        minimum = self.options.min_accuracy
        if minimum is None:
            minimum = min_accuracy_above_chance(len(labels))
        message = (
            f"test accuracy {accuracy:.4f} on {len(labels):,} images "
            f"(must exceed {minimum:.3f}; chance is {CHANCE:.2f})"
        )
        if not accuracy > minimum:
            raise CheckFailed(message)
        return message

    def _predict(self, trained: TrainedModel, images: np.ndarray) -> np.ndarray:
        probabilities = self.host.call(self.plugin, "zoo_predict", expected=np.ndarray, trained=trained, images=images)
        _check_probabilities("zoo_predict", "the result", probabilities, len(images))
        return probabilities

    def check_predict(self) -> str:
        images = self.data.test.images[:COMPARED_IMAGES]
        probabilities = self._predict(self.trained.result.trained, images)
        self.predicted = probabilities
        message = f"probabilities {probabilities.shape} {probabilities.dtype}"
        if self.evaluation is None:
            return f"{message}; not compared with zoo_evaluate, whose check failed"
        difference = float(np.abs(probabilities - self.evaluation.probabilities[:len(images)]).max())
        if difference > AGREEMENT_TOLERANCE:
            raise CheckFailed(
                f"zoo_predict and zoo_evaluate disagree on the same images: "
                f"max probability difference {difference:.2e} exceeds {AGREEMENT_TOLERANCE:.0e}"
            )
        return f"{message}, equal to zoo_evaluate's within {AGREEMENT_TOLERANCE:.0e}"

    def check_save_load(self) -> str:
        trained = self.trained.result.trained
        images = self.data.test.images[:COMPARED_IMAGES]
        before = self.predicted if self.predicted is not None else self._predict(trained, images)
        with tempfile.TemporaryDirectory(prefix="zoo-check-") as directory:
            self.host.call(self.plugin, "zoo_save", trained=trained, directory=directory)
            written = sorted(os.listdir(directory))
            if not written:
                raise CheckFailed(f"zoo_save wrote nothing into the folder {directory}")
            loaded = self.host.call(
                self.plugin, "zoo_load", expected=TrainedModel,
                model=self.spec.name, directory=directory, settings=dict(trained.settings),
                device=self.trained.config.device,
            )
            after = self._predict(loaded, images)
        difference = float(np.abs(after - before).max())
        if difference > AGREEMENT_TOLERANCE:
            raise CheckFailed(
                f"the reloaded model predicts differently: max probability difference {difference:.2e} "
                f"on {len(images)} images exceeds {AGREEMENT_TOLERANCE:.0e}"
            )
        return f"saved {', '.join(written)}; reloaded predictions equal within {AGREEMENT_TOLERANCE:.0e}"

    def check_seed(self) -> str:
        config = copy.deepcopy(self.trained.config)
        count = min(len(self.data.train), SEED_CHECK_BATCHES * config.batch_size)
        config.limit = count
        val_images = min(len(self.data.val), config.batch_size)
        data = small_mnist(self.data, train_size=count, eval_size=count, val_size=val_images)
        images = self.data.test.images[:COMPARED_IMAGES]
        first = self._predict(self._train(config, data).result.trained, images)
        second = self._predict(self._train(config, data).result.trained, images)
        changed = int((first.argmax(axis=1) != second.argmax(axis=1)).sum())
        difference = float(np.abs(first - second).max())
        trainings = f"two trainings with seed {config.seed} on {count:,} training and {val_images:,} validation images"
        if changed or difference > AGREEMENT_TOLERANCE:
            raise CheckFailed(
                f"{trainings} differ: {changed} of {len(images)} predicted labels changed, "
                f"max probability difference {difference:.2e}; seed every random source from config.seed"
            )
        return f"{trainings} agree: max probability difference {difference:.2e} on {len(images)} test images"

    def check_info(self) -> str:
        if "zoo_info" not in self.host.get(self.plugin).hooks:
            return "optional hook zoo_info not implemented"
        facts = self.host.call(
            self.plugin, "zoo_info", expected=(dict, type(None)), model=self.spec.name, settings=dict(self.spec.settings)
        )
        return f"zoo_info returned {len(facts or {})} facts"


@dataclass
class Attempt:
    """One run of the kit on one model within check_with_retries."""

    epochs: int
    settings: tuple[str, ...]
    results: list[CheckResult]

    @property
    def failures(self) -> list[str]:
        """Return "check: message" for each failed check."""
        return [f"{result.check}: {result.message}" for result in self.results if result.outcome == FAIL]

    @property
    def only_learning_failed(self) -> bool:
        failed = {result.check for result in self.results if result.outcome == FAIL}
        return bool(failed) and failed <= set(LEARNING_CHECKS)


def check_with_retries(
    run: Callable[[int, tuple[str, ...]], list[CheckResult]],
    epochs: int = DEFAULT_EPOCHS,
    retry_epochs: int = RETRY_EPOCHS,
    larger_input: int | None = None,
) -> list[Attempt]:
    """Check one model with ``run(epochs, settings)``, and again while only its learning checks fail.

    The runs, in order: ``epochs``, then ``retry_epochs`` if that is more,
    then ``retry_epochs`` at learning rate RETRY_LR. With ``larger_input``, a
    last run takes ``retry_epochs`` at that input size. The retries stop at the
    first run that passes or fails any check other than LEARNING_CHECKS.
    Returns every run made, the deciding one last.
    """
    plan = [(epochs, ())]
    if retry_epochs > epochs:
        plan.append((retry_epochs, ()))
    plan.append((retry_epochs, (f"lr={RETRY_LR:g}",)))
    if larger_input is not None:
        plan.append((retry_epochs, (f"input_size={larger_input}",)))
    attempts: list[Attempt] = []
    for run_epochs, settings in plan:
        attempts.append(Attempt(run_epochs, settings, run(run_epochs, settings)))
        if not attempts[-1].only_learning_failed:
            break
    return attempts


def min_accuracy_above_chance(count: int) -> float:
    """Return chance plus CHANCE_MARGIN standard deviations of a guesser's accuracy on ``count`` images."""
    return CHANCE + CHANCE_MARGIN * math.sqrt(CHANCE * (1 - CHANCE) / count)


def _check_probabilities(hook: str, value_name: str, probabilities: Any, count: int) -> None:
    """Raise CheckFailed unless ``probabilities`` is a finite float (count, 10) array whose rows sum to 1."""
    if not isinstance(probabilities, np.ndarray):
        raise CheckFailed(f"{hook}: {value_name} is {type(probabilities).__name__}, expected a numpy array")
    if probabilities.shape != (count, 10):
        raise CheckFailed(f"{hook}: {value_name} has shape {probabilities.shape}, expected {(count, 10)}")
    if not np.issubdtype(probabilities.dtype, np.floating):
        raise CheckFailed(f"{hook}: {value_name} has dtype {probabilities.dtype}, expected float32 or float64")
    if not np.isfinite(probabilities).all():
        raise CheckFailed(f"{hook}: {value_name} contains NaN or infinity")
    if (probabilities < 0).any():
        raise CheckFailed(f"{hook}: {value_name} contains negative values, which probabilities cannot have")
    worst = float(np.abs(probabilities.sum(axis=1, dtype=np.float64) - 1.0).max())
    if worst > ROW_SUM_TOLERANCE:
        raise CheckFailed(
            f"{hook}: rows of {value_name} must sum to 1 within {ROW_SUM_TOLERANCE:.0e}, but one is off by {worst:.2e}; "
            f"return softmax probabilities, not logits"
        )


def format_results(results: list[CheckResult]) -> str:
    """Format results as an aligned text table under TABLE_HEADERS, with a summary line."""
    rows = [TABLE_HEADERS, *(result.row() for result in results)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(TABLE_HEADERS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    passed = sum(result.passed for result in results)
    lines.append(f"{passed} of {len(results)} checks passed")
    return "\n".join(lines) + "\n"
