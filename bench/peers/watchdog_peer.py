"""watchdog's InotifyObserver, recursive, close-after-write events only: "closed PATH" lines.

python watchdog_peer.py DIR
"""

from __future__ import annotations

import sys
import threading

from watchdog.events import FileClosedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers.inotify import InotifyObserver


class Printer(FileSystemEventHandler):
    def on_any_event(self, event: FileSystemEvent) -> None:
        path = event.src_path
        text = path if isinstance(path, str) else path.decode(errors="surrogateescape")
        sys.stdout.write(f"{event.event_type} {text}\n")


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    observer = InotifyObserver()
    observer.schedule(Printer(), sys.argv[1], recursive=True, event_filter=[FileClosedEvent])
    observer.start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
