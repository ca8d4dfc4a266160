"""structlog set-up: coloured console lines on a TTY, JSON lines otherwise, on stderr."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

from pipeline.redact import redact_value

LogFormat = Literal["auto", "console", "json"]
LEVELS = ("debug", "info", "warning", "error")


def configure_logging(level: str = "info", fmt: LogFormat = "auto", *, debug: bool = False) -> None:
    """Configure structlog for the process. Tracebacks are shown only with `debug`."""
    stream = sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if not debug:
        processors.append(_drop_tracebacks)
    processors.append(_redact_secrets)
    if use_json:
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=stream.isatty() and fmt != "json"))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(level)


class _ToStructlog(logging.Handler):
    """Hands the standard-library log records of libraries (broker clients, aiohttp) to
    structlog, so they come out in the same format, redacted, and above a live status."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a library's bad format string must not break logging
            message = str(record.msg)
        logger = structlog.get_logger(record.name)
        exc = record.exc_info if record.exc_info and record.exc_info[0] else None
        logger.log(record.levelno, message, logger_name=record.name, exc_info=exc)


def _route_stdlib_logging(level: str) -> None:
    # Libraries are chatty at info; their warnings and errors are what a user needs, unless
    # they asked for --log-level debug.
    root = logging.getLogger()
    root.handlers = [handler for handler in root.handlers if not isinstance(handler, _ToStructlog)]
    root.addHandler(_ToStructlog())
    root.setLevel(logging.DEBUG if level == "debug" else logging.WARNING)


def _drop_tracebacks(
    logger: object, name: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Without --debug, an error carries its one-line reason, not a traceback."""
    if event.pop("exc_info", None):
        exc = sys.exc_info()[1]
        if exc is not None and "error" not in event:
            event["error"] = f"{type(exc).__name__}: {exc}"
    return event


def _redact_secrets(
    logger: object, name: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """No log line shows a password, whichever component put a URL into it."""
    return {key: redact_value(value) for key, value in event.items()}
