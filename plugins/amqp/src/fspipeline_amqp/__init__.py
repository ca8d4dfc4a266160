"""fspipeline-amqp: RabbitMQ (AMQP 0-9-1) for fspipeline.

The `amqp` sink publishes events with publisher confirms; the `amqp` source consumes a
queue and acks each message only once the pipeline delivered its event.
"""

from __future__ import annotations

from fspipeline_amqp.errors import BrokerError
from fspipeline_amqp.options import BindingSpec, ExchangeSpec, QueueSpec, Topology
from fspipeline_amqp.sink import AmqpSink, AmqpSinkOptions
from fspipeline_amqp.source import AmqpSource, AmqpSourceOptions

__all__ = [
    "AmqpSink",
    "AmqpSinkOptions",
    "AmqpSource",
    "AmqpSourceOptions",
    "BindingSpec",
    "BrokerError",
    "ExchangeSpec",
    "QueueSpec",
    "Topology",
]
