"""The plugin module the `fspipeline` entry point names: it registers the `qt` source."""

from __future__ import annotations

from pipeline import hookimpl

from fspipeline_qt.source import QtSource


@hookimpl
def pipeline_components() -> list[type[QtSource]]:
    return [QtSource]
