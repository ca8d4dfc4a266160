"""Shared start-up of the atheris harnesses: seed corpus on disk, then libFuzzer's loop."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CORPORA = HERE / ".corpus"
"""Where each harness keeps its corpus (seeds, then what libFuzzer found interesting)."""
ARTIFACTS = HERE / ".artifacts"
"""Where libFuzzer writes the input of a crash (`<harness>-crash-<sha1>`)."""


def run(name: str, test_one_input: Callable[[bytes], None], seeds: Iterable[bytes]) -> None:
    """Write `seeds` into the harness's corpus folder and fuzz `test_one_input`.

    Extra command-line arguments go to libFuzzer (`-max_total_time=300`, `-runs=N`, ...);
    a file given instead is run once, to reproduce a crash.
    """
    if len(sys.argv) == 2 and Path(sys.argv[1]).is_file():
        test_one_input(Path(sys.argv[1]).read_bytes())
        return
    corpus = CORPORA / name
    corpus.mkdir(parents=True, exist_ok=True)
    ARTIFACTS.mkdir(exist_ok=True)
    for number, seed in enumerate(seeds):
        (corpus / f"seed-{number:03d}").write_bytes(seed)
    options = [f"-artifact_prefix={ARTIFACTS}/{name}-", *sys.argv[1:], str(corpus)]
    atheris.Setup([sys.argv[0], *options], test_one_input)
    atheris.Fuzz()
