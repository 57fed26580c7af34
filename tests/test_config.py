"""Run configuration: precedence of the sources, --set parsing and coercion, validation and config files."""

from __future__ import annotations

import pytest

from zoo_core.config import (
    CONFIG_FILE_FIELDS,
    RunConfig,
    build_config,
    coerce_setting,
    parse_assignment,
    read_config_file,
    validate,
)
from zoo_core.errors import ConfigError

MODEL = "keras/mlp"
TRAINING = {"epochs": 20, "batch_size": 128, "lr": 1e-3}
SETTINGS = {"hidden": [512, 512], "activation": "relu", "dropout": 0.2, "schedule": "cosine", "residual": False,
            "units": 128, "head": None}


def config_error(**kwargs) -> str:
    with pytest.raises(ConfigError) as raised:
        build_config(MODEL, TRAINING, SETTINGS, **kwargs)
    return str(raised.value)


def test_defaults_come_from_model():
    config = build_config(MODEL, TRAINING, SETTINGS)

    assert config.model == MODEL
    assert config.epochs == 20
    assert config.batch_size == 128
    assert config.lr == 1e-3
    assert config.seed == 0
    assert config.limit is None
    assert config.device == "auto"
    assert config.settings == SETTINGS


def test_core_defaults_fill_missing_training():
    config = build_config(MODEL, {}, {})

    assert (config.epochs, config.batch_size, config.lr) == (10, 128, 1e-3)


def test_config_file_overrides_defaults():
    config = build_config(MODEL, TRAINING, SETTINGS, file_values={"epochs": 5, "settings": {"dropout": 0.3}})

    assert config.epochs == 5
    assert config.settings["dropout"] == 0.3


def test_options_override_config_file():
    config = build_config(MODEL, TRAINING, SETTINGS, file_values={"epochs": 5, "seed": 7},
                          options={"epochs": 3, "seed": None})

    assert config.epochs == 3
    assert config.seed == 7


def test_assignments_override_options():
    config = build_config(
        MODEL, TRAINING, SETTINGS,
        file_values={"epochs": 5, "settings": {"dropout": 0.3}},
        options={"epochs": 3},
        assignments=["epochs=2", "dropout=0.4"],
    )

    assert config.epochs == 2
    assert config.settings["dropout"] == 0.4


def test_later_assignment_wins():
    config = build_config(MODEL, TRAINING, SETTINGS, assignments=["dropout=0.1", "dropout=0.5"])

    assert config.settings["dropout"] == 0.5


def test_settings_are_not_shared_with_defaults():
    settings = {"dropout": 0.2}

    build_config(MODEL, TRAINING, settings, assignments=["dropout=0.4"])

    assert settings == {"dropout": 0.2}


@pytest.mark.parametrize(
    ("assignment", "key", "expected"),
    [
        ("dropout=1", "dropout", 1.0),
        ("dropout=0.25", "dropout", 0.25),
        ("units=64", "units", 64),
        ("hidden=256", "hidden", [256]),
        ("hidden=[256, 128]", "hidden", [256, 128]),
        ("activation=gelu", "activation", "gelu"),
        ("activation=123", "activation", "123"),
        ("residual=true", "residual", True),
        ("head=linear", "head", "linear"),
    ],
)
def test_assignment_coerces_to_default_type(assignment, key, expected):
    config = build_config(MODEL, TRAINING, SETTINGS, assignments=[assignment])

    assert config.settings[key] == expected
    assert type(config.settings[key]) is type(expected)


@pytest.mark.parametrize(
    ("assignment", "attribute", "expected"),
    [("epochs=3", "epochs", 3), ("lr=0.01", "lr", 0.01), ("lr=1", "lr", 1.0), ("lr=3e-4", "lr", 3e-4),
     ("seed=5", "seed", 5), ("limit=500", "limit", 500), ("device=cpu", "device", "cpu"), ("quiet=true", "quiet", True)],
)
def test_assignment_sets_run_options(assignment, attribute, expected):
    config = build_config(MODEL, TRAINING, SETTINGS, assignments=[assignment])

    assert getattr(config, attribute) == expected
    assert type(getattr(config, attribute)) is type(expected)


def test_setting_named_like_option_stays_setting():
    config = build_config(MODEL, TRAINING, {"seed": 3}, assignments=["seed=9"])

    assert config.settings["seed"] == 9
    assert config.seed == 0


def test_unknown_setting_suggests_name():
    message = config_error(assignments=["dropot=0.3"])

    assert "model 'keras/mlp' has no setting 'dropot'" in message
    assert "(did you mean 'dropout'?)" in message
    assert "valid settings: activation, dropout, head, hidden, residual, schedule, units" in message


def test_unknown_setting_without_settings():
    with pytest.raises(ConfigError) as raised:
        build_config(MODEL, TRAINING, {}, assignments=["dropout=0.3"])

    assert str(raised.value) == "model 'keras/mlp' has no setting 'dropout'; valid settings: none"


@pytest.mark.parametrize(
    "assignment",
    ["dropout=abc", "dropout=true", "units=1.5", "units=true", "units=[1]", "hidden=abc", "residual=1",
     "residual=yes please"],
)
def test_assignment_wrong_type(assignment):
    key, _, _ = assignment.partition("=")

    message = config_error(assignments=[assignment])

    assert f"model 'keras/mlp' setting {key!r} has invalid value" in message
    assert f"expected a value like the default {SETTINGS[key]!r}" in message


@pytest.mark.parametrize("text", ["dropout", "=3", " =3", ""])
def test_assignment_without_key_or_equals(text):
    with pytest.raises(ConfigError) as raised:
        parse_assignment(text)

    assert "use --set key=value" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("dropout=0.3", ("dropout", 0.3)), (" dropout =0.3", ("dropout", 0.3)), ("name=", ("name", "")),
     ("hidden=[1, 2]", ("hidden", [1, 2])), ("tag=a=b", ("tag", "a=b")), ("bad=[1, 2", ("bad", "[1, 2")),
     ("lr=3e-4", ("lr", 3e-4)), ("lr=1E3", ("lr", 1000.0)), ("lr=-2.5e+1", ("lr", -25.0)),
     ("lr=1.0e5", ("lr", 100000.0)), ("lr=.5e-3", ("lr", 0.0005)), ("lr=.5e3", ("lr", 500.0)),
     ("name=e5", ("name", "e5")), ("name=3e", ("name", "3e")), ("name=.e5", ("name", ".e5"))],
)
def test_parse_assignment_values(text, parsed):
    assert parse_assignment(text) == parsed


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"epochs": 0}, "option 'epochs' must be at least 1, got 0"),
        ({"epochs": -2}, "option 'epochs' must be at least 1, got -2"),
        ({"epochs": 1.5}, "option 'epochs' has invalid value 1.5: expected an integer"),
        ({"epochs": True}, "option 'epochs' has invalid value True: expected an integer"),
        ({"batch_size": 0}, "option 'batch_size' must be at least 1, got 0"),
        ({"lr": 0.0}, "option 'lr' must be a positive number, got 0.0"),
        ({"lr": -0.1}, "option 'lr' must be a positive number, got -0.1"),
        ({"lr": float("nan")}, "option 'lr' must be a positive number, got nan"),
        ({"lr": "fast"}, "option 'lr' has invalid value 'fast': expected a number or an integer"),
        ({"device": "gpu"}, "option 'device' has invalid value 'gpu': use auto, cpu, cuda, cuda:N or mps"),
        ({"device": "cuda:x"}, "option 'device' has invalid value 'cuda:x'"),
        ({"device": "CPU"}, "option 'device' has invalid value 'CPU'"),
        ({"limit": 0}, "option 'limit' must be at least 1, got 0"),
        ({"limit": -5}, "option 'limit' must be at least 1, got -5"),
        ({"limit": "all"}, "option 'limit' has invalid value 'all': expected an integer or null"),
        ({"threads": 0}, "option 'threads' must be at least 1, got 0"),
        ({"seed": -1}, "option 'seed' must be zero or positive, got -1"),
        ({"log_interval": 0}, "option 'log_interval' must be at least 1, got 0"),
        ({"quiet": "yes"}, "option 'quiet' has invalid value 'yes': expected true or false"),
    ],
)
def test_invalid_option_values(options, fragment):
    assert fragment in config_error(options=options)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_valid_devices(device):
    assert build_config(MODEL, TRAINING, SETTINGS, options={"device": device}).device == device


def test_invalid_value_from_assignment():
    message = config_error(assignments=["epochs=many"])

    assert message == "option 'epochs' has invalid value 'many': expected an integer"


def test_invalid_value_from_config_file():
    message = config_error(file_values={"limit": True})

    assert message == "option 'limit' has invalid value True: expected an integer or null"


def test_settings_in_file_must_be_mapping():
    message = config_error(file_values={"settings": [1, 2]})

    assert message == "'settings' must be a mapping of model settings, got [1, 2]"


def test_unknown_setting_in_file_suggests():
    message = config_error(file_values={"settings": {"actvation": "gelu"}})

    assert "has no setting 'actvation' (did you mean 'activation'?)" in message


def test_unknown_option_key_suggests():
    message = config_error(options={"epoch": 3})

    assert message == "unknown option 'epoch' (did you mean 'epochs'?)"


def test_validate_converts_integer_lr():
    config = validate(RunConfig(model=MODEL, lr=1))

    assert config.lr == 1.0
    assert isinstance(config.lr, float)


def test_hyperparameters_leave_out_seed():
    config = build_config(MODEL, TRAINING, {"dropout": 0.2}, options={"seed": 4, "limit": 500})

    assert config.hyperparameters() == {"epochs": 20, "batch_size": 128, "lr": 1e-3, "limit": 500, "dropout": 0.2}


def test_hyperparameters_without_limit():
    config = build_config(MODEL, TRAINING, {})

    assert "limit" not in config.hyperparameters()


def test_to_dict_round_trip():
    config = build_config(MODEL, TRAINING, SETTINGS, options={"seed": 3})

    assert RunConfig(**config.to_dict()) == config


def test_read_config_file_values(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 4\nlr: 0.01\nsettings:\n  dropout: 0.1\n", encoding="utf-8")

    assert read_config_file(path) == {"epochs": 4, "lr": 0.01, "settings": {"dropout": 0.1}}


def test_read_config_file_exponent_floats(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("lr: 3e-4\nsettings:\n  dropout: 1e-1\n", encoding="utf-8")

    document = read_config_file(path)

    assert document == {"lr": 3e-4, "settings": {"dropout": 0.1}}
    assert type(document["lr"]) is float


def test_read_config_file_empty(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")

    assert read_config_file(path) == {}


def test_read_config_file_missing(tmp_path):
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError) as raised:
        read_config_file(path)

    assert str(raised.value) == f"config file {str(path)!r} not found"


def test_read_config_file_bad_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: [4\n", encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        read_config_file(path)

    assert str(raised.value).startswith(f"config file {str(path)!r} is not valid YAML:")


def test_read_config_file_unknown_key(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("epochs: 4\nbatchsize: 64\n", encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        read_config_file(path)

    message = str(raised.value)
    assert "unknown option 'batchsize' (did you mean 'batch_size'?)" in message
    assert f"valid options: {', '.join(CONFIG_FILE_FIELDS)}" in message


def test_read_config_file_not_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- epochs\n- 4\n", encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        read_config_file(path)

    assert str(raised.value) == f"config file {str(path)!r} must contain a mapping of options, got list"


def test_read_config_file_directory(tmp_path):
    with pytest.raises(ConfigError) as raised:
        read_config_file(tmp_path)

    assert "cannot be read" in str(raised.value)


def test_read_config_file_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"epochs: 4 # \xe9\xff\n")

    with pytest.raises(ConfigError) as raised:
        read_config_file(path)

    assert "cannot be read" in str(raised.value)


def test_model_field_not_in_config_file(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("model: keras/lstm\n", encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        read_config_file(path)

    assert "unknown option 'model'" in str(raised.value)


def test_coerce_setting_none_default_accepts_any():
    assert coerce_setting(MODEL, "head", {"kind": "linear"}, {"head": None}) == {"kind": "linear"}
