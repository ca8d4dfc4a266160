"""Parses `--http [HOST:]PORT`: loopback when only a port is given."""

from __future__ import annotations

import dataclasses
import ipaddress

TOKEN_ENV = "FSPIPELINE_HTTP_TOKEN"
"""Where `pipeline run --http` reads its bearer token from, if not from --http-token."""

LOOPBACK = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class HttpAddress:
    """Where the HTTP endpoint listens."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """Only this machine can connect (127.0.0.0/8, ::1 or `localhost`)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to any interface

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port if port is None else port}"


def parse_http_address(text: str) -> HttpAddress:
    """`8080`, `:8080`, `127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:8080`; port 0 picks one."""
    value = text.strip()
    host, port = LOOPBACK, value
    if value.startswith("["):
        inside, bracket, rest = value[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"{text!r}: write an IPv6 address as [ADDRESS]:PORT, e.g. [::1]:8080")
        host, port = inside, rest[1:]
    elif ":" in value:
        if value.count(":") > 1:
            raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:8080")
        host, port = value.split(":")
        host = host or LOOPBACK
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(
            f"{text!r}: the port must be a number from 0 to 65535 (0 picks a free one); "
            "write it like 8080 or 127.0.0.1:8080"
        )
    if not host:
        raise ValueError(f"{text!r}: the host is empty; write it like 127.0.0.1:8080")
    return HttpAddress(host, int(port))
