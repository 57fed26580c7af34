"""Run settings: one typed place, merged from defaults, a YAML file and options.

Precedence, lowest first: the plugin's defaults, the registry entry, the
``--config`` file, the command-line options, then ``--set key=value``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo_core.errors import ConfigError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader that reads every exponent float, such as ``3e-4`` or ``1.0e5``, as a number.

    PyYAML 6 follows YAML 1.1, whose floats need a dot and a signed exponent, so
    its safe loader reads ``lr: 3e-4`` as the string '3e-4'. YAML 1.2 and
    Python's float() read it as a number.
    """


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def load_yaml(text: str) -> Any:
    """Parse one YAML document with YamlLoader. Raise yaml.YAMLError if the text is not valid YAML."""
    return yaml.load(text, Loader=YamlLoader)


@dataclass
class RunConfig:
    """Everything that defines a run. Saved with the run as settings.yaml."""

    model: str
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    limit: int | None = None
    threads: int | None = None
    device: str = "auto"
    data_dir: str | None = None
    runs_dir: str = "runs"
    log_interval: int = 100
    quiet: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    def hyperparameters(self) -> dict[str, Any]:
        """Return what makes two runs comparable: training options and model settings, without the seed."""
        values: dict[str, Any] = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}
        if self.limit is not None:
            values["limit"] = self.limit
        if self.data_dir is not None:
            values["data_dir"] = self.data_dir
        values.update(self.settings)
        return values

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "epochs": (int,),
    "batch_size": (int,),
    "lr": (float, int),
    "seed": (int,),
    "limit": (int, type(None)),
    "threads": (int, type(None)),
    "device": (str,),
    "data_dir": (str, type(None)),
    "runs_dir": (str,),
    "log_interval": (int,),
    "quiet": (bool,),
    "settings": (dict,),
}
CONFIG_FILE_FIELDS = [name for name in FIELD_TYPES]


def _suggest(word: str, choices: list[str]) -> str:
    matches = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(m) for m in matches)}?)" if matches else ""


def validate(config: RunConfig) -> RunConfig:
    """Check types and ranges; raise ConfigError naming the option and the accepted values."""
    for name, types in FIELD_TYPES.items():
        value = getattr(config, name)
        wrong_bool = isinstance(value, bool) and bool not in types
        if wrong_bool or not isinstance(value, types):
            raise ConfigError(f"option {name!r} has invalid value {value!r}: expected {_type_names(types)}")
    positive = {"epochs": config.epochs, "batch_size": config.batch_size, "log_interval": config.log_interval}
    if config.limit is not None:
        positive["limit"] = config.limit
    if config.threads is not None:
        positive["threads"] = config.threads
    for name, value in positive.items():
        if value < 1:
            raise ConfigError(f"option {name!r} must be at least 1, got {value}")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise ConfigError(f"option 'lr' must be a positive number, got {config.lr}")
    if config.seed < 0:
        raise ConfigError(f"option 'seed' must be zero or positive, got {config.seed}")
    if not DEVICE_PATTERN.match(config.device):
        raise ConfigError(f"option 'device' has invalid value {config.device!r}: use auto, cpu, cuda, cuda:N or mps")
    config.lr = float(config.lr)
    return config


def _type_names(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping"}
    parts = [names.get(t, t.__name__) for t in types if t is not type(None)]
    if type(None) in types:
        parts.append("null")
    return " or ".join(parts)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``--config`` YAML file of RunConfig fields; unknown keys are errors."""
    path = Path(path)
    try:
        document = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {error}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {error}") from error
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"config file {str(path)!r} must contain a mapping of options, got {type(document).__name__}")
    for key in document:
        if key not in CONFIG_FILE_FIELDS:
            raise ConfigError(
                f"config file {str(path)!r}: unknown option {key!r}{_suggest(str(key), CONFIG_FILE_FIELDS)}; "
                f"valid options: {', '.join(CONFIG_FILE_FIELDS)}"
            )
    return document


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` from ``--set``; the value is read as YAML (``3``, ``0.5``, ``true``, ``[512, 256]``)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r} is invalid: use --set key=value, for example --set dropout=0.3")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def coerce_setting(model: str, key: str, value: Any, defaults: dict[str, Any]) -> Any:
    """Check a model setting against the model's defaults and convert it to the default's type."""
    if key not in defaults:
        valid = ", ".join(sorted(defaults)) or "none"
        raise ConfigError(
            f"model {model!r} has no setting {key!r}{_suggest(key, list(defaults))}; valid settings: {valid}"
        )
    default = defaults[key]
    if default is None:
        return value
    if value is None:
        raise ConfigError(f"model {model!r} setting {key!r} must not be null; its default is {default!r}")
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        return str(value)
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, (list, tuple)):
            return list(value)
    else:
        return value
    raise ConfigError(
        f"model {model!r} setting {key!r} has invalid value {value!r}: "
        f"expected a value like the default {default!r}"
    )


def build_config(
    model: str,
    training: dict[str, Any],
    settings: dict[str, Any],
    file_values: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    assignments: list[str] | None = None,
) -> RunConfig:
    """Merge defaults, a config file, options and ``--set`` assignments into a validated RunConfig.

    ``training`` and ``settings`` are the model's defaults; ``options`` holds
    only the command-line options the user gave (None means not given).
    """
    for key in training:
        if key not in FIELD_TYPES or key == "settings":
            raise ConfigError(f"model {model!r} declares an unknown training default {key!r}; use epochs, batch_size or lr")
    values: dict[str, Any] = dict(training)
    merged_settings = dict(settings)

    for source in (file_values or {}, {k: v for k, v in (options or {}).items() if v is not None}):
        for key, value in source.items():
            if key == "settings":
                if not isinstance(value, dict):
                    raise ConfigError(f"'settings' must be a mapping of model settings, got {value!r}")
                for name, setting in value.items():
                    merged_settings[name] = coerce_setting(model, str(name), setting, settings)
            elif key in FIELD_TYPES:
                values[key] = value
            else:
                raise ConfigError(f"unknown option {key!r}{_suggest(key, CONFIG_FILE_FIELDS)}")

    for text in assignments or []:
        key, value = parse_assignment(text)
        if key in FIELD_TYPES and key != "settings" and key not in settings:
            values[key] = value
        else:
            merged_settings[key] = coerce_setting(model, key, value, settings)

    config = RunConfig(model=model, settings=merged_settings, **values)
    return validate(config)
