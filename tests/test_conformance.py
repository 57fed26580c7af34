"""The conformance kit, its CLI command and pytest fixture, and the example plugin in examples/zoo-cnn.

pip installs the example into a temporary folder on sys.path, so zoo finds it
through its real ``zoo.plugins`` entry point, and the packages it needs come
from the test environment.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zoo_core import cli
from zoo_core.conformance import FAIL, PASS, SKIP, CheckResult, check_plugin, check_with_retries
from zoo_core.data import load_mnist
from zoo_core.errors import ConfigError, ModelNotFoundError
from zoo_core.plugins import PluginHost

pytestmark = pytest.mark.usefixtures("isolated_zoo_env")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "zoo-cnn"
DOCS = ROOT / "docs" / "plugins.md"
MODEL_CHECKS = ["train", "loss_falls", "evaluate", "accuracy", "predict", "save_load", "seed", "info"]

RANDOM_PLUGIN_SOURCE = '''
import os

import numpy as np

from zoo_core import hookimpl
from zoo_core.hookspecs import Evaluation, ModelSpec, TrainedModel, TrainResult

ZOO_CONTRACT_VERSION = "1.0"


def _random_probabilities(count):
    # An unseeded generator, so every call returns different outputs.
    logits = np.random.default_rng().normal(size=(count, 10))
    exponentials = np.exp(logits)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


@hookimpl
def zoo_models():
    return [ModelSpec(name="noise", description="random outputs")]


@hookimpl
def zoo_train(model, data, config, reporter):
    history = []
    for epoch in range(1, config.epochs + 1):
        reporter.epoch_start(epoch, 10)
        for batch in range(1, 11):
            reporter.batch_end(batch, 2.3)
        reporter.epoch_end(2.3, 2.3, 0.1)
        history.append({"train_loss": 2.3, "val_loss": 2.3, "val_accuracy": 0.1})
    trained = TrainedModel(model=model, net=None, parameters=0, settings={})
    return TrainResult(trained=trained, history=history, best_epoch=1)


@hookimpl
def zoo_evaluate(trained, images, labels, config):
    probabilities = _random_probabilities(len(images))
    picked = probabilities[np.arange(len(labels)), labels]
    return Evaluation(probabilities=probabilities, loss=float(-np.log(picked).mean()))


@hookimpl
def zoo_predict(trained, images):
    return _random_probabilities(len(images))


@hookimpl
def zoo_save(trained, directory):
    open(os.path.join(directory, "nothing.txt"), "w").close()


@hookimpl
def zoo_load(model, directory, settings, device):
    return TrainedModel(model=model, net=None, parameters=0, settings={})
'''

UNSEEDED_TRAIN_LINES = '''

def _frequencies(labels, smoothing):
    # An unseeded generator, so each training starts from different counts.
    counts = np.bincount(labels, minlength=10) + smoothing + np.random.default_rng().uniform(0, 1, 10)
    return counts / counts.sum()
'''

WRONG_TRAIN_TYPE_LINES = '''

@hookimpl
def zoo_train(model, data, config, reporter):
    return ["not", "a", "TrainResult"]
'''


def outcomes(results) -> dict[tuple[str, str], str]:
    return {(result.model, result.check): result.outcome for result in results}


def failures(results) -> list[str]:
    return [" | ".join(result.row()) for result in results if not result.passed]


def child_environment(*paths: Path) -> dict[str, str]:
    """Return os.environ without ZOO_* variables and with ``paths`` first on PYTHONPATH."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ZOO_")}
    env["PYTHONPATH"] = os.pathsep.join([*(str(path) for path in paths), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    return env


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file: magic 0 0 8 NDIM, the sizes as big-endian uint32, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


@pytest.fixture(scope="module")
def cnn_site(tmp_path_factory):
    """Install examples/zoo-cnn with pip into a temporary folder, put that folder on sys.path and yield it.

    pip builds the package from its pyproject.toml and writes the
    distribution's metadata and entry points, as for any third-party plugin.
    """
    root = tmp_path_factory.mktemp("cnn-site")
    build = tmp_path_factory.mktemp("cnn-source")
    # A copy, so that the build leaves no build/ or egg-info folders in the repository.
    source = shutil.copytree(EXAMPLE, build / "zoo-cnn", ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(root), str(source)],
        check=True, capture_output=True, text=True,
    )
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name == "zoo_cnn" or name.startswith("zoo_cnn.")]:
            del sys.modules[name]
        importlib.invalidate_caches()


@pytest.fixture
def small_data_dir(tmp_path) -> Path:
    """Write MNIST IDX files of 1,200 training images (1,000 train and 200 validation) and 500 test images."""
    mnist = load_mnist()
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", mnist.train.images[:1200])
    write_idx(folder / "train-labels-idx1-ubyte", mnist.train.labels[:1200])
    write_idx(folder / "t10k-images-idx3-ubyte", mnist.test.images[:500])
    write_idx(folder / "t10k-labels-idx1-ubyte", mnist.test.labels[:500])
    return folder


# -- the example plugin ---------------------------------------------------------


def test_cnn_found_through_entry_point(cnn_site):
    info = PluginHost().plugins["cnn"]

    assert info.loaded, info.error
    assert info.package == "zoo-cnn"
    assert info.version == "0.1.0"
    assert info.entry_point == "zoo_cnn"
    assert info.contract == "1.0"
    assert list(info.models) == ["cnn"]


def test_example_pyproject_declares_entry_point():
    text = (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")

    assert 'name = "zoo-cnn"' in text
    assert '[project.entry-points."zoo.plugins"]\ncnn = "zoo_cnn"' in text


def test_cnn_listed_by_cli(cnn_site, zoo_cli, tmp_path):
    result = zoo_cli("list", cwd=tmp_path, env=child_environment(cnn_site))
    rows = [line.split() for line in result.stdout.splitlines()]

    assert result.returncode == 0, result.stderr
    assert ["cnn", "cnn/cnn", "yes"] in [row[:3] for row in rows]


def test_cnn_runs_through_cli(cnn_site, zoo_cli, tmp_path, small_data_dir):
    result = zoo_cli(
        "run", "cnn", "--limit", "1000", "--epochs", "1", "--threads", "1",
        "--data-dir", str(small_data_dir), "--runs-dir", str(tmp_path / "runs"),
        cwd=tmp_path, env=child_environment(cnn_site),
    )
    run_dirs = list((tmp_path / "runs").glob("*-cnn-cnn-s0-*"))

    assert result.returncode == 0, result.stderr
    assert "Training cnn/cnn on 1,000 images (validation 200, test 500)" in result.stdout
    assert "Epoch 1/1: train loss" in result.stdout
    assert "Test accuracy:" in result.stdout
    assert len(run_dirs) == 1
    assert (run_dirs[0] / "model" / "weights.pt").is_file()


def test_kit_passes_on_cnn(cnn_site, kit_data):
    results = check_plugin(PluginHost(), "cnn", data=kit_data, threads=1)

    assert failures(results) == []
    assert [result.check for result in results] == ["hooks", *MODEL_CHECKS]
    assert all(result.plugin == "cnn" for result in results)


def test_cnn_rejects_invalid_shift(cnn_site):
    from zoo_cnn.network import build_network

    settings = {"dropout": 0.25, "hidden": 128, "shift": 9, "weight_decay": 0.01}

    with pytest.raises(ConfigError, match="cnn setting 'shift' must be from 0 to 4 pixels, got 9"):
        build_network(settings)


def test_random_shift_moves_images(cnn_site):
    import torch
    from zoo_cnn.network import RandomShift

    torch.manual_seed(0)
    images = torch.zeros(64, 1, 28, 28)
    images[:, :, 10:18, 10:18] = 1.0
    shift = RandomShift(2)

    shifted = shift.train()(images)
    unchanged = shift.eval()(images)

    assert shifted.shape == images.shape
    assert torch.equal(shifted.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)))
    assert not torch.equal(shifted, images)
    assert torch.equal(unchanged, images)


# -- the kit on other plugins ----------------------------------------------------


def test_fixture_passes_on_keras(zoo_conformance, kit_data):
    results = zoo_conformance("keras", models=["mlp", "lstm"], data=kit_data, threads=1)

    assert [(result.model, result.check) for result in results] == [
        ("-", "hooks"),
        *(("mlp", check) for check in MODEL_CHECKS),
        *(("lstm", check) for check in MODEL_CHECKS),
    ]
    assert all(result.seconds >= 0 for result in results)


def test_kit_fails_on_random_outputs(plugin_site, kit_data):
    plugin_site.install("noisy", RANDOM_PLUGIN_SOURCE)

    results = outcomes(check_plugin(PluginHost(), "noisy", data=kit_data, threads=1))

    assert results[("noise", "train")] == PASS
    assert results[("noise", "evaluate")] == PASS
    assert results[("noise", "loss_falls")] == FAIL
    assert results[("noise", "accuracy")] == FAIL
    assert results[("noise", "predict")] == FAIL
    assert results[("noise", "save_load")] == FAIL
    assert results[("noise", "seed")] == FAIL


def test_unseeded_training_fails_seed_check(plugin_site, frequency_plugin_source, kit_data):
    plugin_site.install("unseeded", frequency_plugin_source + UNSEEDED_TRAIN_LINES)

    results = check_plugin(PluginHost(), "unseeded", data=kit_data, threads=1)
    seed = next(result for result in results if result.check == "seed")

    assert outcomes(results)[("freq", "save_load")] == PASS
    assert seed.outcome == FAIL
    assert seed.message.startswith("two trainings with seed 0 on 128 training and 32 validation images differ")
    assert "seed every random source from config.seed" in seed.message


def test_seed_check_uses_few_batches(plugin_site, frequency_plugin_source, kit_data):
    plugin_site.install("freqs", frequency_plugin_source)

    results = check_plugin(PluginHost(), "freqs", data=kit_data, threads=1, batch_size=100)
    seed = next(result for result in results if result.check == "seed")

    assert seed.outcome == PASS
    assert seed.message == "two trainings with seed 0 on 400 training and 100 validation images agree: max probability difference 0.00e+00 on 256 test images"


def test_predict_check_compares_first_images(plugin_site, frequency_plugin_source, kit_data):
    plugin_site.install("freqp", frequency_plugin_source)

    results = check_plugin(PluginHost(), "freqp", data=kit_data, threads=1)
    predict = next(result for result in results if result.check == "predict")

    assert (len(kit_data.val), len(kit_data.test)) == (250, 1000)
    assert predict.outcome == PASS
    assert predict.message == "probabilities (256, 10) float64, equal to zoo_evaluate's within 1e-05"


def test_fixture_fails_with_table(plugin_site, zoo_conformance, kit_data):
    plugin_site.install("noisy", RANDOM_PLUGIN_SOURCE)

    with pytest.raises(pytest.fail.Exception) as failure:
        zoo_conformance("noisy", data=kit_data, threads=1)
    message = str(failure.value)

    assert "plugin 'noisy' failed 5 of 9 conformance checks" in message
    assert "noise/accuracy" in message
    assert "MODEL  CHECK" in message
    assert "4 of 9 checks passed" in message


def test_wrong_train_type_fails_check(plugin_site, frequency_plugin_source, kit_data):
    plugin_site.install("wrongtype", frequency_plugin_source + WRONG_TRAIN_TYPE_LINES)

    results = check_plugin(PluginHost(), "wrongtype", data=kit_data, threads=1)
    train = next(result for result in results if result.check == "train")
    skipped = [result.check for result in results if result.outcome == SKIP]

    assert train.outcome == FAIL
    assert train.plugin == "wrongtype"
    assert train.message == "plugin 'wrongtype' returned list from zoo_train, expected TrainResult"
    assert skipped == ["loss_falls", "evaluate", "accuracy", "predict", "save_load", "seed"]


def test_constant_loss_fails_loss_check(plugin_site, frequency_plugin_source, kit_data):
    plugin_site.install("flat", frequency_plugin_source)

    results = check_plugin(PluginHost(), "flat", data=kit_data, threads=1)
    loss = next(result for result in results if result.check == "loss_falls")

    assert loss.outcome == FAIL
    assert loss.message.startswith("training loss did not fall: mean loss of the first 5 batches")


UNDERFLOW_EVALUATE_LINES = """

@hookimpl
def zoo_evaluate(trained, images, labels, config):
    # The true label of the first image gets probability 0. Float64 softmax
    # gives 0 to a logit 800 below the largest, whose exact loss is 800.
    probabilities = _probabilities(trained, len(images))
    probabilities[0] = np.eye(10)[(labels[0] + 1) % 10]
    exact = cross_entropy(probabilities[1:], labels[1:]) * (len(labels) - 1) / len(labels) + 800 / len(labels)
    return Evaluation(probabilities=probabilities, loss=exact * LOSS_FACTOR)
"""


@pytest.mark.parametrize(("factor", "outcome"), [(1.0, PASS), (0.5, FAIL)])
def test_evaluate_loss_with_underflowed_probability(plugin_site, frequency_plugin_source, kit_data, factor, outcome):
    source = frequency_plugin_source + UNDERFLOW_EVALUATE_LINES + f"\nLOSS_FACTOR = {factor}\n"
    plugin_site.install("underflow", source)

    results = check_plugin(PluginHost(), "underflow", data=kit_data, threads=1)
    evaluate = next(result for result in results if result.check == "evaluate")

    assert evaluate.outcome == outcome, evaluate.message
    if outcome == PASS:
        assert "below 1e-12 on 1 of 1,000 images" in evaluate.message
    else:
        assert "the least cross-entropy that its probabilities allow" in evaluate.message


def test_missing_hook_fails_hooks_check(plugin_site, frequency_plugin_source, kit_data):
    plugin_site.install("partial", frequency_plugin_source + "\ndel zoo_predict\n")

    results = check_plugin(PluginHost(), "partial", data=kit_data, threads=1)
    found = outcomes(results)
    predict = next(result for result in results if result.check == "predict")

    assert found[("-", "hooks")] == FAIL
    assert found[("freq", "predict")] == FAIL
    assert predict.message == "plugin 'partial' does not implement zoo_predict"


def test_docs_minimal_plugin_passes(plugin_site, kit_data):
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## A minimal plugin", 1)[1].split("\n## ", 1)[0]
    source = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    plugin_site.install("ncm", source)

    results = check_plugin(PluginHost(), "ncm", data=kit_data, threads=1)

    assert failures(results) == []


def test_unknown_model_raises(kit_data):
    with pytest.raises(ModelNotFoundError, match="plugin 'keras' provides no model 'nosuch'; its models are: mlp, lstm"):
        check_plugin(PluginHost(), "keras", ["nosuch"], data=kit_data)


@pytest.mark.parametrize("sizes, message", [
    ({"val_size": 0}, "invalid validation size 0: expected a number of images of at least 1"),
    ({"eval_size": 2.5}, "invalid evaluation size 2.5: expected a number of images of at least 1"),
])
def test_invalid_subset_size_raises(sizes, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_plugin(PluginHost(), "keras", ["mlp"], **sizes)


def test_invalid_epochs_raises(kit_data):
    with pytest.raises(ConfigError, match="option 'epochs' must be at least 1, got 0"):
        check_plugin(PluginHost(), "keras", data=kit_data, epochs=0)


# -- retries -------------------------------------------------------------------------


def scripted_runs(outcomes: dict[tuple[int, tuple[str, ...]], dict[str, str]]):
    """Return a kit run that fails the checks that ``outcomes`` names for its epochs and settings, and a call log."""
    calls = []

    def run(epochs, settings):
        calls.append((epochs, settings))
        failed = outcomes.get((epochs, settings), {})
        return [CheckResult("fake", "m", check, FAIL if check in failed else PASS, failed.get(check, ""), 0.0)
                for check in MODEL_CHECKS]

    return run, calls


def test_retries_stop_at_first_pass():
    run, calls = scripted_runs({(2, ()): {"accuracy": "test accuracy 0.1200"}})
    attempts = check_with_retries(run, epochs=2, retry_epochs=4, larger_input=64)
    assert calls == [(2, ()), (4, ())]
    assert attempts[0].failures == ["accuracy: test accuracy 0.1200"]
    assert attempts[-1].failures == []


def test_retries_end_at_larger_input():
    near_chance = {"accuracy": "test accuracy 0.1300", "loss_falls": "training loss did not fall"}
    run, calls = scripted_runs({(2, ()): near_chance, (4, ()): near_chance, (4, ("lr=0.0003",)): near_chance,
                                (4, ("input_size=64",)): near_chance})
    attempts = check_with_retries(run, epochs=2, retry_epochs=4, larger_input=64)
    assert calls == [(2, ()), (4, ()), (4, ("lr=0.0003",)), (4, ("input_size=64",))]
    assert len(attempts[-1].failures) == 2


def test_other_failure_ends_retries():
    run, calls = scripted_runs({(2, ()): {"accuracy": "test accuracy 0.1000", "seed": "two trainings differ"}})
    attempts = check_with_retries(run, epochs=2, retry_epochs=4)
    assert calls == [(2, ())]
    assert attempts[-1].failures == ["accuracy: test accuracy 0.1000", "seed: two trainings differ"]


def test_retry_skips_equal_epochs():
    run, calls = scripted_runs({(4, ()): {"loss_falls": "training loss did not fall"}})
    check_with_retries(run, epochs=4, retry_epochs=4)
    assert calls == [(4, ()), (4, ("lr=0.0003",))]


# -- contract versions -------------------------------------------------------------


def test_future_contract_rejected(plugin_site, frequency_plugin_source, kit_data):
    plugin_site.install("future", frequency_plugin_source + '\nZOO_CONTRACT_VERSION = "2.0"\n')

    host = PluginHost()
    info = host.plugins["future"]
    results = check_plugin(host, "future", data=kit_data)

    assert not info.loaded
    assert "built for contract 2.0" in info.error
    assert "implements contract 1.0" in info.error
    assert host.plugins["keras"].loaded
    assert [(result.check, result.outcome) for result in results] == [("load", FAIL)]
    assert results[0].message == info.error


def test_future_contract_leaves_cli_working(plugin_site, frequency_plugin_source, capsys):
    plugin_site.install("future", frequency_plugin_source + '\nZOO_CONTRACT_VERSION = "2.0"\n')

    check_status = cli.main(["check-plugin", "future"])
    check_output = capsys.readouterr()
    list_status = cli.main(["list"])
    list_output = capsys.readouterr()

    assert check_status == 1
    assert ["-", "load", "FAIL"] in [line.split()[:3] for line in check_output.out.splitlines()]
    assert "contract 2.0" in check_output.out
    assert list_status == 0
    assert "keras/mlp" in list_output.out
    assert "plugin 'future' is not loaded" in list_output.err


# -- the check-plugin command ----------------------------------------------------


def test_cli_check_passes_on_mlp(capsys):
    status = cli.main(["check-plugin", "keras", "--models", "mlp", "--threads", "1"])
    output = capsys.readouterr().out
    header = output.splitlines()[0].split()

    assert status == 0
    assert header == ["MODEL", "CHECK", "RESULT", "SECONDS", "MESSAGE"]
    assert "9 of 9 checks passed" in output


def test_cli_check_unknown_plugin(capsys):
    status = cli.main(["check-plugin", "nosuch"])
    error = capsys.readouterr().err

    assert status == 2
    assert "zoo: error: plugin 'nosuch' is not installed" in error


def test_cli_check_applies_settings(capsys):
    status = cli.main(["check-plugin", "keras", "--models", "mlp", "--threads", "1", "--set", "hidden=[64]"])
    output = capsys.readouterr().out

    assert status == 0
    assert "9 of 9 checks passed" in output


def test_invalid_setting_raises_before_training(kit_data):
    with pytest.raises(ConfigError, match="model 'keras/mlp' has no setting 'hiden' \\(did you mean 'hidden'\\?\\)"):
        check_plugin(PluginHost(), "keras", ["mlp"], data=kit_data, settings=["hiden=[64]"])


def test_cli_check_rejects_bad_setting_value(capsys):
    status = cli.main(["check-plugin", "keras", "--models", "mlp", "--set", "dropout=high"])
    error = capsys.readouterr().err

    assert status == 2
    assert "setting 'dropout' has invalid value 'high'" in error
