"""watchfiles.watch() with its defaults, recursive: one "CHANGE PATH" line per change.

python watchfiles_peer.py DIR
"""

from __future__ import annotations

import sys

from watchfiles import watch


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    for changes in watch(sys.argv[1]):
        for change, path in changes:
            sys.stdout.write(f"{change.name} {path}\n")


if __name__ == "__main__":
    main()
