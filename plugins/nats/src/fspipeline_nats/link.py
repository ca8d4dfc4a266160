"""A component's connection to NATS: made lazily, remade after any loss, never fatal.

nats-py reconnects on its own after a short blip; when it gives up (the server stays
down) it closes the client, and this module takes over: it connects anew with a capped
exponential backoff, one log line per attempt, until the server is back. A component
sees either a connected client or a `NatsUnavailable` that says why there is none.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import nats
from nats.aio.client import Client as NATS
from pipeline import stop_tasks
from pipeline.redact import redact

from fspipeline_nats.errors import NatsUnavailable, connect_failure

if TYPE_CHECKING:
    from pipeline import Clock, ComponentContext
    from structlog.typing import FilteringBoundLogger

    from fspipeline_nats.settings import ConnectionOptions

OnConnect = Callable[[NATS], Awaitable[None]]
"""Runs on every new client before it is handed out (stream creation); raising a
`ConnectionError` makes the connection count as failed."""

CLIENT_RETRIES = 1
"""Reconnection attempts nats-py makes per server before it closes the client."""
CLOSE_TIMEOUT = 2.0


class NatsLink:
    """One self-healing NATS client for one component."""

    def __init__(
        self,
        options: ConnectionOptions,
        *,
        name: str,
        log: FilteringBoundLogger,
        clock: Clock,
        on_connect: OnConnect | None = None,
    ) -> None:
        self.options = options
        self.shown_url = redact(options.url)
        self.name = name
        self.log = log
        self.clock = clock
        self.on_connect = on_connect
        self.last_failure = ""
        self.generation = 0
        """Counts the clients made; a consumer re-subscribes when it changes."""
        self._client: NATS | None = None
        self._ready = asyncio.Event()
        self._healing: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def of_component(
        cls,
        options: ConnectionOptions,
        context: ComponentContext,
        log: FilteringBoundLogger,
        on_connect: OnConnect | None = None,
    ) -> NatsLink:
        """The link of the component `context` describes, named after its label (the name
        the server lists the connection under)."""
        return cls(
            options,
            name=f"fspipeline {context.label}",
            log=log,
            clock=context.clock,
            on_connect=on_connect,
        )

    # -- one attempt --------------------------------------------------------------

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments of `nats.connect` for these options (secrets included)."""
        options = self.options
        extra: dict[str, Any] = {}
        if options.user is not None:
            extra["user"] = options.user
        if options.password is not None:
            extra["password"] = options.password.get_secret_value()
        if options.token is not None:
            extra["token"] = options.token.get_secret_value()
        return {
            "servers": options.servers(),
            "name": self.name,
            "connect_timeout": options.connect_timeout,
            "reconnect_time_wait": options.reconnect_wait,
            "max_reconnect_attempts": CLIENT_RETRIES,
            **extra,
        }

    async def connect_once(self) -> NATS:
        """One connection attempt (nats-py tries each server twice); raises NatsUnavailable."""
        failures: list[BaseException] = []
        connecting = True

        async def on_error(exc: Exception) -> None:
            if connecting:
                failures.append(exc)  # nats.connect reports the cause only here
            elif not isinstance(exc, nats.errors.StaleConnectionError | OSError):
                self.log.warning("NATS reported an error", error=redact(f"{exc!r}"))

        try:
            client = await nats.connect(
                error_cb=on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
                closed_cb=self._on_closed,
                **self.client_options(),
            )
        except Exception as exc:
            cause = most_telling(failures) or exc
            raise NatsUnavailable(
                connect_failure(cause, self.options.url, self.options.connect_timeout)
            ) from None
        connecting = False
        return client

    async def _establish(self) -> NATS:
        client = await self.connect_once()
        if self.on_connect is not None:
            try:
                await self.on_connect(client)
            except BaseException:
                await close_quietly(client)
                raise
        self._client = client
        self.generation += 1
        self.last_failure = ""
        self._ready.set()
        return client

    # -- nats-py's own reconnection ------------------------------------------------

    async def _on_disconnected(self) -> None:
        self._ready.clear()
        if not self._closed:
            self.log.warning("lost the connection to NATS; reconnecting", url=self.shown_url)

    async def _on_reconnected(self) -> None:
        if not self._closed:
            self._ready.set()
            self.log.info("reconnected to NATS", url=self.shown_url)

    async def _on_closed(self) -> None:
        self._ready.clear()
        if not self._closed:
            self._heal()  # nats-py gave up: connect anew, with our own backoff

    # -- the public face ---------------------------------------------------------

    async def start(self, purpose: str) -> None:
        """Connect now if possible; otherwise warn once and keep trying in the background."""
        try:
            await self._establish()
        except ConnectionError as exc:  # NatsUnavailable, or a missing stream from on_connect
            self.last_failure = str(exc)
            self.log.warning(
                f"cannot connect to NATS yet; {purpose} keeps retrying in the background",
                error=str(exc),
            )
            self._heal(first_wait=True)

    def current(self) -> NATS | None:
        """The client if it is connected right now, else None."""
        client = self._client
        return client if client is not None and client.is_connected else None

    def require(self) -> NATS:
        """The connected client, or NatsUnavailable saying why there is none."""
        client = self._client
        if client is not None and client.is_connected:
            return client
        if client is None or client.is_closed:
            self._heal(first_wait=False)
        why = f": {self.last_failure}" if self.last_failure else ""
        raise NatsUnavailable(
            f"not connected to NATS at {self.shown_url}{why}; reconnecting in the background"
        )

    async def wait(self) -> NATS:
        """The connected client, waiting (and reconnecting) as long as it takes."""
        while True:
            client = self._client
            if client is not None and client.is_connected:
                return client
            if client is None or client.is_closed:
                self._heal(first_wait=False)
            self._ready.clear()
            await self._ready.wait()

    def lost(self, client: NATS) -> None:
        """A user of `client` found it unusable: drop it and connect anew."""
        if client is self._client and not client.is_connected and not client.is_reconnecting:
            self._heal(first_wait=False)

    def _heal(self, first_wait: bool = False) -> None:
        if self._closed or (self._healing is not None and not self._healing.done()):
            return
        self._ready.clear()
        self._healing = asyncio.create_task(self._reconnect(first_wait), name=f"{self.name} heal")

    async def _reconnect(self, first_wait: bool) -> None:
        stale, self._client = self._client, None
        if stale is not None:
            await close_quietly(stale)
        delay = self.options.reconnect_wait
        attempt = 0
        if first_wait:
            await self.clock.sleep(delay)
        while True:
            attempt += 1
            try:
                await self._establish()
            except ConnectionError as exc:
                self.last_failure = str(exc)
                delay = min(self.options.reconnect_max_wait, delay * 2)
                self.log.warning(
                    "cannot connect to NATS; retrying",
                    error=str(exc),
                    attempt=attempt,
                    retry_in=round(delay, 3),
                )
                await self.clock.sleep(delay)
            else:
                self.log.info("connected to NATS", url=self.shown_url, attempts=attempt)
                return

    async def close(self) -> None:
        self._closed = True
        await stop_tasks(self._healing)
        client, self._client = self._client, None
        if client is not None:
            await close_quietly(client)


def most_telling(failures: list[BaseException]) -> BaseException | None:
    """The failure that best explains a refused connection: the server's own word on the
    credentials, when it gave one (the socket reset that follows it says less)."""
    for failure in failures:
        if isinstance(failure, nats.errors.AuthorizationError) or "uthorization" in str(failure):
            return failure
    return failures[-1] if failures else None


async def close_quietly(client: NATS) -> None:
    """Flush what is buffered and close, within a short deadline; never raises."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), CLOSE_TIMEOUT)
