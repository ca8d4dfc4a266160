"""Builds the plugin manager: built-ins, then entry points, then the component index."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

import pluggy
import structlog

from pipeline import hookspecs
from pipeline.components import Component, ComponentKind
from pipeline.errors import PluginError
from pipeline.options import ComponentOptions

ENTRY_POINT_GROUP = "fspipeline"
DISABLE_AUTOLOAD_ENV = "FSPIPELINE_DISABLE_PLUGIN_AUTOLOAD"
TRACE_ENV = "FSPIPELINE_TRACE_PLUGINS"

BUILTIN_PLUGINS: tuple[str, ...] = (
    "pipeline.sources.inotify",
    "pipeline.sources.fanotify",
    "pipeline.sources.poll",
    "pipeline.sources.watchdog_observer",
    "pipeline.sources.windows",
    "pipeline.sources.usn",
    "pipeline.stages.filter",
    "pipeline.stages.debounce",
    "pipeline.stages.ready",
    "pipeline.stages.transform",
    "pipeline.sinks.console",
    "pipeline.sinks.logfile",
    "pipeline.sinks.command",
    "pipeline.sinks.webhook",
)

_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
log = structlog.get_logger("pipeline.registry")


@dataclasses.dataclass(frozen=True)
class ComponentSpec:
    """One registered component type and where it came from."""

    kind: ComponentKind
    type_name: str
    cls: type[Component[Any]]
    distribution: str
    plugin: str

    @property
    def options_model(self) -> type[ComponentOptions]:
        return self.cls.Options

    @property
    def summary(self) -> str:
        return self.cls.summary()


class Registry:
    """The loaded plugins and the components they registered, by kind and type name."""

    def __init__(self, manager: pluggy.PluginManager, specs: Iterable[ComponentSpec]) -> None:
        self.manager = manager
        self._specs: dict[tuple[ComponentKind, str], ComponentSpec] = {}
        for spec in specs:
            self._specs[(spec.kind, spec.type_name)] = spec

    def get(self, kind: ComponentKind, type_name: str) -> ComponentSpec | None:
        return self._specs.get((kind, type_name))

    def names(self, kind: ComponentKind) -> list[str]:
        return sorted(name for k, name in self._specs if k is kind)

    def find(self, type_name: str) -> list[ComponentSpec]:
        """Every component called `type_name`, whatever its kind."""
        return [spec for (_, name), spec in self._specs.items() if name == type_name]

    def __iter__(self) -> Iterator[ComponentSpec]:
        order = list(ComponentKind)
        return iter(sorted(self._specs.values(), key=lambda s: (order.index(s.kind), s.type_name)))


def _builtin_distribution() -> str:
    try:
        return f"fspipeline {importlib.metadata.version('fspipeline')}"
    except importlib.metadata.PackageNotFoundError:
        return "fspipeline (not installed)"


def _load_entry_points(manager: pluggy.PluginManager, origins: dict[str, str]) -> None:
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or "?"
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or manager.get_plugin(ep.name) is not None:
                continue
            label = f"{name} {dist.version}"
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {ep.name!r} of distribution {label} failed to import "
                    f"({ep.value}): {type(exc).__name__}: {exc}. Fix or uninstall it "
                    f"(pip uninstall {name}), or set {DISABLE_AUTOLOAD_ENV}=1 to skip plugins."
                ) from exc
            if manager.is_registered(plugin):
                continue
            _register(manager, plugin, ep.name, label)
            origins[ep.name] = label


def _register(manager: pluggy.PluginManager, plugin: object, name: str, label: str) -> None:
    try:
        manager.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name!r} of {label} has an invalid hook: {exc}") from exc


def _check_component(cls: Any, plugin: str, distribution: str) -> ComponentKind:
    where = f"plugin {plugin!r} ({distribution})"
    if not (isinstance(cls, type) and issubclass(cls, Component)):
        raise PluginError(f"{where} returned {cls!r} from pipeline_components, not a component")
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, ComponentKind):
        raise PluginError(f"{where}: {cls.__name__} must subclass Source, Stage or Sink")
    type_name = getattr(cls, "type_name", None)
    if not isinstance(type_name, str) or not _TYPE_NAME.match(type_name):
        raise PluginError(
            f"{where}: {cls.__name__}.type_name must be a lower-case name like 'my_sink', "
            f"got {type_name!r}"
        )
    options = getattr(cls, "Options", None)
    if not (isinstance(options, type) and issubclass(options, ComponentOptions)):
        raise PluginError(
            f"{where}: {cls.__name__}.Options must subclass pipeline.ComponentOptions"
        )
    return kind


def build_registry(
    extra_plugins: Iterable[tuple[str, object]] = (),
    autoload: bool | None = None,
    builtins: Iterable[str] | None = None,
) -> Registry:
    """Create a fresh plugin manager and component index.

    Built-in plugin modules are registered first, then `extra_plugins` (name, plugin) pairs
    (tests), then every installed distribution's `fspipeline` entry points unless
    FSPIPELINE_DISABLE_PLUGIN_AUTOLOAD is set or `autoload` is False.
    `builtins` narrows the built-in modules to those named (a command that needs only a
    few components starts faster); None registers every one.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    builtin = _builtin_distribution()
    origins: dict[str, str] = {}
    for module_name in BUILTIN_PLUGINS if builtins is None else builtins:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise PluginError(
                f"built-in plugin {module_name} failed to import: {exc}. The installation of "
                f"{builtin} is broken; reinstall it (pip install --force-reinstall fspipeline)."
            ) from exc
        manager.register(module, name=module_name)
        origins[module_name] = builtin
    for name, plugin in extra_plugins:
        _register(manager, plugin, name, "(registered in-process)")
        origins[name] = "(registered in-process)"
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if autoload:
        _load_entry_points(manager, origins)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"plugin {exc.plugin!r} has an unknown hook: {exc}. Hook names are listed in "
            "pipeline/hookspecs.py."
        ) from exc
    if os.environ.get(TRACE_ENV):
        manager.trace.root.setwriter(lambda message: log.debug("hook", trace=message.rstrip()))
        manager.enable_tracing()
    return Registry(manager, _collect_specs(manager, origins))


def _collect_specs(manager: pluggy.PluginManager, origins: dict[str, str]) -> list[ComponentSpec]:
    found: dict[tuple[ComponentKind, str], ComponentSpec] = {}
    for impl in reversed(manager.hook.pipeline_components.get_hookimpls()):
        plugin = impl.plugin_name
        distribution = origins.get(plugin, "(unknown distribution)")
        try:
            returned: Any = impl.function()
            classes: list[Any] = list(returned or ())
        except Exception as exc:
            raise PluginError(
                f"plugin {plugin!r} ({distribution}) failed in pipeline_components: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for cls in classes:
            kind = _check_component(cls, plugin, distribution)
            spec = ComponentSpec(kind, cls.type_name, cls, distribution, plugin)
            clash = found.get((kind, spec.type_name))
            if clash is not None:
                raise PluginError(
                    f"{kind.value} type {spec.type_name!r} is registered twice: by "
                    f"{clash.distribution} (plugin {clash.plugin!r}) and by {distribution} "
                    f"(plugin {plugin!r}). Uninstall one of them."
                )
            found[(kind, spec.type_name)] = spec
    return list(found.values())
