"""Real Mosquitto brokers for the mqtt plugin's tests, and mosquitto_sub as an independent reader.

`mosquitto` is the machine's broker at 127.0.0.1:1883, started if it is down. Tests that
stop a broker or need a password file start a private one (`private_broker`) on a free
port with its own persistence folder, so they never disturb the shared one.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import inspect
import json
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

MOSQUITTO = "/usr/sbin/mosquitto"
SYSTEM_CONFIG = "/etc/mosquitto/mosquitto.conf"
SYSTEM_PORT = 1883


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests of this folder on a fresh event loop (asyncio.run)."""
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test):
        return None
    wanted = inspect.signature(test).parameters
    asyncio.run(test(**{name: pyfuncitem.funcargs[name] for name in wanted}))
    return True


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def mosquitto() -> str:
    """URL of the machine's Mosquitto (127.0.0.1:1883), started if it is down."""
    if not port_open(SYSTEM_PORT):
        subprocess.run([MOSQUITTO, "-d", "-c", SYSTEM_CONFIG], check=True, timeout=30)
        wait_for(lambda: port_open(SYSTEM_PORT), 15, "mosquitto did not start")
    return f"mqtt://127.0.0.1:{SYSTEM_PORT}"


class PrivateBroker:
    """A Mosquitto of the test's own: a free port, persistence in its folder, an optional
    password file; `kill()` (SIGKILL, nothing saved) or `stop()` (SIGTERM) and `start()`."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {folder}/",
            # Save the sessions (and queued messages) every second, so a SIGKILL loses
            # at most the last second of broker state, as with a real crash.
            "autosave_interval 1",
            "max_queued_messages 0",  # a persistent session's queue must not drop messages
            f"log_dest file {folder}/mosquitto.log",
            # Started as root, mosquitto would switch to the `mosquitto` user, which
            # cannot write into the test's folder.
            f"user {getpass.getuser()}",
        ]
        if users:
            password_file = folder / "passwords"
            password_file.touch()
            for user, password in users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(password_file), user, password],
                    check=True,
                    timeout=30,
                )
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        self.config = folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def url(self, user: str | None = None, password: str | None = None) -> str:
        login = f"{user}:{password}@" if user else ""
        return f"mqtt://{login}127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open(self.port), 15, "private mosquitto did not start")

    def kill(self) -> None:
        """SIGKILL: the broker dies as in a crash, keeping only its last autosave."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: the broker saves its state and exits."""
        self._end(signal.SIGTERM)

    def _end(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)
            self.proc.wait(15)
        self.proc = None


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Callable[..., PrivateBroker]]:
    """Makes and starts private brokers; stops them after the test."""
    made: list[PrivateBroker] = []

    def make(users: dict[str, str] | None = None) -> PrivateBroker:
        broker = PrivateBroker(tmp_path / f"broker{len(made)}", users)
        made.append(broker)
        broker.start()
        return broker

    yield make
    for broker in made:
        broker.kill()


class Subscriber:
    """mosquitto_sub, Mosquitto's own client, writing each payload on a line of a file.

    It uses a persistent session (`-c` and a fixed id), so a broker restart loses nothing
    queued for it, and it subscribes again on every reconnect.
    """

    def __init__(
        self, port: int, topic: str, out: Path, protocol: str = "mqttv5", fmt: str = "%p"
    ) -> None:
        self.port = port
        self.topic = topic
        self.out = out
        self.fmt = fmt
        self.client_id = f"independent-{uuid.uuid4().hex[:12]}"
        self.protocol = protocol
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Subscriber:
        args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.port), "-t", self.topic]
        args += ["-q", "1", "-c", "-i", self.client_id, "-V", self.protocol, "-F", self.fmt]
        if self.protocol == "mqttv5":
            args += ["-x", "600"]  # session expiry: keep the session across restarts
        with self.out.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.DEVNULL)
        return self

    def wait_subscribed(self, marker_topic: str) -> None:
        """Publish markers until one arrives: then the subscription is in place."""
        deadline = time.monotonic() + 15
        while b"READY" not in self.raw():
            assert time.monotonic() < deadline, "mosquitto_sub did not subscribe"
            subprocess.run(
                ["mosquitto_pub", "-p", str(self.port), "-t", marker_topic, "-m", "READY"],
                check=True,
                timeout=10,
            )
            time.sleep(0.1)

    def raw(self) -> bytes:
        return self.out.read_bytes() if self.out.exists() else b""

    def lines(self) -> list[list[str]]:
        """Each message received so far, its `fmt` fields split at tabs (markers left out)."""
        text = self.raw().decode("utf-8", "replace")
        return [line.split("\t") for line in text.splitlines() if "READY" not in line]

    def events(self) -> list[dict[str, Any]]:
        """Every CloudEvent received so far, in arrival order (markers left out)."""
        found = []
        for line in self.raw().splitlines():
            if line.startswith(b"{"):
                with contextlib.suppress(json.JSONDecodeError):
                    found.append(json.loads(line.split(b"\t")[0]))
        return found

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def subscribe(tmp_path: Path) -> Iterator[Callable[..., Subscriber]]:
    """Starts mosquitto_sub on a topic filter and returns once it is subscribed."""
    started: list[Subscriber] = []

    def start(url: str, topic: str, protocol: str = "mqttv5", fmt: str = "%p") -> Subscriber:
        out = tmp_path / f"subscriber{len(started)}.txt"
        port = urlsplit(url).port or SYSTEM_PORT
        subscriber = Subscriber(port, topic, out, protocol, fmt).start()
        started.append(subscriber)
        subscriber.wait_subscribed(topic.replace("#", "ready").replace("+", "ready"))
        return subscriber

    yield start
    for subscriber in started:
        subscriber.stop()
