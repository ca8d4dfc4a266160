"""The opt-in HTTP endpoint's lifetime: listen before the pipelines start, stop after."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from pipeline.errors import PipelineError
from pipeline.observe.routes import EndpointState, build_app
from pipeline.observe.tail import EventTail

if TYPE_CHECKING:
    from pipeline.engine.runner import Runner
    from pipeline.observe.address import HttpAddress

log = structlog.get_logger("pipeline.http")

SHUTDOWN_TIMEOUT = 2.0
"""Seconds open requests get to finish when the process stops."""


class HttpEndpoint:
    """Serves /healthz, /readyz, /metrics, /api/stats, /events and the dashboard.

    `start()` listens (on the running event loop) before the pipelines open, so /healthz
    answers and /readyz says "starting" during a long first scan; `attach` is the
    `run_plan` observer that connects the started runner; `stop()` closes it all.
    """

    def __init__(self, address: HttpAddress, *, token: str | None = None) -> None:
        self.address = address
        self.token = token
        self.state = EndpointState(tail=EventTail())
        self.url: str | None = None
        """`http://host:port` once listening (with the port chosen when it was 0)."""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app_runner = web.AppRunner(
            build_app(self.state, self.token, loopback=self.address.loopback),
            access_log=None,  # a request log would carry ?token= and say little
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        await app_runner.setup()
        wanted = self.address.url()
        try:
            await web.TCPSite(app_runner, self.address.host, self.address.port).start()
        except OSError as exc:
            await app_runner.cleanup()
            raise PipelineError(
                f"cannot listen on {wanted}: {exc.strerror or exc}; "
                "choose another address or port with --http (port 0 picks a free one)"
            ) from None
        self._runner = app_runner
        self.url = self.address.url(app_runner.addresses[0][1])
        log.info(
            "http endpoint listening",
            url=self.url,
            dashboard=f"{self.url}/",
            metrics=f"{self.url}/metrics",
            token_required=self.token is not None,
        )
        if not self.address.loopback:
            log.warning(
                "the http endpoint listens beyond this machine; anyone who can reach it "
                "sees the paths of the events"
                + ("" if self.token else ": set FSPIPELINE_HTTP_TOKEN to require a token"),
                host=self.address.host,
            )
        return self.url

    async def attach(self, runner: Runner) -> None:
        """The observer: serve `runner`'s numbers and tail its events from now on."""
        runner.add_tap(self.state.tail.tap)
        self.state.runner = runner

    async def stop(self) -> None:
        self.state.tail.close()  # live-tail followers return, so the server can close
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
