"""Plugin discovery through entry points, and calls into one plugin's hooks.

Every plugin, the built-in ones included, is found through the ``zoo.plugins``
entry point group; the core never imports a plugin by name. A plugin that
fails to import, declares an incompatible contract, or raises while listing
its models is kept as a load error and reported by name, and the other
plugins keep working.
"""

from __future__ import annotations

import importlib.metadata as metadata
from dataclasses import dataclass, field
from typing import Any

import pluggy

from zoo_core import hookspecs
from zoo_core.errors import PluginError, ZooError
from zoo_core.hookspecs import CONTRACT_VERSION, ENTRY_POINT_GROUP, ModelSpec

CONTRACT_ATTRIBUTE = "ZOO_CONTRACT_VERSION"


@dataclass
class PluginInfo:
    """A discovered plugin: loaded, or with the error that stopped it."""

    name: str
    package: str | None
    version: str | None
    entry_point: str
    contract: str | None = None
    models: dict[str, ModelSpec] = field(default_factory=dict)
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    plugin: Any = None

    @property
    def loaded(self) -> bool:
        return self.error is None


def parse_version(text: Any) -> tuple[int, int] | None:
    """Parse "MAJOR.MINOR" into a tuple, or return None if it is not one."""
    if not isinstance(text, str):
        return None
    parts = text.split(".")
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return None
    return int(parts[0]), int(parts[1])


def check_contract(name: str, declared: Any) -> str | None:
    """Return an error message if ``declared`` is not compatible with the core's contract."""
    core_major, core_minor = parse_version(CONTRACT_VERSION)
    if declared is None:
        return (
            f"plugin {name!r} declares no {CONTRACT_ATTRIBUTE}; "
            f"set {CONTRACT_ATTRIBUTE} = {CONTRACT_VERSION!r} in the plugin module"
        )
    version = parse_version(declared)
    if version is None:
        return f"plugin {name!r} declares {CONTRACT_ATTRIBUTE} = {declared!r}, which is not of the form 'MAJOR.MINOR'"
    major, minor = version
    if major != core_major or minor > core_minor:
        return (
            f"plugin {name!r} is built for contract {declared}, but this zoo implements contract "
            f"{CONTRACT_VERSION}; install a release of the plugin built for {core_major}.x, "
            f"or a zoo release that implements {declared}"
        )
    return None


class PluginHost:
    """Discovers plugins and calls the hooks of one plugin at a time."""

    def __init__(self, group: str = ENTRY_POINT_GROUP) -> None:
        self.group = group
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs.ZooHookSpecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._discover()

    def _discover(self) -> None:
        seen: set[tuple[str, str]] = set()
        for entry_point in metadata.entry_points(group=self.group):
            # An editable install next to a regular one can list the same entry point twice.
            if (entry_point.name, entry_point.value) in seen:
                continue
            seen.add((entry_point.name, entry_point.value))
            info = PluginInfo(
                name=entry_point.name,
                package=entry_point.dist.name if entry_point.dist else None,
                version=entry_point.dist.version if entry_point.dist else None,
                entry_point=entry_point.value,
            )
            if entry_point.name in self.plugins:
                other = self.plugins[entry_point.name]
                info.error = (
                    f"plugin name {entry_point.name!r} is already used by package {other.package!r}; "
                    f"uninstall one of the two packages"
                )
                self.plugins[f"{entry_point.name} ({info.package})"] = info
                continue
            self.plugins[info.name] = info
            self._load(info, entry_point)

    def _load(self, info: PluginInfo, entry_point: metadata.EntryPoint) -> None:
        try:
            plugin = entry_point.load()
        except Exception as error:  # a broken plugin must not stop the others
            info.error = f"failed to import {entry_point.value!r}: {type(error).__name__}: {error}"
            return

        info.contract = getattr(plugin, CONTRACT_ATTRIBUTE, None)
        contract_error = check_contract(info.name, info.contract)
        if contract_error:
            info.error = contract_error
            return

        try:
            self.manager.register(plugin, name=info.name)
        except Exception as error:  # pluggy's validation errors name the bad hook
            info.error = f"invalid hooks: {type(error).__name__}: {error}"
            return
        info.plugin = plugin
        info.hooks = sorted(
            hook.name for hook in self.manager.get_hookcallers(plugin) or [] if hook.name.startswith("zoo_")
        )

        try:
            specs = self._caller(info, "zoo_models")()
            info.models = self._collect_models(info, specs)
        except Exception as error:
            self.manager.unregister(plugin)
            info.plugin = None
            info.error = f"zoo_models failed: {type(error).__name__}: {error}"

    def _collect_models(self, info: PluginInfo, results: list[Any]) -> dict[str, ModelSpec]:
        models: dict[str, ModelSpec] = {}
        for result in results:
            if not isinstance(result, (list, tuple)):
                raise PluginError(f"zoo_models returned {type(result).__name__}, expected a list of ModelSpec")
            for spec in result:
                if not isinstance(spec, ModelSpec):
                    raise PluginError(f"zoo_models returned an item of type {type(spec).__name__}, expected ModelSpec")
                if "/" in spec.name or not spec.name:
                    raise PluginError(f"model name {spec.name!r} is invalid: it must be non-empty and contain no '/'")
                models[spec.name] = spec
        return models

    def _caller(self, info: PluginInfo, hook: str):
        others = [plugin for plugin in self.manager.get_plugins() if plugin is not info.plugin]
        return self.manager.subset_hook_caller(hook, remove_plugins=others)

    def get(self, name: str) -> PluginInfo:
        """Return a loaded plugin by name; raise PluginError if it is missing or broken."""
        info = self.plugins.get(name)
        if info is None:
            known = ", ".join(sorted(self.plugins)) or "none"
            raise PluginError(f"plugin {name!r} is not installed (installed plugins: {known}); see `zoo plugins`")
        if not info.loaded:
            raise PluginError(f"plugin {name!r} is not usable: {info.error}")
        return info

    def call(self, plugin: str, hook: str, expected: type | tuple[type, ...] | None = None, **kwargs: Any) -> Any:
        """Call ``hook`` on one plugin and check the type of its result.

        A ZooError raised by the plugin passes through unchanged, because it
        already names the value to fix. Any other exception becomes a
        PluginError naming the plugin and the hook, chained to the original.
        """
        info = self.get(plugin)
        if hook not in info.hooks:
            raise PluginError(f"plugin {plugin!r} does not implement {hook}")
        try:
            result = self._caller(info, hook)(**kwargs)
        except ZooError:
            raise
        except Exception as error:
            raise PluginError(f"plugin {plugin!r} failed in {hook}: {type(error).__name__}: {error}") from error
        if expected is not None and not isinstance(result, expected):
            names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
            raise PluginError(f"plugin {plugin!r} returned {type(result).__name__} from {hook}, expected {names}")
        return result
