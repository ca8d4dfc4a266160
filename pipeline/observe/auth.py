"""Bearer-token check for the HTTP endpoint: a header or `?token=`, compared in constant time."""

from __future__ import annotations

import hmac

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
        if given is None or not hmac.compare_digest(given.encode(), expected):
            raise web.HTTPUnauthorized(
                text="401: this endpoint needs its token: send the header "
                "'Authorization: Bearer TOKEN' or add ?token=TOKEN to the URL\n",
                headers={"WWW-Authenticate": 'Bearer realm="fspipeline"'},
            )
        return await handler(request)

    return check
