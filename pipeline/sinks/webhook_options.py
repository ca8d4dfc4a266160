"""The `webhook` sink's options: endpoint, CloudEvents mode, auth from the environment, TLS."""

from __future__ import annotations

import os
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from pipeline.options import ComponentOptions, ConfigPath, Duration
from pipeline.redact import redact
from pipeline.templates import TemplateText, compile_template

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # an RFC 9110 token
_RESERVED_HEADERS = ("content-type", "content-length", "host", "transfer-encoding")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def read_secret(variable: str, option: str) -> str:
    """The value of environment variable `variable`; a clear error when it is unset."""
    value = os.environ.get(variable)
    if not value:
        raise ValueError(
            f"environment variable {variable} (named by {option}) is not set or empty; "
            f"export it before starting the pipeline"
        )
    return value


class WebhookOptions(ComponentOptions):
    url: TemplateText
    """Endpoint, `http://` or `https://`, e.g. `https://hooks.example.com/fs/{kind}`.
    Placeholders ({kind} {name} {path} {relpath} {meta.KEY} ...) are percent-encoded. A
    password in it (`https://user:${HOOK_PASS}@host/`) is sent as basic auth and never
    logged."""
    method: Literal["POST", "PUT"] = "POST"
    """HTTP method of each request."""
    mode: Literal["structured", "binary"] = "structured"
    """CloudEvents content mode. `structured`: the body is the event's CloudEvents JSON
    (`application/cloudevents+json`). `binary`: the attributes go in `ce-id`, `ce-type`,
    `ce-source`, `ce-specversion`, `ce-time` and `ce-subject` headers and the body is the
    `data` object (`application/json`). With the engine's `batch_size` above 1, structured
    mode posts each batch as one JSON array (`application/cloudevents-batch+json`; a batch
    of one goes as a single event); binary mode sends the batch's requests concurrently."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers, e.g. `{X-Api-Key: "${HOOK_KEY}"}`. Values are never logged."""
    bearer_token_env: str | None = None
    """Name of the environment variable holding a bearer token, sent as
    `Authorization: Bearer <token>`. The token is never logged."""
    username: str | None = None
    """User name for HTTP basic auth (with `password_env`)."""
    password_env: str | None = None
    """Name of the environment variable holding the basic-auth password (with `username`)."""
    verify: bool = True
    """Check the server's TLS certificate. Turn it off only for a test endpoint."""
    ca_bundle: ConfigPath | None = None
    """PEM file of the CA certificates to trust instead of the system's (a private CA)."""
    client_cert: ConfigPath | None = None
    """PEM client certificate for mutual TLS (its key inside, or in `client_key`)."""
    client_key: ConfigPath | None = None
    """PEM private key of `client_cert`, when it is a separate file."""
    connect_timeout: Duration = 5.0
    """Longest wait for a connection (TCP and TLS handshake)."""
    timeout: Duration = 30.0
    """Longest time for a whole request, from connecting to the end of the response; then
    the delivery fails and is retried."""
    retry_after_max: Duration = 60.0
    """The longest `Retry-After` (of a 429 or 5xx answer) the next attempt waits for;
    longer ones are cut to this."""
    follow_redirects: bool = False
    """Follow 3xx redirects. Off: a redirect is a failed delivery that names the new place."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if compile_template(url).starts_with_field or not url.lower().startswith(
            ("http://", "https://")
        ):
            raise ValueError(
                f"{redact(url)!r} is not an http:// or https:// URL; write it like "
                "https://hooks.example.com/fs/{kind}"
            )
        return url

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name (letters, digits, -)")
            if name.lower() in _RESERVED_HEADERS or name.lower().startswith("ce-"):
                raise ValueError(
                    f"header {name} is set by the sink from the event and `mode`; remove it"
                )
            if any(ord(c) < 32 and c != "\t" for c in value):
                raise ValueError(f"the value of header {name} holds a control character")
            if not value.isascii():
                raise ValueError(f"the value of header {name} is not ASCII; percent-encode it")
        return headers

    @field_validator("bearer_token_env", "password_env")
    @classmethod
    def _check_env_name(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.match(name):
            raise ValueError(
                f"{name!r} is not an environment variable name; give the name (HOOK_TOKEN), "
                "not the value or ${HOOK_TOKEN}"
            )
        return name

    @model_validator(mode="after")
    def _check_auth(self) -> WebhookOptions:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("basic auth needs both username and password_env")
        chosen = self.auth_methods()
        if len(chosen) > 1:
            raise ValueError(f"choose one way to authenticate: {' or '.join(chosen)}")
        if self.bearer_token_env:
            read_secret(self.bearer_token_env, "bearer_token_env")
        if self.password_env:
            read_secret(self.password_env, "password_env")
        return self

    @model_validator(mode="after")
    def _check_tls_and_timeouts(self) -> WebhookOptions:
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs client_cert")
        if not self.verify and self.ca_bundle is not None:
            raise ValueError("ca_bundle has no effect with verify: false; remove one of them")
        if self.connect_timeout <= 0 or self.timeout <= 0:
            raise ValueError("timeouts must be longer than 0")
        return self

    def auth_methods(self) -> list[str]:
        """The ways to authenticate these options give (at most one is allowed)."""
        given = {
            "a user in `url`": "@" in urlsplit(self.url).netloc,
            "bearer_token_env": self.bearer_token_env is not None,
            "username": self.username is not None,
            "an Authorization header": any(h.lower() == "authorization" for h in self.headers),
        }
        return [name for name, present in given.items() if present]
