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
