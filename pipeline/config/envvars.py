"""`${VAR}` and `${VAR:-default}` substitution from the environment (`$${` is a literal `${`)."""

from __future__ import annotations

import re
from collections.abc import Mapping

_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^{}]*))?\}|\$\{([^}]*)\}?")


class EnvExpansionError(ValueError):
    """A reference names an unset variable without a default, or is malformed."""


def expand(text: str, environ: Mapping[str, str]) -> str:
    """Return `text` with every reference replaced; raise EnvExpansionError on a bad one."""
    if "${" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$${":
            return "${"
        name, default, bad = match.group(1), match.group(2), match.group(3)
        if name is None:
            raise EnvExpansionError(
                f"malformed reference {whole!r}; write ${{NAME}} or ${{NAME:-default}}"
                f" (and $${{ for a literal ${{)"
                if bad is not None
                else f"malformed reference {whole!r}"
            )
        value = environ.get(name)
        if value is not None and (value != "" or default is None):
            return value
        if default is not None:
            return default
        raise EnvExpansionError(
            f"environment variable {name} is not set; set it or write ${{{name}:-default}}"
        )

    return _REFERENCE.sub(replace, text)
