"""Options the amqp sink and source share: the broker URL and the topology to declare."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pipeline import ComponentOptions, Duration, TemplateError, bind_constants, compile_template
from pydantic import AfterValidator, Field, WithJsonSchema

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"


def with_pipeline(text: str, pipeline: str) -> str:
    """`text` with `{pipeline}` filled in (the event placeholders are filled per event)."""
    return bind_constants(text, {"pipeline": pipeline})


def validate_name_template(text: str) -> str:
    try:
        compile_template(with_pipeline(text, "pipeline"))
    except TemplateError as exc:
        raise ValueError(f"{exc}; {{pipeline}} works here too") from None
    return text


NameTemplate = Annotated[
    str,
    AfterValidator(validate_name_template),
    WithJsonSchema({"type": "string", "format": "fspipeline-template", "examples": ["fs.{kind}"]}),
]
"""An exchange or routing-key template: the event placeholders plus `{pipeline}`."""


class ExchangeSpec(ComponentOptions):
    """An exchange to declare."""

    name: str = Field(min_length=1, max_length=255)
    """Exchange name."""
    type: Literal["topic", "direct", "fanout", "headers"] = "topic"
    """Exchange type. `topic` routes on patterns of the routing key (`fs.*`, `fs.#`)."""
    durable: bool = True
    """Survives a broker restart."""
    auto_delete: bool = False
    """Deleted by the broker once its last binding is removed."""
    arguments: dict[str, Any] = Field(default_factory=dict)
    """Extra `x-` arguments, e.g. `{alternate-exchange: unrouted}`."""


class BindingSpec(ComponentOptions):
    """A binding of a declared queue to an exchange."""

    exchange: str = Field(min_length=1, max_length=255)
    """Exchange the queue receives from (declared here or already on the broker)."""
    routing_key: str = Field(default="#", max_length=255)
    """Binding key; on a topic exchange `*` is one word, `#` any number of words."""


class QueueSpec(ComponentOptions):
    """A queue to declare, with its dead-letter exchange and bindings."""

    name: str = Field(min_length=1, max_length=255)
    """Queue name."""
    durable: bool = True
    """Survives a broker restart (with persistent messages, so do its messages)."""
    dead_letter_exchange: str | None = None
    """Exchange that rejected messages (a failed event of the amqp source) are sent to
    (`x-dead-letter-exchange`). Without one, a rejected message is dropped by the broker."""
    dead_letter_routing_key: str | None = None
    """Routing key for dead-lettered messages (`x-dead-letter-routing-key`); default: their own."""
    arguments: dict[str, Any] = Field(default_factory=dict)
    """Extra `x-` arguments, e.g. `{x-queue-type: quorum}` or `{x-max-length: 100000}`."""
    bindings: list[BindingSpec] = Field(default_factory=list)
    """Exchanges (and binding keys) this queue receives from."""

    def queue_arguments(self) -> dict[str, Any]:
        """The `x-` arguments of the declaration, dead-letter settings included."""
        arguments = dict(self.arguments)
        if self.dead_letter_exchange is not None:
            arguments["x-dead-letter-exchange"] = self.dead_letter_exchange
        if self.dead_letter_routing_key is not None:
            arguments["x-dead-letter-routing-key"] = self.dead_letter_routing_key
        return arguments


class Topology(ComponentOptions):
    """Exchanges and queues declared on every (re)connection; declaring is idempotent."""

    exchanges: list[ExchangeSpec] = Field(default_factory=list)
    """Exchanges to declare, in order."""
    queues: list[QueueSpec] = Field(default_factory=list)
    """Queues to declare (and bind), after the exchanges."""

    def declares_exchange(self, name: str) -> bool:
        return any(exchange.name == name for exchange in self.exchanges)

    def declares_queue(self, name: str) -> bool:
        return any(queue.name == name for queue in self.queues)


class ConnectionOptions(ComponentOptions):
    """How to reach the broker; the base of the sink's and the source's options."""

    url: str = DEFAULT_URL
    """Broker URL, `amqp://user:password@host:5672/vhost` (`amqps://` for TLS; query
    options such as `?heartbeat=30` pass to the client). Take the password from the
    environment: `amqp://ingest:${AMQP_PASSWORD}@mq.example.com/`. It is masked in logs."""
    connect_timeout: Duration = 5.0
    """Longest wait for the broker to accept a connection."""
    declare: Topology | None = None
    """Exchanges and queues to declare (idempotently) on every connection. Leave it out
    when the topology is managed elsewhere; what the options name must then exist."""
