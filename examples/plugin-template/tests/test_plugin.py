"""The installed distribution exposes the sink under the `fspipeline` entry-point group."""

from __future__ import annotations

import importlib.metadata

from pipeline import ComponentKind

from fspipeline_csvstats import CsvStatsSink


def test_entry_point_registers_the_sink() -> None:
    (entry_point,) = importlib.metadata.entry_points(group="fspipeline", name="csvstats")
    assert entry_point.dist is not None
    assert entry_point.dist.name == "fspipeline-csvstats"
    plugin = entry_point.load()
    assert plugin.pipeline_components() == [CsvStatsSink]


def test_component_declares_what_fspipeline_needs() -> None:
    assert CsvStatsSink.kind is ComponentKind.SINK
    assert CsvStatsSink.type_name == "csvstats"
    assert CsvStatsSink.summary().startswith("Counts the data rows and columns")
    assert "report" in CsvStatsSink.Options.model_fields
