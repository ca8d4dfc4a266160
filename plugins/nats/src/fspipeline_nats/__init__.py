"""fspipeline-nats: NATS JetStream as a sink (de-duplicated, acknowledged publishes) and as
a source (a durable pull consumer that acks only after the pipeline delivered).

`plugin.py` is what the `fspipeline` entry point names; `sink.py` and `source.py` are the
components; `link.py` keeps a connection alive, `acks.py` answers the server for each
message, `streams.py` finds and creates streams, `subjects.py` renders subject templates.
"""

from __future__ import annotations

from fspipeline_nats.sink import NatsSink, NatsSinkOptions
from fspipeline_nats.source import NatsSource, NatsSourceOptions

__all__ = ["NatsSink", "NatsSinkOptions", "NatsSource", "NatsSourceOptions"]
