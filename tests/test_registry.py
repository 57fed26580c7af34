"""Registry validation (parse_registry) and model name resolution (Catalog) against the installed plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo_core.errors import ConfigError, ModelNotFoundError, PluginError
from zoo_core.plugins import PluginHost
from zoo_core.registry import (
    Catalog,
    RegistryEntry,
    default_registry_path,
    load_registry,
    load_registry_document,
    parse_registry,
    parse_registry_document,
)

pytestmark = pytest.mark.usefixtures("isolated_zoo_env")

CHECKOUT_REGISTRY = Path(__file__).resolve().parent.parent / "registry.yaml"
KERAS_REGISTRY = """
version: 1
models:
  - name: mlp
    plugin: keras
    package: zoo
    description: Keras dense network from the test registry
    aliases: [dense]
  - name: lstm
    plugin: keras
    package: zoo
    aliases: [rnn]
"""


def parse_error(text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        parse_registry(text, "test.yaml")
    return str(raised.value)


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost()


@pytest.fixture(scope="module")
def catalog(host) -> Catalog:
    return Catalog(host, parse_registry(KERAS_REGISTRY, "keras.yaml"))


def test_parse_full_entry():
    text = """
version: 1
models:
  - name: wide
    plugin: keras
    model: mlp
    package: zoo
    description: wide dense network
    aliases: [big, large]
    training: {epochs: 5}
    settings: {hidden: [1024]}
"""
    [entry] = parse_registry(text, "test.yaml")

    assert entry == RegistryEntry(
        name="wide",
        plugin="keras",
        model="mlp",
        package="zoo",
        description="wide dense network",
        aliases=("big", "large"),
        training={"epochs": 5},
        settings={"hidden": [1024]},
    )


def test_parse_exponent_float_training():
    [entry] = parse_registry("models:\n  - {name: mlp, plugin: keras, training: {lr: 3e-4}}\n", "test.yaml")

    assert entry.training == {"lr": 3e-4}


def test_parse_model_defaults_to_name():
    [entry] = parse_registry("models:\n  - {name: mlp, plugin: keras}\n", "test.yaml")

    assert entry.model == "mlp"
    assert entry.package is None
    assert entry.aliases == ()


@pytest.mark.parametrize("text", ["", "# only a comment\n", "models: []\n", "version: 1\n"])
def test_parse_empty_documents(text):
    assert parse_registry(text, "test.yaml") == []


def test_parse_unknown_field_suggests():
    message = parse_error("models:\n  - name: mlp\n    plugin: keras\n    alias: [dense]\n")

    assert "entry 'mlp'" in message
    assert "unknown field 'alias'" in message
    assert "did you mean 'aliases'?" in message


def test_parse_unknown_top_level_suggests():
    message = parse_error("model:\n  - {name: mlp, plugin: keras}\n")

    assert message == "test.yaml: unknown top-level field 'model' (did you mean 'models'?)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:\n  - {name: mlp, plugin: keras, aliases: dense}\n",
         "test.yaml: entry 'mlp': field 'aliases' must be a list, got str 'dense'"),
        ("models:\n  - {name: mlp, plugin: 3}\n",
         "test.yaml: entry 'mlp': field 'plugin' must be a string, got int 3"),
        ("models:\n  - {name: mlp, plugin: keras, training: [1]}\n",
         "test.yaml: entry 'mlp': field 'training' must be a mapping, got list [1]"),
        ("version: '1'\n", "test.yaml: field 'version' must be an integer, got str '1'"),
        ("version: true\n", "test.yaml: field 'version' must be an integer, got bool True"),
        ("models: {name: mlp}\n", "test.yaml: field 'models' must be a list, got dict {'name': 'mlp'}"),
    ],
)
def test_parse_wrong_types(text, expected):
    assert parse_error(text) == expected


def test_parse_unnamed_entry_uses_position():
    message = parse_error("models:\n  - {name: mlp, plugin: keras}\n  - {name: 7, plugin: keras}\n")

    assert message == "test.yaml: entry 2: field 'name' must be a string, got int 7"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:\n  - {name: mlp}\n", "test.yaml: entry 'mlp': missing required field 'plugin'"),
        ("models:\n  - {plugin: keras}\n", "test.yaml: entry 1: missing required field 'name'"),
    ],
)
def test_parse_missing_required_field(text, expected):
    assert parse_error(text) == expected


def test_parse_duplicate_name():
    message = parse_error("models:\n  - {name: mlp, plugin: keras}\n  - {name: mlp, plugin: other}\n")

    assert message == "test.yaml: entry 'mlp': name 'mlp' is already used by entry 'mlp'"


def test_parse_alias_clashes_with_name():
    message = parse_error(
        "models:\n  - {name: mlp, plugin: keras, aliases: [dense]}\n  - {name: dense, plugin: other}\n"
    )

    assert message == "test.yaml: entry 'dense': name 'dense' is already used by entry 'mlp'"


def test_parse_alias_repeated_in_entry():
    message = parse_error("models:\n  - {name: mlp, plugin: keras, aliases: [dense, dense]}\n")

    assert "name 'dense' is already used by entry 'mlp'" in message


def test_parse_alias_must_be_string():
    message = parse_error("models:\n  - {name: mlp, plugin: keras, aliases: [dense, 3]}\n")

    assert message == "test.yaml: entry 'mlp': field 'aliases' must list strings, got 3"


def test_parse_rejects_qualified_name():
    message = parse_error("models:\n  - {name: keras/mlp, plugin: keras}\n")

    assert "name 'keras/mlp' must not contain '/'" in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("models: [\n", "test.yaml is not valid YAML"),
        ("- a\n- b\n", "expected a mapping with a 'models' list, got list"),
        ("models:\n  - just-a-name\n", "test.yaml: entry 1: expected a mapping, got str"),
    ],
)
def test_parse_malformed_documents(text, fragment):
    assert fragment in parse_error(text)


def test_load_registry_missing_file(tmp_path):
    assert load_registry(tmp_path / "absent.yaml") == []


def test_checkout_registry_entries():
    entries = {entry.name: entry for entry in load_registry(CHECKOUT_REGISTRY)}

    assert entries["mlp"].plugin == "keras"
    assert entries["mlp"].aliases == ("dense",)
    assert entries["lstm"].plugin == "keras"
    assert entries["lstm"].aliases == ("rnn",)


def test_registry_path_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "mine.yaml"))

    assert default_registry_path() == tmp_path / "mine.yaml"


@pytest.mark.parametrize(
    ("name", "qualified"),
    [("mlp", "keras/mlp"), ("dense", "keras/mlp"), ("keras/mlp", "keras/mlp"),
     ("lstm", "keras/lstm"), ("rnn", "keras/lstm"), ("keras/lstm", "keras/lstm")],
)
def test_resolve_names_and_aliases(catalog, name, qualified):
    assert catalog.resolve(name).qualified == qualified


def test_resolve_alias_uses_entry_description(catalog):
    resolved = catalog.resolve("dense")

    assert resolved.description == "Keras dense network from the test registry"


def test_resolve_merges_entry_defaults(host):
    entry = RegistryEntry(name="wide", plugin="keras", model="mlp", training={"epochs": 3},
                          settings={"hidden": [1024]})

    resolved = Catalog(host, [entry]).resolve("wide")

    assert resolved.qualified == "keras/mlp"
    assert resolved.training == {"epochs": 3, "batch_size": 128, "lr": 1e-3}
    assert resolved.settings["hidden"] == [1024]
    assert resolved.settings["dropout"] == 0.2


def test_model_named_entry_curates_defaults(host):
    entry = RegistryEntry(name="mlp", plugin="keras", model="mlp", training={"epochs": 4})

    resolved = Catalog(host, [entry]).resolve("keras/mlp")

    assert resolved.training["epochs"] == 4


def test_resolve_without_registry(host):
    resolved = Catalog(host, entries=[]).resolve("mlp")

    assert resolved.qualified == "keras/mlp"
    assert resolved.training["epochs"] == 20


def test_unknown_model_suggests_close_names(catalog):
    with pytest.raises(ModelNotFoundError) as raised:
        catalog.resolve("mlpp")

    assert str(raised.value) == "unknown model 'mlpp' (did you mean 'mlp'?); see `zoo list`"


def test_unknown_model_without_close_match(catalog):
    with pytest.raises(ModelNotFoundError) as raised:
        catalog.resolve("gradient_boosting")

    assert str(raised.value) == "unknown model 'gradient_boosting'; see `zoo list`"


def test_unknown_plugin_prefix_suggests(catalog):
    with pytest.raises(ModelNotFoundError) as raised:
        catalog.resolve("kears/mlp")

    assert "unknown plugin 'kears'" in str(raised.value)
    assert "did you mean 'keras'?" in str(raised.value)


def test_unknown_model_of_plugin_suggests(catalog):
    with pytest.raises(ModelNotFoundError) as raised:
        catalog.resolve("keras/lstn")

    assert "plugin 'keras' provides no model 'lstn'" in str(raised.value)
    assert "did you mean 'lstm'?" in str(raised.value)


def test_missing_plugin_entry_is_unavailable(host):
    entry = RegistryEntry(name="resnet18", plugin="vision", model="resnet18", package="zoo-vision",
                          description="ResNet-18")
    catalog = Catalog(host, [entry])

    [row] = [row for row in catalog.rows() if row.name == "resnet18"]

    assert not row.available
    assert row.qualified == "vision/resnet18"
    assert row.note == "plugin 'vision' is not installed; install zoo-vision"
    assert row.description == "ResNet-18"


def test_missing_plugin_resolve_names_package(host):
    entry = RegistryEntry(name="resnet18", plugin="vision", model="resnet18", package="zoo-vision")
    catalog = Catalog(host, [entry])

    with pytest.raises(PluginError) as raised:
        catalog.resolve("resnet18")

    assert str(raised.value) == (
        "model 'resnet18' is unavailable: plugin 'vision' is not installed; install zoo-vision"
    )


def test_missing_plugin_qualified_names_package(host):
    entry = RegistryEntry(name="resnet18", plugin="vision", model="resnet18", package="zoo-vision")
    catalog = Catalog(host, [entry])

    with pytest.raises(PluginError) as raised:
        catalog.resolve("vision/resnet18")

    assert str(raised.value) == "plugin 'vision' is not installed; install zoo-vision"


def test_entry_for_missing_model_suggests_upgrade(host):
    entry = RegistryEntry(name="cnn", plugin="keras", model="cnn", package="zoo")
    catalog = Catalog(host, [entry])

    [row] = [row for row in catalog.rows() if row.name == "cnn"]

    assert not row.available
    assert row.note == "plugin 'keras' provides no model 'cnn'; upgrade zoo"


def test_broken_plugin_entry_unavailable(plugin_site):
    plugin_site.install("broken", "raise ImportError('missing native library')\n")
    entry = RegistryEntry(name="fast", plugin="broken", model="fast", package="zoo-test-broken")
    catalog = Catalog(PluginHost(), [entry])

    [row] = [row for row in catalog.rows() if row.name == "fast"]

    assert not row.available
    assert row.note.startswith("plugin 'broken' failed to load: failed to import")
    assert "missing native library" in row.note


def test_rows_list_registry_entries_first(catalog):
    rows = catalog.rows()

    assert [(row.name, row.qualified, row.available) for row in rows[:2]] == [
        ("mlp", "keras/mlp", True),
        ("lstm", "keras/lstm", True),
    ]
    assert rows[0].aliases == ("dense",)


def test_rows_entry_without_description(catalog):
    [row] = [row for row in catalog.rows() if row.name == "lstm"]

    assert row.description == catalog.host.plugins["keras"].models["lstm"].description


def test_rows_list_each_model_once(catalog):
    qualified = [row.qualified for row in catalog.rows()]

    assert len(qualified) == len(set(qualified))
    assert "keras/mlp" in qualified


def test_rows_qualify_shared_model_names(plugin_site, frequency_plugin_source):
    plugin_site.install("alpha", frequency_plugin_source)
    plugin_site.install("beta", frequency_plugin_source)

    names = {row.qualified: row.name for row in Catalog(PluginHost(), entries=[]).rows()}

    assert names["alpha/freq"] == "alpha/freq"
    assert names["beta/freq"] == "beta/freq"
    assert names["keras/mlp"] == "mlp"


def test_rows_entry_claims_shared_name(plugin_site, frequency_plugin_source):
    plugin_site.install("alpha", frequency_plugin_source)
    plugin_site.install("beta", frequency_plugin_source)
    entry = RegistryEntry(name="freq", plugin="beta", model="freq")

    rows = Catalog(PluginHost(), [entry]).rows()
    names = {row.qualified: row.name for row in rows}

    assert names["beta/freq"] == "freq"
    assert names["alpha/freq"] == "alpha/freq"


def test_parse_prefer_keeps_order():
    registry = parse_registry_document("prefer: [torchvision, timm]\nmodels: []\n", "test.yaml")

    assert registry.prefer == ("torchvision", "timm")
    assert registry.entries == []


def test_parse_without_prefer():
    assert parse_registry_document("models: []\n", "test.yaml").prefer == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prefer: timm\n", "test.yaml: field 'prefer' must be a list, got str 'timm'"),
        ("prefer: [timm, 3]\n", "test.yaml: field 'prefer' must list plugin names, got 3"),
        ("prefer: [timm/resnet50]\n", "test.yaml: field 'prefer' must list plugin names, got 'timm/resnet50'"),
        ("prefer: [timm, torchvision, timm]\n", "test.yaml: field 'prefer' lists plugin 'timm' twice"),
    ],
)
def test_parse_invalid_prefer(text, expected):
    assert parse_error(text) == expected


def test_checkout_registry_prefers_torchvision():
    assert load_registry_document(CHECKOUT_REGISTRY).prefer == ("torchvision", "timm")


def test_prefer_picks_owner_of_shared_name(plugin_site, frequency_plugin_source):
    plugin_site.install("alpha", frequency_plugin_source)
    plugin_site.install("beta", frequency_plugin_source)
    catalog = Catalog(PluginHost(), entries=[], prefer=("beta", "alpha"))

    names = {row.qualified: row.name for row in catalog.rows()}

    assert catalog.resolve("freq").qualified == "beta/freq"
    assert catalog.resolve("alpha/freq").qualified == "alpha/freq"
    assert names["beta/freq"] == "freq"
    assert names["alpha/freq"] == "alpha/freq"


def test_prefer_skips_plugins_without_model(plugin_site, frequency_plugin_source):
    plugin_site.install("alpha", frequency_plugin_source)
    plugin_site.install("beta", frequency_plugin_source)
    catalog = Catalog(PluginHost(), entries=[], prefer=("keras", "missing", "alpha"))

    assert catalog.resolve("freq").qualified == "alpha/freq"


def test_prefer_without_provider_stays_ambiguous(plugin_site, frequency_plugin_source):
    plugin_site.install("alpha", frequency_plugin_source)
    plugin_site.install("beta", frequency_plugin_source)
    catalog = Catalog(PluginHost(), entries=[], prefer=("keras",))

    with pytest.raises(ModelNotFoundError, match="provided by several plugins"):
        catalog.resolve("freq")


def test_entry_claims_name_before_prefer(plugin_site, frequency_plugin_source):
    plugin_site.install("alpha", frequency_plugin_source)
    plugin_site.install("beta", frequency_plugin_source)
    entry = RegistryEntry(name="freq", plugin="beta", model="freq")
    catalog = Catalog(PluginHost(), [entry], prefer=("alpha", "beta"))

    names = {row.qualified: row.name for row in catalog.rows()}

    assert catalog.resolve("freq").qualified == "beta/freq"
    assert names["beta/freq"] == "freq"
    assert names["alpha/freq"] == "alpha/freq"
