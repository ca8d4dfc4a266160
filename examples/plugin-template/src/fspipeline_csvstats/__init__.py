"""fspipeline-csvstats: a sink that reports the row and column counts of each CSV file.

The package doubles as the template for third-party fspipeline plugins: `plugin.py` is
what the `fspipeline` entry point names, `sink.py` the component, `stats.py` the work.
"""

from __future__ import annotations

from fspipeline_csvstats.sink import CsvStatsOptions, CsvStatsSink
from fspipeline_csvstats.stats import CsvStats, count_csv

__all__ = ["CsvStats", "CsvStatsOptions", "CsvStatsSink", "count_csv"]
