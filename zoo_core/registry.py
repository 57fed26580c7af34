"""Model names: what plugins provide, plus the curated entries of registry.yaml.

Every model has a qualified name ``PLUGIN/MODEL``. A plain name works when one
plugin provides it, when a registry entry or alias claims it, or when the
registry's ``prefer`` list ranks the plugins that provide it. Resolution
order for a plain name: registry entries and aliases, then the models of the
installed plugins, where a name that several plugins provide belongs to the
first of them in ``prefer``.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo_core.config import load_yaml
from zoo_core.errors import ConfigError, ModelNotFoundError, PluginError
from zoo_core.plugins import PluginHost

REGISTRY_FILE = "registry.yaml"
ENTRY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "plugin": str,
    "model": str,
    "package": str,
    "description": str,
    "aliases": list,
    "training": dict,
    "settings": dict,
}
REQUIRED_FIELDS = ("name", "plugin")
TOP_LEVEL_FIELDS = {"version": int, "prefer": list, "models": list}
TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "a mapping"}


@dataclass(frozen=True)
class RegistryEntry:
    """A curated model name from registry.yaml."""

    name: str
    plugin: str
    model: str
    package: str | None = None
    description: str = ""
    aliases: tuple[str, ...] = ()
    training: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Registry:
    """A parsed registry.yaml: its entries, and the plugin order for plain names that several plugins provide."""

    entries: list[RegistryEntry] = field(default_factory=list)
    prefer: tuple[str, ...] = ()


@dataclass
class ResolvedModel:
    """A model name resolved to one plugin's model, with merged defaults."""

    plugin: str
    model: str
    description: str
    training: dict[str, Any]
    settings: dict[str, Any]

    @property
    def qualified(self) -> str:
        return f"{self.plugin}/{self.model}"


@dataclass
class CatalogRow:
    """One line of ``zoo list``."""

    name: str
    qualified: str
    plugin: str
    available: bool
    description: str
    aliases: tuple[str, ...] = ()
    note: str = ""


def default_registry_path() -> Path:
    """Locate registry.yaml: $ZOO_REGISTRY, the source checkout, or the installed data file."""
    override = os.environ.get("ZOO_REGISTRY")
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parent.parent / REGISTRY_FILE
    if checkout.is_file():
        return checkout
    return Path(sys.prefix) / "share" / "zoo" / REGISTRY_FILE


def _suggest(word: str, choices: list[str]) -> str:
    matches = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(m) for m in matches)}?)" if matches else ""


def _check_type(where: str, key: str, value: Any, expected: type | tuple[type, ...]) -> None:
    # bool is a subclass of int, so an int field must reject True and False explicitly.
    if isinstance(value, bool) and expected is int or not isinstance(value, expected):
        raise ConfigError(f"{where}: field {key!r} must be {TYPE_NAMES[expected]}, got {type(value).__name__} {value!r}")


def parse_registry(text: str, source: str) -> list[RegistryEntry]:
    """Parse and validate registry YAML and return its entries; errors name the entry and the field."""
    return parse_registry_document(text, source).entries


def _parse_prefer(source: str, value: list[Any]) -> tuple[str, ...]:
    seen: list[str] = []
    for plugin in value:
        if not isinstance(plugin, str) or not plugin or "/" in plugin:
            raise ConfigError(f"{source}: field 'prefer' must list plugin names, got {plugin!r}")
        if plugin in seen:
            raise ConfigError(f"{source}: field 'prefer' lists plugin {plugin!r} twice")
        seen.append(plugin)
    return tuple(seen)


def parse_registry_document(text: str, source: str) -> Registry:
    """Parse and validate registry YAML, the top-level ``prefer`` list included."""
    try:
        document = load_yaml(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source} is not valid YAML: {error}") from error
    if document is None:
        return Registry()
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping with a 'models' list, got {type(document).__name__}")
    for key, value in document.items():
        if key not in TOP_LEVEL_FIELDS:
            raise ConfigError(f"{source}: unknown top-level field {key!r}{_suggest(str(key), list(TOP_LEVEL_FIELDS))}")
        _check_type(source, key, value, TOP_LEVEL_FIELDS[key])
    prefer = _parse_prefer(source, document.get("prefer") or [])

    entries: list[RegistryEntry] = []
    claimed: dict[str, str] = {}
    for index, raw in enumerate(document.get("models") or []):
        where = f"{source}: entry {index + 1}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
        if isinstance(raw.get("name"), str):
            where = f"{source}: entry {raw['name']!r}"
        for key, value in raw.items():
            if key not in ENTRY_FIELDS:
                raise ConfigError(f"{where}: unknown field {key!r}{_suggest(str(key), list(ENTRY_FIELDS))}")
            _check_type(where, key, value, ENTRY_FIELDS[key])
        for key in REQUIRED_FIELDS:
            if key not in raw:
                raise ConfigError(f"{where}: missing required field {key!r}")
        aliases = tuple(raw.get("aliases") or ())
        for alias in aliases:
            if not isinstance(alias, str):
                raise ConfigError(f"{where}: field 'aliases' must list strings, got {alias!r}")
        for name in (raw["name"], *aliases):
            if "/" in name:
                raise ConfigError(f"{where}: name {name!r} must not contain '/'; qualified names come from plugins")
            if name in claimed:
                raise ConfigError(f"{where}: name {name!r} is already used by entry {claimed[name]!r}")
            claimed[name] = raw["name"]
        entries.append(
            RegistryEntry(
                name=raw["name"],
                plugin=raw["plugin"],
                model=raw.get("model", raw["name"]),
                package=raw.get("package"),
                description=raw.get("description", ""),
                aliases=aliases,
                training=dict(raw.get("training") or {}),
                settings=dict(raw.get("settings") or {}),
            )
        )
    return Registry(entries=entries, prefer=prefer)


def load_registry(path: Path | None = None) -> list[RegistryEntry]:
    return load_registry_document(path).entries


def load_registry_document(path: Path | None = None) -> Registry:
    path = path or default_registry_path()
    if not path.is_file():
        return Registry()
    return parse_registry_document(path.read_text(encoding="utf-8"), str(path))


class Catalog:
    """All model names: the installed plugins' models and the registry's entries.

    Without ``entries``, the entries and the ``prefer`` list come from
    registry.yaml; with ``entries``, ``prefer`` defaults to no preference.
    """

    def __init__(
        self, host: PluginHost, entries: list[RegistryEntry] | None = None, prefer: tuple[str, ...] | None = None
    ) -> None:
        self.host = host
        if entries is None:
            registry = load_registry_document()
            entries = registry.entries
            prefer = registry.prefer if prefer is None else prefer
        self.entries = entries
        self.prefer = tuple(prefer or ())
        self.by_name: dict[str, RegistryEntry] = {}
        for entry in self.entries:
            for name in (entry.name, *entry.aliases):
                self.by_name[name] = entry

    def _providers(self, model: str) -> list[str]:
        return sorted(name for name, info in self.host.plugins.items() if info.loaded and model in info.models)

    def _plain_owner(self, providers: list[str]) -> str | None:
        """Return the plugin that owns a plain name these plugins provide: the only one, or the first in ``prefer``."""
        if len(providers) == 1:
            return providers[0]
        return next((plugin for plugin in self.prefer if plugin in providers), None)

    def _all_names(self) -> list[str]:
        names = set(self.by_name)
        for plugin, info in self.host.plugins.items():
            for model in info.models:
                names.update((model, f"{plugin}/{model}"))
        return sorted(names)

    def _unavailable(self, entry: RegistryEntry) -> str | None:
        info = self.host.plugins.get(entry.plugin)
        package = entry.package or f"the package that provides plugin {entry.plugin!r}"
        if info is None:
            return f"plugin {entry.plugin!r} is not installed; install {package}"
        if not info.loaded:
            return f"plugin {entry.plugin!r} failed to load: {info.error}"
        if entry.model not in info.models:
            return f"plugin {entry.plugin!r} provides no model {entry.model!r}; upgrade {package}"
        return None

    def _resolved(self, plugin: str, model: str, entry: RegistryEntry | None = None) -> ResolvedModel:
        spec = self.host.plugins[plugin].models[model]
        # A registry entry named after the model curates that model's defaults for every name that reaches it.
        if entry is None:
            entry = next((e for e in self.entries if e.plugin == plugin and e.model == model and e.name == model), None)
        training = {**spec.training, **(entry.training if entry else {})}
        settings = {**spec.settings, **(entry.settings if entry else {})}
        description = (entry.description if entry and entry.description else spec.description)
        return ResolvedModel(plugin=plugin, model=model, description=description, training=training, settings=settings)

    def resolve(self, name: str) -> ResolvedModel:
        """Resolve a plain, qualified or alias name; raise ModelNotFoundError or PluginError."""
        if "/" in name:
            plugin, _, model = name.partition("/")
            info = self.host.plugins.get(plugin)
            if info is None:
                entry = next((e for e in self.entries if e.plugin == plugin), None)
                if entry is not None:
                    raise PluginError(f"plugin {plugin!r} is not installed; install {entry.package or plugin}")
                raise ModelNotFoundError(
                    f"unknown plugin {plugin!r} in {name!r}{_suggest(plugin, list(self.host.plugins))}; "
                    f"see `zoo plugins`"
                )
            if not info.loaded:
                raise PluginError(f"plugin {plugin!r} failed to load: {info.error}")
            if model not in info.models:
                raise ModelNotFoundError(
                    f"plugin {plugin!r} provides no model {model!r}{_suggest(model, list(info.models))}; "
                    f"see `zoo list`"
                )
            return self._resolved(plugin, model)

        entry = self.by_name.get(name)
        if entry is not None:
            problem = self._unavailable(entry)
            if problem:
                raise PluginError(f"model {name!r} is unavailable: {problem}")
            return self._resolved(entry.plugin, entry.model, entry)

        providers = self._providers(name)
        owner = self._plain_owner(providers)
        if owner is not None:
            return self._resolved(owner, name)
        if len(providers) > 1:
            choices = ", ".join(f"{plugin}/{name}" for plugin in providers)
            raise ModelNotFoundError(
                f"model name {name!r} is provided by several plugins; use a qualified name: {choices}"
            )
        raise ModelNotFoundError(f"unknown model {name!r}{_suggest(name, self._all_names())}; see `zoo list`")

    def rows(self) -> list[CatalogRow]:
        """List every model for ``zoo list``: registry entries first, then the rest of each plugin's models."""
        rows: list[CatalogRow] = []
        covered: set[tuple[str, str]] = set()
        for entry in self.entries:
            problem = self._unavailable(entry)
            rows.append(
                CatalogRow(
                    name=entry.name,
                    qualified=f"{entry.plugin}/{entry.model}",
                    plugin=entry.plugin,
                    available=problem is None,
                    description=entry.description or self._description(entry),
                    aliases=entry.aliases,
                    note=problem or "",
                )
            )
            covered.add((entry.plugin, entry.model))
        for plugin, info in sorted(self.host.plugins.items()):
            for model, spec in sorted(info.models.items()):
                if (plugin, model) in covered:
                    continue
                owns_plain_name = model not in self.by_name and self._plain_owner(self._providers(model)) == plugin
                rows.append(
                    CatalogRow(
                        name=model if owns_plain_name else f"{plugin}/{model}",
                        qualified=f"{plugin}/{model}",
                        plugin=plugin,
                        available=True,
                        description=spec.description,
                    )
                )
        return rows

    def _description(self, entry: RegistryEntry) -> str:
        info = self.host.plugins.get(entry.plugin)
        if info and entry.model in info.models:
            return info.models[entry.model].description
        return ""
