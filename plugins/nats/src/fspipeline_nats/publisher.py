"""Publishing to JetStream with many messages in flight, then awaiting every ack.

A JetStream publish is a plain NATS publish with a reply subject: the server answers on
it once the message is stored (`{"stream": .., "seq": ..}`, or `{"error": ..}`, or a
503 status when no stream stores the subject). nats-py's `publish_async` does the same
with more bookkeeping per message; this keeps one reply subscription per connection,
numbered reply subjects and one future each, which halves the CPU spent per message
(measured with bench/broker_nats.py). Messages go out in call order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

Message = tuple[str, bytes, dict[str, str]]
"""Subject, body and headers of one message."""

NO_RESPONDERS = "503"


class NoStreamStores(Exception):
    """The server answered that no stream stores the subject."""

    def __init__(self, subject: str) -> None:
        super().__init__(subject)
        self.subject = subject


class AckedPublisher:
    """Publishes messages on one client and waits until the server stored them all."""

    def __init__(self, client: NATS) -> None:
        self.client = client
        self._prefix = ""
        self._count = 0
        self._waiting: dict[str, tuple[str, asyncio.Future[None]]] = {}
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._prefix = self.client.new_inbox() + "."
        self._subscription = await self.client.subscribe(self._prefix + "*", cb=self._answer)

    async def publish(self, messages: Iterable[Message], timeout: float) -> None:
        """Publish in order; return once every message is stored, else raise the first
        error (TimeoutError when some answer did not come within `timeout`)."""
        loop = asyncio.get_running_loop()
        replies: list[str] = []
        futures: list[asyncio.Future[None]] = []
        try:
            async with asyncio.timeout(timeout):
                for subject, body, headers in messages:
                    self._count += 1
                    reply = f"{self._prefix}{self._count}"
                    future: asyncio.Future[None] = loop.create_future()
                    self._waiting[reply] = (subject, future)
                    replies.append(reply)
                    futures.append(future)
                    await self.client.publish(subject, body, reply=reply, headers=headers)
                await asyncio.gather(*futures)
        finally:
            for reply in replies:
                waiting = self._waiting.pop(reply, None)
                if waiting is not None:
                    waiting[1].cancel()

    async def _answer(self, message: Msg) -> None:
        waiting = self._waiting.pop(message.subject, None)
        if waiting is None or waiting[1].done():
            return  # answered after its batch gave up: the retry de-duplicates it
        subject, future = waiting
        headers = message.headers
        if headers and headers.get("Status") == NO_RESPONDERS:
            future.set_exception(NoStreamStores(subject))
        elif b'"error"' in message.data:
            future.set_exception(_api_error(message.data))
        else:
            future.set_result(None)

    async def stop(self) -> None:
        for _, future in self._waiting.values():
            future.cancel()
        self._waiting.clear()
        if self._subscription is not None and not self.client.is_closed:
            with contextlib.suppress(nats.errors.Error):  # the connection is going anyway
                await self._subscription.unsubscribe()


def _api_error(data: bytes) -> Exception:
    """The APIError a JetStream error answer stands for."""
    try:
        error = json.loads(data)["error"]
        nats.js.errors.APIError.from_error(error)  # raises the subclass for the code
    except nats.js.errors.APIError as exc:
        return exc
    except (ValueError, KeyError, TypeError):
        pass
    return nats.js.errors.APIError(description=data[:200].decode("utf-8", "replace"))
