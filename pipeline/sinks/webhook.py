"""The `webhook` sink: each event (or batch) as a CloudEvent in an HTTP request."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from pipeline.components import ComponentContext, Sink
from pipeline.errors import PipelineError
from pipeline.event import Event
from pipeline.hookspecs import hookimpl
from pipeline.security import PathEscapeError
from pipeline.sinks import webhook_encode as encode
from pipeline.sinks.webhook_http import (
    WebhookError,
    refusal,
    shown_url,
    timed_out,
    tls_context,
    transport_failure,
)
from pipeline.sinks.webhook_options import WebhookOptions, read_secret
from pipeline.templates import TemplateError, compile_template

if TYPE_CHECKING:
    import httpx  # imported by open() and probe(): every `pipeline` command starts lighter

POOL_SIZE = 100
"""Connections kept open to the endpoint (the engine's `concurrency` rarely needs more)."""
SECRET_MIN = 8
"""Header, password and query values at least this long are masked in error messages."""


class WebhookSink(Sink[WebhookOptions]):
    """Sends each event to an HTTP endpoint as a CloudEvent (structured or binary mode).

    A 2xx answer is a delivered event. 408, 429, 5xx, a refused connection, a TLS failure
    or a timeout fail the delivery, and the engine retries it (`max_attempts`,
    `retry_backoff`); a `Retry-After` in the answer is waited out first (up to
    `retry_after_max`). Any other answer (400, 401, 404, a redirect) is a refusal: the
    reason holds the status and the start of the response body, and once `max_attempts`
    are used up the event is dead-lettered with it.

    Delivery is at least once: a retried request may reach the endpoint twice, so the
    receiver should de-duplicate on the CloudEvents `id` (also sent as the `ce-id` header).
    Secrets (the bearer token, the password, a password in the URL, header values and
    query-string values) never appear in logs or errors. One pooled connection set is
    opened with the sink and reused by every request (HTTP/1.1 keep-alive).

    `pipeline check --connect` sends a HEAD request to the URL (to its host's root when
    the URL has placeholders) and reports an unreachable host, a TLS failure, rejected
    credentials, a 404 or a 5xx.
    """

    type_name = "webhook"
    Options = WebhookOptions

    def __init__(self, options: WebhookOptions, context: ComponentContext) -> None:
        super().__init__(options, context)
        self.url_template = compile_template(options.url)
        self.encode = encode.binary if options.mode == "binary" else encode.structured
        self._client: httpx.AsyncClient | None = None
        self._secrets: tuple[str, ...] = ()

    # -- the connection pool --------------------------------------------------------

    async def open(self) -> None:
        self._client = self._make_client()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _make_client(self) -> httpx.AsyncClient:
        import httpx

        options = self.options
        headers = dict(options.headers)
        auth: httpx.BasicAuth | None = None
        secrets = self._secrets_in_options()
        try:
            if options.bearer_token_env:
                token = read_secret(options.bearer_token_env, "bearer_token_env")
                headers["authorization"] = f"Bearer {token}"
                secrets.append(token)
            if options.username and options.password_env:
                password = read_secret(options.password_env, "password_env")
                auth = httpx.BasicAuth(options.username, password)
                secrets.append(password)
        except ValueError as exc:
            raise PipelineError(f"{self.context.label}: {exc}") from None
        self._secrets = tuple(secrets)
        verify = tls_context(
            verify=options.verify,
            ca_bundle=options.ca_bundle,
            client_cert=options.client_cert,
            client_key=options.client_key,
            label=self.context.label,
        )
        return httpx.AsyncClient(
            headers=headers,
            auth=auth,
            verify=verify,
            timeout=httpx.Timeout(options.timeout, connect=options.connect_timeout),
            limits=httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE),
            follow_redirects=options.follow_redirects,
        )

    def _secrets_in_options(self) -> list[str]:
        """Values an error must not show: the URL's password and query values, and header
        values long enough to be keys (short ones like `ops` would mask common words)."""
        parts = urlsplit(self.options.url)
        found = [parts.password or ""] + [value for _, value in parse_qsl(parts.query)]
        found += self.options.headers.values()
        found += [unquote(value) for value in found]
        return sorted({v for v in found if len(v) >= SECRET_MIN}, key=len, reverse=True)

    # -- delivery -------------------------------------------------------------------

    async def send(self, event: Event) -> None:
        await self._request(self._url(event), self.encode(event))

    async def send_batch(self, events: Sequence[Event]) -> None:
        """Structured mode: one JSON-array request per distinct URL. Binary mode has no
        batch form, so the events go as concurrent requests. Any failure fails the batch."""
        if self.options.mode == "binary":
            addressed = [(self._url(event), encode.binary(event)) for event in events]
            requests = [self._request(url, payload) for url, payload in addressed]
        else:
            groups: dict[str, list[Event]] = {}
            for event in events:
                groups.setdefault(self._url(event), []).append(event)
            requests = [self._request(url, encode.batch(group)) for url, group in groups.items()]
        results = await asyncio.gather(*requests, return_exceptions=True)
        failures = [result for result in results if isinstance(result, BaseException)]
        if not failures:
            return
        if len(requests) == 1 or len(failures) == 1:
            raise failures[0]
        first = failures[0]
        raise WebhookError(
            f"{len(failures)} of {len(requests)} requests failed; the first: {first}",
            status=getattr(first, "status", None),
            permanent=all(getattr(f, "permanent", False) for f in failures),
        )

    def _url(self, event: Event) -> str:
        try:
            return self.url_template.render(event, escape=encode.url_value)
        except (TemplateError, PathEscapeError) as exc:
            raise WebhookError(f"url: {exc}", permanent=True) from None

    async def _request(self, url: str, payload: encode.Payload) -> None:
        import httpx

        if self._client is None:
            raise WebhookError(f"{self.context.label} is not open")
        shown = shown_url(url)
        try:
            async with asyncio.timeout(self.options.timeout):
                response = await self._client.request(
                    self.options.method, url, content=payload.body, headers=payload.headers
                )
        except TimeoutError:
            raise timed_out(shown, self.options.timeout) from None
        except (httpx.TransportError, OSError) as exc:  # OSError: httpx lets TLS alerts through
            raise transport_failure(exc, shown) from None
        except httpx.InvalidURL as exc:  # a placeholder made the host or port unusable
            raise WebhookError(f"{shown} is not a valid URL: {exc}", permanent=True) from None
        except Exception as exc:  # the client's internals (anyio task groups): one line anyway
            raise transport_failure(exc, shown) from exc
        if response.is_success:
            return
        error = refusal(response, shown, self._secrets)
        if error.retry_after is not None:
            error.retry_after = min(error.retry_after, self.options.retry_after_max)
        raise error

    # -- pipeline check --connect -----------------------------------------------------

    async def probe(self) -> None:
        """HEAD the URL (its host's root when templated); raise what stands in the way."""
        import httpx

        templated = bool(self.url_template.fields)
        url = self.options.url
        if templated:
            parts = urlsplit(url)
            if "{" in parts.netloc:
                self.log.warning("url's host is a placeholder; nothing to probe", url=url)
                return
            url = f"{parts.scheme}://{parts.netloc}/"
        shown = shown_url(url)
        client = self._make_client()
        try:
            async with asyncio.timeout(self.options.timeout):
                response = await client.request("HEAD", url)
        except TimeoutError:
            raise timed_out(shown, self.options.timeout) from None
        except (httpx.TransportError, OSError) as exc:  # OSError: httpx lets TLS alerts through
            raise transport_failure(exc, shown) from None
        finally:
            await client.aclose()
        status = response.status_code
        if status in (401, 403):
            raise WebhookError(
                f"{shown} refused the credentials ({status} {response.reason_phrase}); "
                f"{self._credentials_hint()}",
                status=status,
            )
        if status == 404 and not templated:
            raise WebhookError(f"{shown} answered 404 Not Found; check the path in `url`")
        if status >= 500:
            raise WebhookError(
                f"{shown} answered {status} {response.reason_phrase}: it is reachable but "
                "failing; look at the endpoint's logs",
                status=status,
            )

    def _credentials_hint(self) -> str:
        options = self.options
        if options.bearer_token_env:
            return f"check the token in ${options.bearer_token_env}"
        if options.username:
            return f"check user {options.username!r} and the password in ${options.password_env}"
        if urlsplit(options.url).password:
            return "check the user and password in `url`"
        return "it needs credentials: set bearer_token_env, or username and password_env"


@hookimpl
def pipeline_components() -> list[type[WebhookSink]]:
    return [WebhookSink]
