"""What an HTTP answer means for a delivery, the TLS context, and the errors the sink raises."""

from __future__ import annotations

import email.utils
import ssl
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.display import printable
from pipeline.errors import DeliveryError, PipelineError
from pipeline.redact import MASK, redact

if TYPE_CHECKING:
    import httpx  # imported when the first request is made: a lighter start

SNIPPET_CHARS = 200
"""How much of a refused request's response body goes into the error."""


class WebhookError(DeliveryError):
    """A delivery the endpoint did not take.

    `permanent` says that retrying cannot help (a 4xx other than 408/429): the engine
    dead-letters it at once. `retry_after` is the wait the endpoint asked for, in seconds,
    if it said so: the engine's next attempt waits at least that long.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        permanent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, permanent=permanent, retry_after=retry_after)
        self.status = status


def is_retryable(status: int) -> bool:
    """408, 429 and 5xx: the endpoint may take the same request later."""
    return status in (408, 429) or status >= 500


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None if absent
    or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def body_snippet(response: httpx.Response, secrets: Iterable[str] = ()) -> str:
    """The start of the response body on one line, secrets masked; empty if there is none."""
    text = response.content[: SNIPPET_CHARS * 4].decode("utf-8", "replace")
    text = printable(" ".join(text.split()))
    if len(text) > SNIPPET_CHARS:
        text = text[:SNIPPET_CHARS] + "..."
    return mask(text, secrets)


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with URL passwords and every given secret value replaced by `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return redact(text)


def refusal(response: httpx.Response, shown_url: str, secrets: Iterable[str]) -> WebhookError:
    """The error for a non-2xx answer: what came back, and whether to retry."""
    status = response.status_code
    reason = f"{shown_url} answered {status} {response.reason_phrase}".rstrip()
    if 300 <= status < 400:
        location = response.headers.get("location")
        where = f" to {mask(location, secrets)}" if location else ""
        reason += f" (a redirect{where}; set `url` to the new place, or follow_redirects: true)"
    snippet = body_snippet(response, secrets)
    if snippet:
        reason += f": {snippet}"
    if not is_retryable(status):
        return WebhookError(reason, status=status, permanent=True)
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    return WebhookError(reason, status=status, retry_after=retry_after)


def transport_failure(exc: Exception, shown_url: str) -> WebhookError:
    """The error for a request that got no answer: unreachable, TLS refused, timed out."""
    import httpx

    detail = _first_message(exc)
    if isinstance(exc, httpx.TimeoutException):
        message = f"{shown_url}: no answer within the timeout ({type(exc).__name__})"
    elif "CERTIFICATE_VERIFY_FAILED" in detail:
        message = (
            f"TLS with {shown_url} failed: {detail}. If the server's certificate comes from a "
            "private CA, set ca_bundle to that CA's PEM file (verify: false only for tests)"
        )
    elif "SSL" in detail or "TLS" in detail:
        message = (
            f"TLS with {shown_url} failed: {detail}. Check that the server speaks https and "
            "whether it requires a client certificate (client_cert, client_key)"
        )
    elif isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError):
        message = f"{shown_url} closed the connection without an answer ({detail})"
        if shown_url.startswith("https:"):
            message += "; a server that requires a client certificate does this (client_cert)"
    else:
        message = f"cannot reach {shown_url}: {detail}; check the host, the port and the network"
    return WebhookError(redact(message))


def _first_message(exc: BaseException) -> str:
    """httpx often wraps the telling error (a TLS alert, a reset) in an empty one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BaseExceptionGroup):
            return _first_message(seen.exceptions[0])
        if str(seen).strip():
            return f"{type(seen).__name__}: {seen}" if seen is not exc else str(seen)
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def timed_out(shown_url: str, timeout: float) -> WebhookError:
    return WebhookError(f"{shown_url}: no complete answer within timeout {timeout:g}s")


def tls_context(
    *,
    verify: bool,
    ca_bundle: Path | None,
    client_cert: Path | None,
    client_key: Path | None,
    label: str,
) -> ssl.SSLContext:
    """The TLS settings of every connection; a PipelineError naming a bad file."""
    try:
        context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    except (OSError, ssl.SSLError) as exc:
        raise PipelineError(
            f"{label}: ca_bundle {ca_bundle} cannot be used: {exc}; give a PEM file of CA "
            "certificates"
        ) from exc
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        try:
            context.load_cert_chain(str(client_cert), str(client_key) if client_key else None)
        except (OSError, ssl.SSLError) as exc:
            raise PipelineError(
                f"{label}: client_cert {client_cert} (key {client_key or 'inside it'}) cannot "
                f"be used: {exc}; give PEM files of a certificate and its unencrypted key"
            ) from exc
    return context


def shown_url(url: str) -> str:
    """`url` fit for a log line or an error: password and query-string values masked."""
    base, question, query = url.partition("?")
    if question:
        query = "&".join(
            f"{name}={MASK}" if sep else name
            for name, sep, _ in (part.partition("=") for part in query.split("&"))
        )
    return redact(base + question + query)
