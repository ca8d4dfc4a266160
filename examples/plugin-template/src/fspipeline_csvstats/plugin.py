"""The plugin module the `fspipeline` entry point names: it registers the components."""

from __future__ import annotations

from pipeline import hookimpl

from fspipeline_csvstats.sink import CsvStatsSink


@hookimpl
def pipeline_components() -> list[type[CsvStatsSink]]:
    return [CsvStatsSink]
