"""The Keras plugin through its hooks: training, save and load, determinism, FusedLSTM and settings checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import zoo_keras  # noqa: F401  (selects the PyTorch backend before keras is imported below)
import keras  # noqa: E402
from zoo_core.config import build_config
from zoo_core.data import load_mnist
from zoo_core.errors import ConfigError, DataError
from zoo_core.evaluation import cross_entropy
from zoo_core.hookspecs import Evaluation, TrainedModel, TrainResult
from zoo_core.plugins import PluginHost
from zoo_core.reporting import TrainingReporter
from zoo_keras.layers import FusedLSTM
from zoo_keras.models import MODELS, build_model

pytestmark = pytest.mark.usefixtures("isolated_zoo_env")

TRAIN_LIMIT = 500
# Predictions are compared on the first TEST_IMAGES test images, because the full test split would only add time.
TEST_IMAGES = 2000


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost()


@pytest.fixture(scope="module")
def mnist():
    return load_mnist().limit(TRAIN_LIMIT)


def make_config(model: str, **options):
    spec = MODELS[model]
    options = {"epochs": 1, "limit": TRAIN_LIMIT, "device": "cpu", "quiet": True, **options}
    return build_config(f"keras/{model}", spec.training, spec.settings, options=options)


def train(host, data, model: str = "mlp", **options) -> tuple[TrainResult, object]:
    config = make_config(model, **options)
    reporter = TrainingReporter(config.epochs, quiet=True)
    result = host.call("keras", "zoo_train", expected=TrainResult, model=model, data=data, config=config,
                       reporter=reporter)
    return result, config


def measure_accuracy(host, data, trained: TrainedModel, config) -> float:
    evaluation = host.call("keras", "zoo_evaluate", expected=Evaluation, trained=trained,
                           images=data.test.images, labels=data.test.labels, config=config)
    return float((evaluation.probabilities.argmax(axis=1) == data.test.labels).mean())


@pytest.fixture(scope="module")
def trained_mlp(host, mnist):
    return train(host, mnist, "mlp", seed=0)


def test_models_hook_lists_mlp_and_lstm(host):
    info = host.plugins["keras"]

    assert info.loaded
    assert sorted(info.models) == ["lstm", "mlp"]
    assert info.models["mlp"].settings == {"hidden": [512, 512], "activation": "relu", "dropout": 0.2,
                                           "schedule": "cosine"}
    assert info.models["lstm"].settings == {"units": 128, "schedule": "cosine"}


def test_train_returns_history(trained_mlp):
    result, _ = trained_mlp

    assert result.best_epoch == 1
    assert len(result.history) == 1
    assert {"train_loss", "val_loss", "val_accuracy"} <= set(result.history[0])
    assert 0.0 <= result.history[0]["val_accuracy"] <= 1.0


def test_mlp_parameter_count(trained_mlp):
    result, _ = trained_mlp

    assert result.trained.parameters == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10


def test_mlp_learns_something(host, mnist, trained_mlp):
    result, config = trained_mlp

    assert measure_accuracy(host, mnist, result.trained, config) > 0.5


def test_evaluate_loss_is_cross_entropy(host, mnist, trained_mlp):
    result, config = trained_mlp
    images, labels = mnist.test.images[:TEST_IMAGES], mnist.test.labels[:TEST_IMAGES]

    evaluation = host.call("keras", "zoo_evaluate", expected=Evaluation, trained=result.trained,
                           images=images, labels=labels, config=config)

    assert evaluation.probabilities.shape == (TEST_IMAGES, 10)
    np.testing.assert_allclose(evaluation.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert evaluation.loss == pytest.approx(cross_entropy(evaluation.probabilities, labels))


def test_save_load_predict_identical(host, mnist, trained_mlp, tmp_path):
    result, _ = trained_mlp
    images = mnist.test.images[:TEST_IMAGES]

    host.call("keras", "zoo_save", trained=result.trained, directory=str(tmp_path))
    loaded = host.call("keras", "zoo_load", expected=TrainedModel, model="mlp", directory=str(tmp_path),
                       settings=result.trained.settings, device="cpu")
    before = host.call("keras", "zoo_predict", trained=result.trained, images=images)
    after = host.call("keras", "zoo_predict", trained=loaded, images=images)

    assert loaded.parameters == result.trained.parameters
    assert loaded.settings == result.trained.settings
    np.testing.assert_array_equal(after, before)


def test_lstm_save_load_identical(host, mnist, tmp_path):
    keras.utils.set_random_seed(1)
    net = build_model("lstm", {"units": 16, "schedule": "cosine"})
    trained = TrainedModel(model="lstm", net=net, parameters=net.count_params(), settings={"units": 16})
    images = mnist.test.images[:200]

    host.call("keras", "zoo_save", trained=trained, directory=str(tmp_path))
    loaded = host.call("keras", "zoo_load", expected=TrainedModel, model="lstm", directory=str(tmp_path),
                       settings=trained.settings, device="cpu")

    assert isinstance(loaded.net.layers[0], FusedLSTM)
    np.testing.assert_array_equal(
        host.call("keras", "zoo_predict", trained=loaded, images=images),
        host.call("keras", "zoo_predict", trained=trained, images=images),
    )


def test_same_seed_same_accuracy(host, mnist, trained_mlp):
    first, config = trained_mlp

    second, _ = train(host, mnist, "mlp", seed=0)

    assert measure_accuracy(host, mnist, second.trained, config) == measure_accuracy(host, mnist, first.trained, config)
    for key in ("train_loss", "val_loss", "val_accuracy"):
        assert [epoch[key] for epoch in second.history] == [epoch[key] for epoch in first.history]


def test_other_seed_other_weights(host, mnist, trained_mlp):
    first, _ = trained_mlp

    second, _ = train(host, mnist, "mlp", seed=1, limit=100)

    assert not np.array_equal(second.trained.net.get_weights()[0], first.trained.net.get_weights()[0])


def random_fused_lstm(units: int, features: int, seed: int = 0) -> FusedLSTM:
    """Build a FusedLSTM with random weights, a distinct bias per gate included."""
    rng = np.random.default_rng(seed)
    layer = FusedLSTM(units)
    layer.build((None, None, features))
    layer.kernel.assign(rng.normal(scale=0.5, size=(4 * units, features)).astype("float32"))
    layer.recurrent_kernel.assign(rng.normal(scale=0.5, size=(4 * units, units)).astype("float32"))
    layer.bias.assign(rng.normal(scale=0.5, size=(4 * units,)).astype("float32"))
    return layer


def lstm_inputs(batch: int = 3, steps: int = 7, features: int = 5) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(batch, steps, features)).astype("float32")


def test_fused_lstm_matches_torch_lstm():
    units, inputs = 6, lstm_inputs()
    layer = random_fused_lstm(units, inputs.shape[-1])
    reference = torch.nn.LSTM(inputs.shape[-1], units, batch_first=True)
    with torch.no_grad():
        reference.weight_ih_l0.copy_(torch.from_numpy(np.asarray(layer.kernel.numpy())))
        reference.weight_hh_l0.copy_(torch.from_numpy(np.asarray(layer.recurrent_kernel.numpy())))
        reference.bias_ih_l0.copy_(torch.from_numpy(np.asarray(layer.bias.numpy())))
        reference.bias_hh_l0.zero_()

        expected, _ = reference(torch.from_numpy(inputs))
    output = keras.ops.convert_to_numpy(layer(inputs))

    assert output.shape == (3, units)
    np.testing.assert_allclose(output, expected[:, -1].numpy(), rtol=0, atol=1e-5)


def test_fused_lstm_matches_keras_lstm():
    units, inputs = 6, lstm_inputs()
    layer = random_fused_lstm(units, inputs.shape[-1])
    reference = keras.layers.LSTM(units)
    reference.build((None, None, inputs.shape[-1]))
    # keras.layers.LSTM stores (features, 4 * units) kernels, the transpose of torch's layout;
    # both order the four gate blocks input, forget, cell, output.
    reference.set_weights([
        np.asarray(layer.kernel.numpy()).T,
        np.asarray(layer.recurrent_kernel.numpy()).T,
        np.asarray(layer.bias.numpy()),
    ])

    output = keras.ops.convert_to_numpy(layer(inputs))
    expected = keras.ops.convert_to_numpy(reference(inputs))

    np.testing.assert_allclose(output, expected, rtol=0, atol=1e-5)


def test_fused_lstm_swapped_gates_differ():
    units, inputs = 6, lstm_inputs()
    layer = random_fused_lstm(units, inputs.shape[-1])
    reference = keras.layers.LSTM(units)
    reference.build((None, None, inputs.shape[-1]))
    # Swapping the forget and cell blocks must change the output, or the comparison above proves nothing.
    order = np.r_[0:units, 2 * units:3 * units, units:2 * units, 3 * units:4 * units]
    reference.set_weights([
        np.asarray(layer.kernel.numpy())[order].T,
        np.asarray(layer.recurrent_kernel.numpy())[order].T,
        np.asarray(layer.bias.numpy())[order],
    ])

    output = keras.ops.convert_to_numpy(layer(inputs))
    expected = keras.ops.convert_to_numpy(reference(inputs))

    assert np.abs(output - expected).max() > 1e-3


def test_fused_lstm_forget_bias_matches_keras():
    units = 4
    layer = FusedLSTM(units)
    layer.build((None, 28, 28))
    reference = keras.layers.LSTM(units)
    reference.build((None, 28, 28))

    fused_bias = np.asarray(layer.bias.numpy())
    keras_bias = np.asarray(reference.get_weights()[2])

    np.testing.assert_array_equal(fused_bias, keras_bias)
    np.testing.assert_array_equal(fused_bias[units:2 * units], np.ones(units))


def test_fused_lstm_shapes_and_config():
    layer = random_fused_lstm(4, 5)

    assert layer.kernel.shape == (16, 5)
    assert layer.recurrent_kernel.shape == (16, 4)
    assert layer.compute_output_shape((2, 7, 5)) == (2, 4)
    assert FusedLSTM.from_config(layer.get_config()).units == 4


def test_fused_lstm_gradients_reach_weights():
    layer = random_fused_lstm(4, 5)
    inputs = torch.from_numpy(lstm_inputs())

    layer(inputs).sum().backward()

    assert layer.kernel.value.grad is not None
    assert layer.recurrent_kernel.value.grad is not None
    assert layer.bias.value.grad is not None


VALID_MLP = {"hidden": [32], "activation": "relu", "dropout": 0.2, "schedule": "cosine"}


@pytest.mark.parametrize(
    ("model", "changes", "fragment"),
    [
        ("mlp", {"activation": "swish2"}, "mlp setting 'activation' has invalid value 'swish2'; use one of relu"),
        ("mlp", {"dropout": 1.5}, "mlp setting 'dropout' must be in [0, 1), got 1.5"),
        ("mlp", {"dropout": 1.0}, "mlp setting 'dropout' must be in [0, 1), got 1.0"),
        ("mlp", {"dropout": -0.1}, "mlp setting 'dropout' must be in [0, 1), got -0.1"),
        ("mlp", {"hidden": []}, "mlp setting 'hidden' must list positive layer sizes"),
        ("mlp", {"hidden": [64, 0]}, "mlp setting 'hidden' must list positive layer sizes"),
        ("mlp", {"hidden": [64.5]}, "mlp setting 'hidden' must list positive layer sizes"),
        ("mlp", {"schedule": "linear"}, "mlp setting 'schedule' has invalid value 'linear'; use cosine or constant"),
        ("lstm", {"units": 0}, "lstm setting 'units' must be at least 1, got 0"),
    ],
)
def test_build_model_rejects_settings(model, changes, fragment):
    settings = {**(VALID_MLP if model == "mlp" else {"units": 8, "schedule": "cosine"}), **changes}

    with pytest.raises(ConfigError) as raised:
        build_model(model, settings)

    assert fragment in str(raised.value)


def test_build_model_unknown_name():
    with pytest.raises(ConfigError) as raised:
        build_model("cnn", VALID_MLP)

    assert str(raised.value) == "the Keras plugin has no model 'cnn'; choose one of mlp, lstm"


def test_train_hook_passes_config_error(host, mnist):
    with pytest.raises(ConfigError) as raised:
        train(host, mnist, "mlp", settings={"dropout": 1.5})

    assert "mlp setting 'dropout' must be in [0, 1), got 1.5" in str(raised.value)


def test_mlp_settings_shape_network():
    net = build_model("mlp", {"hidden": [64, 32], "activation": "tanh", "dropout": 0.0, "schedule": "constant"})
    dense = [layer for layer in net.layers if isinstance(layer, keras.layers.Dense)]

    assert [layer.units for layer in dense] == [64, 32, 10]
    assert dense[0].activation.__name__ == "tanh"
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in net.layers)


def test_damaged_saved_model_names_file(host, tmp_path):
    net = build_model("mlp", VALID_MLP)
    trained = TrainedModel(model="mlp", net=net, parameters=net.count_params(), settings=VALID_MLP)
    host.call("keras", "zoo_save", trained=trained, directory=str(tmp_path))
    path = tmp_path / "model.keras"
    path.write_bytes(path.read_bytes()[:1000])

    with pytest.raises(DataError, match=f"cannot load the saved model {path} .*train the model again"):
        host.call("keras", "zoo_load", model="mlp", directory=str(tmp_path), settings={}, device="cpu")
