"""Plugin discovery through real entry points of small test distributions, in process and through the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from zoo_core import runner
from zoo_core.config import build_config
from zoo_core.data import load_mnist
from zoo_core.errors import ConfigError, ModelNotFoundError, PluginError
from zoo_core.hookspecs import CONTRACT_VERSION, Evaluation, TrainResult
from zoo_core.plugins import PluginHost, check_contract, parse_version
from zoo_core.registry import Catalog
from zoo_core.reporting import TrainingReporter

pytestmark = pytest.mark.usefixtures("isolated_zoo_env")

BROKEN_IMPORT_SOURCE = 'raise RuntimeError("plugin import exploded")\n'


def small_config(model: str = "good/freq", **options):
    return build_config(model, {"epochs": 1, "batch_size": 1000}, {"smoothing": 1.0}, options=options)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def test_good_plugin_is_loaded(plugin_site, frequency_plugin_source):
    plugin_site.install("good", frequency_plugin_source)

    info = PluginHost().plugins["good"]

    assert info.loaded
    assert info.error is None
    assert info.package == "zoo-test-good"
    assert info.version == "1.0"
    assert info.contract == "1.0"
    assert info.entry_point == "zoo_test_good"
    assert list(info.models) == ["freq"]
    assert info.hooks == ["zoo_evaluate", "zoo_load", "zoo_models", "zoo_predict", "zoo_save", "zoo_train"]


def test_good_plugin_sits_beside_keras(plugin_site, frequency_plugin_source):
    plugin_site.install("good", frequency_plugin_source)

    host = PluginHost()

    assert host.plugins["keras"].loaded
    assert host.plugins["good"].loaded


def test_good_plugin_hooks_train_and_evaluate(plugin_site, frequency_plugin_source, mnist):
    plugin_site.install("good", frequency_plugin_source)
    host = PluginHost()
    config = small_config(limit=200)
    data = mnist.limit(200)

    reporter = TrainingReporter(config.epochs, quiet=True)
    result = host.call("good", "zoo_train", expected=TrainResult, model="freq", data=data, config=config,
                       reporter=reporter)
    evaluation = host.call("good", "zoo_evaluate", expected=Evaluation, trained=result.trained,
                           images=data.test.images, labels=data.test.labels, config=config)

    assert result.trained.model == "freq"
    assert evaluation.probabilities.shape == (len(data.test), 10)
    np.testing.assert_allclose(evaluation.probabilities.sum(axis=1), 1.0)


def test_import_error_is_kept_by_name(plugin_site, frequency_plugin_source):
    plugin_site.install("good", frequency_plugin_source)
    plugin_site.install("broken", BROKEN_IMPORT_SOURCE)

    host = PluginHost()
    broken = host.plugins["broken"]

    assert not broken.loaded
    assert "zoo_test_broken" in broken.error
    assert "RuntimeError: plugin import exploded" in broken.error
    assert host.plugins["good"].loaded
    assert host.plugins["keras"].loaded


def test_import_error_blocks_only_that_plugin(plugin_site, frequency_plugin_source):
    plugin_site.install("good", frequency_plugin_source)
    plugin_site.install("broken", BROKEN_IMPORT_SOURCE)
    host = PluginHost()

    with pytest.raises(PluginError) as raised:
        host.get("broken")

    assert "'broken' is not usable" in str(raised.value)
    assert "plugin import exploded" in str(raised.value)
    assert Catalog(host, entries=[]).resolve("freq").qualified == "good/freq"


def test_models_hook_error_unregisters_plugin(plugin_site, frequency_plugin_source):
    source = frequency_plugin_source + (
        "\n\n@hookimpl\ndef zoo_models():\n    raise ValueError('model list unavailable')\n"
    )
    plugin_site.install("listless", source)

    host = PluginHost()
    info = host.plugins["listless"]

    assert not info.loaded
    assert info.error == "zoo_models failed: ValueError: model list unavailable"
    assert info.plugin is None
    assert info.models == {}
    assert host.manager.get_plugin("listless") is None


@pytest.mark.parametrize(
    ("models_body", "message"),
    [
        ("return 'freq'", "zoo_models returned str, expected a list of ModelSpec"),
        ("return ['freq']", "zoo_models returned an item of type str, expected ModelSpec"),
        ("return [ModelSpec(name='a/b', description='')]", "model name 'a/b' is invalid"),
        ("return [ModelSpec(name='', description='')]", "model name '' is invalid"),
    ],
)
def test_models_hook_invalid_results(plugin_site, frequency_plugin_source, models_body, message):
    source = frequency_plugin_source + f"\n\n@hookimpl\ndef zoo_models():\n    {models_body}\n"
    plugin_site.install("odd", source)

    info = PluginHost().plugins["odd"]

    assert not info.loaded
    assert message in info.error


def test_missing_contract_version_is_rejected(plugin_site, frequency_plugin_source):
    plugin_site.install("unversioned", frequency_plugin_source + "\ndel ZOO_CONTRACT_VERSION\n")

    info = PluginHost().plugins["unversioned"]

    assert not info.loaded
    assert "'unversioned'" in info.error
    assert "declares no ZOO_CONTRACT_VERSION" in info.error
    assert f"ZOO_CONTRACT_VERSION = {CONTRACT_VERSION!r}" in info.error


def test_incompatible_contract_names_versions(plugin_site, frequency_plugin_source):
    plugin_site.install("future", frequency_plugin_source + '\nZOO_CONTRACT_VERSION = "2.0"\n')

    info = PluginHost().plugins["future"]

    assert not info.loaded
    assert info.contract == "2.0"
    assert "'future'" in info.error
    assert "built for contract 2.0" in info.error
    assert f"implements contract {CONTRACT_VERSION}" in info.error


@pytest.mark.parametrize(
    ("declared", "compatible"),
    [("1.0", True), ("1.1", False), ("0.9", False), ("2.0", False), ("1", False), ("1.0.0", False),
     ("one.zero", False), (1.0, False), (None, False)],
)
def test_check_contract_versions(declared, compatible):
    error = check_contract("sample", declared)

    assert (error is None) == compatible


def test_check_contract_malformed_message():
    assert check_contract("sample", "1") == (
        "plugin 'sample' declares ZOO_CONTRACT_VERSION = '1', which is not of the form 'MAJOR.MINOR'"
    )


@pytest.mark.parametrize(("text", "parsed"), [("1.0", (1, 0)), ("12.3", (12, 3)), ("1.x", None), ("", None), (1, None)])
def test_parse_version_forms(text, parsed):
    assert parse_version(text) == parsed


def test_shared_name_needs_qualified_name(plugin_site, frequency_plugin_source):
    plugin_site.install("alpha", frequency_plugin_source)
    plugin_site.install("beta", frequency_plugin_source)
    catalog = Catalog(PluginHost(), entries=[])

    with pytest.raises(ModelNotFoundError) as raised:
        catalog.resolve("freq")

    message = str(raised.value)
    assert "provided by several plugins" in message
    assert "alpha/freq" in message
    assert "beta/freq" in message
    assert catalog.resolve("alpha/freq").plugin == "alpha"
    assert catalog.resolve("beta/freq").plugin == "beta"


def test_registry_file_claims_shared_name(plugin_site, frequency_plugin_source, tmp_path, monkeypatch):
    plugin_site.install("alpha", frequency_plugin_source)
    plugin_site.install("beta", frequency_plugin_source)
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "version: 1\nmodels:\n  - name: freq\n    plugin: beta\n    training: {epochs: 3}\n", encoding="utf-8"
    )
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))

    resolved = Catalog(PluginHost()).resolve("freq")

    assert resolved.qualified == "beta/freq"
    assert resolved.training["epochs"] == 3


def test_duplicate_entry_point_is_reported(plugin_site, frequency_plugin_source):
    plugin_site.install("twin", frequency_plugin_source, distribution="zoo-twin-one", module="zoo_twin_one")
    plugin_site.install("twin", frequency_plugin_source, distribution="zoo-twin-two", module="zoo_twin_two")

    host = PluginHost()
    duplicates = [info for info in host.plugins.values() if info.name == "twin" and not info.loaded]

    assert host.plugins["twin"].loaded
    assert len(duplicates) == 1
    assert "is already used by package" in duplicates[0].error


def test_train_hook_wrong_type_names_hook(plugin_site, frequency_plugin_source, mnist):
    source = frequency_plugin_source + (
        "\n\n@hookimpl\ndef zoo_train(model, data, config, reporter):\n    return {'accuracy': 1.0}\n"
    )
    plugin_site.install("sloppy", source)
    host = PluginHost()

    with pytest.raises(PluginError) as raised:
        host.call("sloppy", "zoo_train", expected=TrainResult, model="freq", data=mnist, config=None,
                  reporter=None)

    assert str(raised.value) == "plugin 'sloppy' returned dict from zoo_train, expected TrainResult"


def test_wrong_train_result_keeps_nothing(plugin_site, frequency_plugin_source, tmp_path):
    source = frequency_plugin_source + (
        "\n\n@hookimpl\ndef zoo_train(model, data, config, reporter):\n    return None\n"
    )
    plugin_site.install("sloppy", source)
    host = PluginHost()
    resolved = Catalog(host, entries=[]).resolve("sloppy/freq")
    runs_dir = tmp_path / "runs"
    config = small_config("sloppy/freq", limit=100, runs_dir=str(runs_dir), quiet=True)

    with pytest.raises(PluginError) as raised:
        runner.run(config, resolved, host)

    assert "'sloppy'" in str(raised.value)
    assert "zoo_train" in str(raised.value)
    assert list(runs_dir.iterdir()) == []


def test_hook_exception_becomes_plugin_error(plugin_site, frequency_plugin_source):
    source = frequency_plugin_source + (
        "\n\n@hookimpl\ndef zoo_predict(trained, images):\n    raise KeyError('weights')\n"
    )
    plugin_site.install("crashy", source)
    host = PluginHost()

    with pytest.raises(PluginError) as raised:
        host.call("crashy", "zoo_predict", trained=None, images=np.zeros((1, 28, 28), np.uint8))

    assert str(raised.value) == "plugin 'crashy' failed in zoo_predict: KeyError: 'weights'"
    assert isinstance(raised.value.__cause__, KeyError)


def test_hook_config_error_passes_through(plugin_site, frequency_plugin_source):
    source = frequency_plugin_source + (
        "\n\nfrom zoo_core.errors import ConfigError\n\n"
        "@hookimpl\ndef zoo_predict(trained, images):\n    raise ConfigError('setting x is invalid')\n"
    )
    plugin_site.install("strict", source)
    host = PluginHost()

    with pytest.raises(ConfigError) as raised:
        host.call("strict", "zoo_predict", trained=None, images=np.zeros((1, 28, 28), np.uint8))

    assert str(raised.value) == "setting x is invalid"


def test_missing_hook_is_reported(plugin_site, frequency_plugin_source):
    plugin_site.install("minimal", frequency_plugin_source + "\ndel zoo_predict\n")
    host = PluginHost()

    with pytest.raises(PluginError) as raised:
        host.call("minimal", "zoo_predict", trained=None, images=None)

    assert str(raised.value) == "plugin 'minimal' does not implement zoo_predict"


def test_unknown_plugin_lists_installed():
    with pytest.raises(PluginError) as raised:
        PluginHost().get("nonexistent")

    assert "plugin 'nonexistent' is not installed" in str(raised.value)
    assert "keras" in str(raised.value)


@pytest.mark.slow
def test_cli_survives_broken_plugin(plugin_site, frequency_plugin_source, zoo_cli, tmp_path):
    plugin_site.install("good", frequency_plugin_source)
    plugin_site.install("broken", BROKEN_IMPORT_SOURCE)
    env = plugin_site.subprocess_env()

    plugins = zoo_cli("plugins", cwd=tmp_path, env=env)
    listing = zoo_cli("list", cwd=tmp_path, env=env)
    run = zoo_cli("run", "freq", "--limit", "100", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path, env=env)

    assert plugins.returncode == 0
    assert "broken" in plugins.stdout
    assert "RuntimeError: plugin import exploded" in plugins.stdout
    assert listing.returncode == 0
    assert "good/freq" in listing.stdout
    assert "plugin 'broken' is not loaded" in listing.stderr
    assert run.returncode == 0, run.stderr
    assert "Test accuracy:" in run.stdout
    assert "plugin 'broken' is not loaded" in run.stderr
