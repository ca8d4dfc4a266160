"""The exceptions the framework raises for problems a user can fix."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error fspipeline reports to the user without a traceback."""

    exit_code = 1


class PluginError(PipelineError):
    """A plugin could not be loaded, or two plugins clash."""


class ConfigError(PipelineError):
    """The configuration is invalid; `problems` holds one located message each."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class SourceError(PipelineError):
    """A source cannot watch what it was asked to (limits, permissions, missing APIs)."""


class DeliveryError(PipelineError):
    """A sink's failed delivery that tells the engine how to retry it.

    Raise it from `send`/`send_batch` (any other exception is an ordinary failure,
    retried with back-off). `permanent`: retrying cannot help (a 400, a rejected
    message), so the event is dead-lettered at once. `retry_after`: the target asked not
    to be retried for this many seconds (HTTP `Retry-After`); the engine waits at least
    that long. Logged as its one-line message, without a traceback.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
