"""Who may use the HTTP endpoint: a bearer token (header or `?token=`, compared in constant
time), and on a loopback address only requests addressed to a loopback name."""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from pipeline.observe.address import TOKEN_ENV

__all__ = ["TOKEN_ENV", "presented_token"]


def presented_token(request: web.Request) -> str | None:
    """The token a request carries: `Authorization: Bearer T`, else `?token=T`."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query.get("token")


def require_token(token: str) -> Middleware:
    """A middleware that answers 401 to every request without `token`."""
    expected = token.encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = presented_token(request)
        # surrogateescape: a header with bytes that are not UTF-8 is a wrong token, not a 500.
        if given is None or not hmac.compare_digest(
            given.encode("utf-8", "surrogateescape"), expected
        ):
            raise web.HTTPUnauthorized(
                text="401: this endpoint needs its token: send the header "
                "'Authorization: Bearer TOKEN' or add ?token=TOKEN to the URL\n",
                headers={"WWW-Authenticate": 'Bearer realm="fspipeline"'},
            )
        return await handler(request)

    return check


def _loopback_name(host: str) -> bool:
    name = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] or host
    if name.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def loopback_host_only() -> Middleware:
    """A middleware that answers 421 to a request whose Host is not a loopback name.

    On 127.0.0.1 only this machine connects, but a web page it browses can, by DNS
    rebinding, make the browser send its requests there under the page's own host name
    and read the answers (event paths). Browsers always send the name they resolved.
    """

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _loopback_name(request.host):
            raise web.HTTPMisdirectedRequest(
                text="421: this endpoint answers requests to localhost or 127.0.0.1 only\n"
            )
        return await handler(request)

    return check
