"""Imported first by `pipeline`: keeps every process's start-up light.

structlog's dev module imports rich's traceback renderer whenever rich is installed (it
is, for the live status), which pulls in pygments: about 80 ms at every start of every
command. fspipeline shows tracebacks only with --debug, and plainly. So structlog is
imported once while rich looks absent; rich itself stays importable, and the live status
imports it when it draws.
"""

from __future__ import annotations

import sys


def _import_structlog_without_rich() -> None:
    if "structlog" in sys.modules or "rich" in sys.modules:
        return  # already imported by the host: nothing to gain, nothing to change
    sys.modules["rich"] = None  # type: ignore[assignment]  # an import of it now fails
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


_import_structlog_without_rich()
