"""The hooks a plugin may implement: the public API third-party packages build on.

A plugin is any module or object with functions marked ``@pipeline.hookimpl`` whose names
are the hooks below. A distribution exposes it under the ``fspipeline`` entry-point group::

    [project.entry-points.fspipeline]
    mysink = "fspipeline_mysink.plugin"

Hooks are called with keyword arguments; an implementation may accept any subset of a
hook's parameters, in any order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pipeline.components import Component
    from pipeline.event import Event

PROJECT_NAME = "fspipeline"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# -------------------------------------------------------------------------
# Registration
# -------------------------------------------------------------------------


@hookspec
def pipeline_components() -> Iterable[type[Component[Any]]]:
    """Return the component classes (sources, stages, sinks) this plugin provides.

    Called once when the registry is built. Each class subclasses ``pipeline.Source``,
    ``pipeline.Stage`` or ``pipeline.Sink`` and sets ``type_name`` (the ``type:`` used in
    YAML) and ``Options`` (a ``pipeline.ComponentOptions`` model). Two plugins that return
    the same ``type_name`` for the same kind make start-up fail with both distributions named.

    :return: an iterable of component classes; an empty one is fine.

    Example::

        @hookimpl
        def pipeline_components():
            return [SlackSink]
    """
    return ()  # hookspec bodies are never run


# -------------------------------------------------------------------------
# Lifecycle
# -------------------------------------------------------------------------


@hookspec
def pipeline_startup(pipelines: Sequence[str], config: Mapping[str, Any]) -> None:
    """Called once every component of every pipeline has opened, before events flow.

    :param pipelines: the names of the pipelines that are starting.
    :param config: the validated configuration as plain data (options after ``${VAR}``
        expansion; do not log it, it may hold secrets).

    Example::

        @hookimpl
        def pipeline_startup(pipelines):
            metrics.gauge("pipelines", len(pipelines))
    """


@hookspec
def pipeline_shutdown(pipelines: Sequence[str], clean: bool) -> None:
    """Called once after the pipelines stopped and every component closed.

    :param pipelines: the names of the pipelines that ran.
    :param clean: True when every queue drained within the shutdown deadline.

    Example::

        @hookimpl
        def pipeline_shutdown(clean):
            if not clean:
                alert("fspipeline stopped with undelivered events")
    """


# -------------------------------------------------------------------------
# Events
# -------------------------------------------------------------------------


@hookspec
def pipeline_event_dead_lettered(event: Event, component: str, reason: str) -> None:
    """Called when an event is given up on: a stage raised on it, or a sink failed to
    deliver it after its retries, or it was still queued when the shutdown deadline passed.

    The event has already been written to the dead-letter destination; this hook only
    observes. It must not raise (an exception here is logged and ignored).

    :param event: the event that was not delivered.
    :param component: the dotted config path of the component, e.g. ``landing.sinks[0]``.
    :param reason: a one-line reason, e.g. ``ConnectionError: refused (after 3 attempts)``.

    Example::

        @hookimpl
        def pipeline_event_dead_lettered(event, reason):
            pager.notify(f"{event.path}: {reason}")
    """
