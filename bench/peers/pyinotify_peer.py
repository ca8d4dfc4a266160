"""pyinotify's Notifier on IN_CLOSE_WRITE, recursive with auto_add: "KIND PATH" lines.

python pyinotify_peer.py DIR
"""

from __future__ import annotations

import sys
import warnings

warnings.simplefilter("ignore", DeprecationWarning)  # pyinotify imports asyncore

import pyinotify  # type: ignore[import-untyped]  # noqa: E402


class Printer(pyinotify.ProcessEvent):  # type: ignore[misc]
    def process_default(self, event: pyinotify.Event) -> None:
        sys.stdout.write(f"{event.maskname} {event.pathname}\n")


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    manager = pyinotify.WatchManager()
    manager.add_watch(sys.argv[1], pyinotify.IN_CLOSE_WRITE, rec=True, auto_add=True)
    pyinotify.Notifier(manager, Printer()).loop()


if __name__ == "__main__":
    main()
