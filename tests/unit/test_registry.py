"""The plugin manager and component index (pipeline/registry.py)."""

from __future__ import annotations

import importlib.metadata
import re
from typing import Any

import pytest
from pydantic import BaseModel

import pipeline
from pipeline import ComponentKind, ComponentOptions, Event, PluginError, Sink, Source
from pipeline.registry import BUILTIN_PLUGINS, DISABLE_AUTOLOAD_ENV, build_registry

# -- small plugins -------------------------------------------------------------------------


class MemoryOptions(ComponentOptions):
    capacity: int = 10
    """How many events to keep."""


class MemorySink(Sink[MemoryOptions]):
    """Keeps events in a list."""

    type_name = "memory"
    Options = MemoryOptions

    async def send(self, event: Event) -> None:
        pass


class ProvidesComponents:
    """A plugin object whose `pipeline_components` returns the given classes."""

    def __init__(self, *classes: Any) -> None:
        self.classes = list(classes)

    @pipeline.hookimpl
    def pipeline_components(self) -> list[Any]:
        return self.classes


def sink_class(type_name: Any = "memory", options: Any = MemoryOptions, **extra: Any) -> type:
    namespace: dict[str, Any] = {
        "__doc__": "A sink for tests.",
        "type_name": type_name,
        "Options": options,
        "send": MemorySink.send,
        **extra,
    }
    return type("TestSink", (Sink,), namespace)


class FakeEntryPoint:
    def __init__(self, name: str, plugin: object, group: str = "fspipeline") -> None:
        self.name = name
        self.group = group
        self.value = f"fake_module:{name}"
        self._plugin = plugin

    def load(self) -> object:
        if isinstance(self._plugin, Exception):
            raise self._plugin
        return self._plugin


class FakeDistribution:
    def __init__(self, name: str, version: str, *entry_points: FakeEntryPoint) -> None:
        self.metadata = {"Name": name}
        self.version = version
        self.entry_points = list(entry_points)


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[FakeDistribution]:
    """The distributions `importlib.metadata` reports; tests append fakes to it."""
    dists: list[FakeDistribution] = []
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: iter(dists))
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    return dists


# -- built-ins -------------------------------------------------------------------------------


def test_builtins_are_registered_from_the_core_distribution() -> None:
    registry = build_registry(autoload=False)
    specs = list(registry)

    found = {(s.kind, s.type_name) for s in specs}
    assert {
        (ComponentKind.SOURCE, "inotify"),
        (ComponentKind.STAGE, "filter"),
        (ComponentKind.STAGE, "debounce"),
        (ComponentKind.SINK, "console"),
        (ComponentKind.SINK, "logfile"),
    } <= found
    for spec in specs:
        assert spec.distribution.startswith("fspipeline"), spec
        assert spec.plugin in BUILTIN_PLUGINS
        assert spec.kind is spec.cls.kind
        assert spec.summary, f"{spec.type_name} has no one-line summary"
        assert issubclass(spec.options_model, ComponentOptions)


def test_builtin_modules_are_registered_under_their_module_names() -> None:
    manager = build_registry(autoload=False).manager
    for name in BUILTIN_PLUGINS:
        assert manager.get_plugin(name) is not None, name


def test_lookups_by_kind_and_name() -> None:
    registry = build_registry(autoload=False)
    console = registry.get(ComponentKind.SINK, "console")
    assert console is not None
    assert console.type_name == "console"
    assert registry.get(ComponentKind.SOURCE, "console") is None
    assert registry.get(ComponentKind.SINK, "nope") is None
    assert [s.kind for s in registry.find("console")] == [ComponentKind.SINK]
    assert registry.find("nope") == []
    names = registry.names(ComponentKind.STAGE)
    assert names == sorted(names)
    assert {"filter", "debounce"} <= set(names)


def test_iteration_is_sources_then_stages_then_sinks() -> None:
    kinds = [s.kind for s in build_registry(autoload=False)]
    order = list(ComponentKind)
    assert kinds == sorted(kinds, key=order.index)


# -- plugins given in-process ---------------------------------------------------------------


def test_an_extra_plugin_adds_its_component() -> None:
    registry = build_registry(
        extra_plugins=[("mine", ProvidesComponents(MemorySink))], autoload=False
    )
    spec = registry.get(ComponentKind.SINK, "memory")
    assert spec is not None
    assert spec.cls is MemorySink
    assert spec.plugin == "mine"
    assert spec.summary == "Keeps events in a list."
    assert spec.options_model is MemoryOptions


def test_each_registry_is_fresh() -> None:
    with_plugin = build_registry(
        extra_plugins=[("mine", ProvidesComponents(MemorySink))], autoload=False
    )
    without = build_registry(autoload=False)
    assert with_plugin.get(ComponentKind.SINK, "memory") is not None
    assert without.get(ComponentKind.SINK, "memory") is None
    assert with_plugin.manager is not without.manager


def test_a_plugin_may_register_nothing() -> None:
    registry = build_registry(extra_plugins=[("empty", ProvidesComponents())], autoload=False)
    assert len(list(registry)) == len(list(build_registry(autoload=False)))


def test_a_type_already_used_by_a_builtin_names_both_plugins() -> None:
    clash = sink_class("console")
    with pytest.raises(PluginError) as caught:
        build_registry(extra_plugins=[("mine", ProvidesComponents(clash))], autoload=False)
    message = str(caught.value)
    assert "'console'" in message
    assert "'mine'" in message
    assert "pipeline.sinks.console" in message
    assert "fspipeline" in message


def test_two_plugins_with_the_same_type_name_both_named() -> None:
    with pytest.raises(PluginError) as caught:
        build_registry(
            extra_plugins=[
                ("first", ProvidesComponents(sink_class("slack"))),
                ("second", ProvidesComponents(sink_class("slack"))),
            ],
            autoload=False,
        )
    message = str(caught.value)
    assert "'slack'" in message
    assert "'first'" in message
    assert "'second'" in message


def test_one_name_may_be_used_by_different_kinds() -> None:
    class MemorySource(Source[MemoryOptions]):
        """Replays remembered events."""

        type_name = "memory"
        Options = MemoryOptions

        async def run(self, emit: Any) -> None:
            pass

    registry = build_registry(
        extra_plugins=[("mine", ProvidesComponents(MemorySink, MemorySource))], autoload=False
    )
    assert {s.kind for s in registry.find("memory")} == {ComponentKind.SINK, ComponentKind.SOURCE}


class NotAComponentOptions(BaseModel):
    x: int = 1


@pytest.mark.parametrize(
    ("component", "words"),
    [
        pytest.param(sink_class(type_name=None), "type_name", id="no-type-name"),
        pytest.param(sink_class(type_name=""), "type_name", id="empty-type-name"),
        pytest.param(sink_class(type_name="My Sink"), "type_name", id="type-name-with-space"),
        pytest.param(sink_class(type_name=3), "type_name", id="type-name-number"),
        pytest.param(sink_class(options=None), "Options", id="no-options"),
        pytest.param(sink_class(options=NotAComponentOptions), "Options", id="plain-model"),
        pytest.param(sink_class(options=dict), "Options", id="options-dict"),
        pytest.param(object.__new__(MemorySink), "not a component", id="instance"),
        pytest.param("memory", "not a component", id="string"),
        pytest.param(MemoryOptions, "not a component", id="options-class"),
        pytest.param(
            type("Bare", (pipeline.Component,), {"type_name": "bare", "Options": MemoryOptions}),
            "Source, Stage or Sink",
            id="bare-component",
        ),
    ],
)
def test_a_bad_component_is_a_plugin_error_naming_the_plugin(component: Any, words: str) -> None:
    with pytest.raises(PluginError) as caught:
        build_registry(extra_plugins=[("broken", ProvidesComponents(component))], autoload=False)
    assert "'broken'" in str(caught.value)
    assert words in str(caught.value)


def test_a_hook_that_raises_is_a_plugin_error_naming_the_plugin() -> None:
    class Exploding:
        @pipeline.hookimpl
        def pipeline_components(self) -> list[Any]:
            raise RuntimeError("boom")

    with pytest.raises(PluginError, match=r"'exploding'.*RuntimeError: boom"):
        build_registry(extra_plugins=[("exploding", Exploding())], autoload=False)


def test_a_hook_that_returns_a_class_instead_of_a_list_is_a_plugin_error() -> None:
    class Careless:
        @pipeline.hookimpl
        def pipeline_components(self) -> Any:
            return MemorySink

    with pytest.raises(PluginError, match="'careless'"):
        build_registry(extra_plugins=[("careless", Careless())], autoload=False)


def test_an_unknown_hook_name_is_a_plugin_error() -> None:
    class Typo:
        @pipeline.hookimpl
        def pipeline_componentz(self) -> list[Any]:
            return [MemorySink]

    with pytest.raises(PluginError) as caught:
        build_registry(extra_plugins=[("typo", Typo())], autoload=False)
    assert "pipeline_componentz" in str(caught.value)


def test_a_hook_asking_for_an_unknown_argument_is_a_plugin_error() -> None:
    class WrongArgs:
        @pipeline.hookimpl
        def pipeline_startup(self, pipelinez: list[str]) -> None:
            pass

    with pytest.raises(PluginError) as caught:
        build_registry(extra_plugins=[("wrongargs", WrongArgs())], autoload=False)
    assert "pipelinez" in str(caught.value)


def test_lifecycle_hooks_alone_are_fine() -> None:
    class Observer:
        @pipeline.hookimpl
        def pipeline_shutdown(self, clean: bool) -> None:
            pass

    registry = build_registry(extra_plugins=[("observer", Observer())], autoload=False)
    assert registry.manager.get_plugin("observer") is not None


def test_methods_without_the_prefix_are_ignored() -> None:
    class Helper(ProvidesComponents):
        def components(self) -> list[Any]:  # not a hook: no prefix, no marker
            return []

    registry = build_registry(extra_plugins=[("helper", Helper(MemorySink))], autoload=False)
    assert registry.get(ComponentKind.SINK, "memory") is not None


# -- entry points ------------------------------------------------------------------------------


def test_entry_point_plugins_are_loaded_with_their_distribution(
    installed: list[FakeDistribution],
) -> None:
    installed.append(
        FakeDistribution(
            "fspipeline-memory", "1.2.3", FakeEntryPoint("memory", ProvidesComponents(MemorySink))
        )
    )
    spec = build_registry().get(ComponentKind.SINK, "memory")
    assert spec is not None
    assert spec.distribution == "fspipeline-memory 1.2.3"
    assert spec.plugin == "memory"


def test_entry_points_of_other_groups_are_ignored(installed: list[FakeDistribution]) -> None:
    installed.append(
        FakeDistribution(
            "something-else",
            "1.0",
            FakeEntryPoint("memory", ProvidesComponents(MemorySink), group="console_scripts"),
        )
    )
    assert build_registry().get(ComponentKind.SINK, "memory") is None


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_the_env_var_disables_autoload(
    installed: list[FakeDistribution], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    installed.append(
        FakeDistribution(
            "fspipeline-memory", "1.2.3", FakeEntryPoint("memory", ProvidesComponents(MemorySink))
        )
    )
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, value)
    registry = build_registry()
    assert registry.get(ComponentKind.SINK, "memory") is None
    assert registry.get(ComponentKind.SINK, "console") is not None  # built-ins still there


def test_autoload_false_wins_over_an_unset_env_var(installed: list[FakeDistribution]) -> None:
    installed.append(
        FakeDistribution(
            "fspipeline-memory", "1.2.3", FakeEntryPoint("memory", ProvidesComponents(MemorySink))
        )
    )
    assert build_registry(autoload=False).get(ComponentKind.SINK, "memory") is None


def test_an_entry_point_clashing_with_a_builtin_names_both_distributions(
    installed: list[FakeDistribution],
) -> None:
    installed.append(
        FakeDistribution(
            "fspipeline-console2",
            "0.9",
            FakeEntryPoint("console2", ProvidesComponents(sink_class("console"))),
        )
    )
    with pytest.raises(PluginError) as caught:
        build_registry()
    message = str(caught.value)
    assert "fspipeline-console2 0.9" in message
    assert re.search(r"fspipeline \d", message)  # the core distribution, with its version


def test_a_plugin_that_fails_to_import_says_how_to_get_going(
    installed: list[FakeDistribution],
) -> None:
    installed.append(
        FakeDistribution(
            "fspipeline-broken", "0.1", FakeEntryPoint("broken", ImportError("no module named x"))
        )
    )
    with pytest.raises(PluginError) as caught:
        build_registry()
    message = str(caught.value)
    assert "fspipeline-broken" in message
    assert "no module named x" in message
    assert DISABLE_AUTOLOAD_ENV in message


def test_an_entry_point_with_an_unknown_hook_is_a_plugin_error(
    installed: list[FakeDistribution],
) -> None:
    class Typo:
        @pipeline.hookimpl
        def pipeline_componentz(self) -> list[Any]:
            return []

    installed.append(FakeDistribution("fspipeline-typo", "0.1", FakeEntryPoint("typo", Typo())))
    with pytest.raises(PluginError, match="pipeline_componentz"):
        build_registry()


def test_an_entry_point_with_a_bad_hook_signature_names_its_distribution(
    installed: list[FakeDistribution],
) -> None:
    class WrongArgs:
        @pipeline.hookimpl
        def pipeline_shutdown(self, cleanly: bool) -> None:
            pass

    installed.append(
        FakeDistribution("fspipeline-wrongargs", "0.1", FakeEntryPoint("wrongargs", WrongArgs()))
    )
    with pytest.raises(PluginError) as caught:
        build_registry()
    assert "fspipeline-wrongargs 0.1" in str(caught.value)
    assert "cleanly" in str(caught.value)


def test_a_command_can_narrow_the_built_in_modules_it_loads() -> None:
    registry = build_registry(autoload=False, builtins=["pipeline.sinks.console"])
    assert [(s.kind.value, s.type_name) for s in registry] == [("sink", "console")]
