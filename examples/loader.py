"""A stand-in loader for examples/landing-zone.yaml: records which file it loaded, and its size.

A real loader would COPY the file into a warehouse table. This one checks that the size it
was told is the size on disk (a partial file would not match) and appends
`<size> <path>` to the file named by $LOADED_LOG.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    path, size = sys.argv[1], int(sys.argv[2])
    actual = os.stat(path).st_size
    if actual != size:
        print(f"{path}: told {size} bytes, found {actual}", file=sys.stderr)
        return 3
    with open(os.environ.get("LOADED_LOG", "loaded.log"), "ab") as log:
        log.write(b"%d %s\n" % (size, os.fsencode(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
