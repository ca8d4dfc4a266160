"""Opening an MQTT connection with aiomqtt, and saying in one line why it failed."""

from __future__ import annotations

import contextlib
import ssl
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pipeline import redact

if TYPE_CHECKING:
    from fspipeline_mqtt.options import ConnectionOptions

PROTOCOLS = {"3.1.1": aiomqtt.ProtocolVersion.V311, "5": aiomqtt.ProtocolVersion.V5}

# CONNACK return codes of MQTT 3.1.1 and reason codes of MQTT 5 that mean "who you are
# is not accepted" (bad user name or password, not authorized, banned).
_LOGIN_REFUSED = {4, 5, 0x86, 0x87, 0x8A, 0x8C}
_BAD_PROTOCOL = {1, 0x84}
_BAD_CLIENT_ID = {2, 0x85}


class BrokerError(ConnectionError):
    """The MQTT broker could not be used; the message is safe to log (password masked).

    A ConnectionError, so the engine logs a failed delivery without a traceback.
    """


def paho_client(client: aiomqtt.Client) -> paho.Client:
    """The paho client inside an aiomqtt client.

    aiomqtt does not expose paho's manual acknowledgement nor its connect timeout yet
    (aiomqtt issue #345); both are public on paho's client, which aiomqtt keeps here.
    """
    return client._client


def make_client(
    options: ConnectionOptions, client_id: str, *, persistent: bool, manual_ack: bool = False
) -> aiomqtt.Client:
    """An aiomqtt client for `options`, not yet connected.

    `persistent`: the broker keeps the session (subscriptions, unacknowledged messages)
    across disconnects: MQTT 3.1.1 clean session off, MQTT 5 clean start off and a
    session expiry interval. `manual_ack`: a received QoS 1/2 message is acknowledged only
    by `acknowledge`, never by the library.
    """
    parts = urlsplit(options.url)
    protocol = PROTOCOLS[options.protocol]
    v5 = protocol is aiomqtt.ProtocolVersion.V5
    properties = None
    if v5 and persistent:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = int(options.session_expiry)
    client = aiomqtt.Client(
        parts.hostname or "",
        parts.port or (8883 if options.uses_tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        identifier=client_id,
        protocol=protocol,
        # paho refuses a clean_session value for MQTT 5, which uses clean_start instead.
        clean_session=None if protocol is aiomqtt.ProtocolVersion.V5 else not persistent,
        clean_start=not persistent
        if protocol is aiomqtt.ProtocolVersion.V5
        else paho.MQTT_CLEAN_START_FIRST_ONLY,
        keepalive=max(1, round(options.keepalive)),
        timeout=options.connect_timeout,
        properties=properties,
        tls_context=_tls_context(options) if options.uses_tls else None,
    )
    inner = paho_client(client)
    inner.connect_timeout = options.connect_timeout
    if manual_ack:
        # Before connecting: a resumed session's queued messages arrive with the CONNACK.
        inner.manual_ack_set(True)
    return client


def _tls_context(options: ConnectionOptions) -> ssl.SSLContext:
    ca = str(options.tls_ca_file) if options.tls_ca_file else None
    context = ssl.create_default_context(cafile=ca)
    if options.tls_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def acknowledge(client: aiomqtt.Client, mid: int, qos: int) -> None:
    """Send the PUBACK (QoS 1) or PUBCOMP (QoS 2) of a received message; does not block."""
    paho_client(client).ack(mid, qos)


async def connect(client: aiomqtt.Client, options: ConnectionOptions) -> None:
    """Connect `client`; raises BrokerError saying what is wrong and what to do."""
    try:
        await client.__aenter__()
    except aiomqtt.MqttError as exc:
        raise BrokerError(explain(exc, options)) from None
    except OSError as exc:  # a TLS handshake failure surfaces as a plain OSError
        raise BrokerError(explain(exc, options)) from None


async def disconnect(client: aiomqtt.Client) -> None:
    """Disconnect gracefully if still connected; never raises."""
    # Already gone: nothing left to release.
    with contextlib.suppress(aiomqtt.MqttError, OSError, RuntimeError):
        await client.__aexit__(None, None, None)


def explain(exc: BaseException, options: ConnectionOptions) -> str:
    """What went wrong talking to the broker at `options.url`, and what to do about it."""
    where = redact(options.url)
    code = _connack_code(exc)
    if code in _LOGIN_REFUSED:
        return (
            f"the MQTT broker at {where} refused the login ({_reason(exc)}): check the user "
            "name and password in `url` (take the password from the environment, e.g. "
            "${MQTT_PASSWORD}) and that the user may connect"
        )
    if code in _BAD_PROTOCOL:
        other = "3.1.1" if options.protocol == "5" else "5"
        return (
            f"the MQTT broker at {where} does not accept MQTT {options.protocol} "
            f"({_reason(exc)}): set `protocol: {other}`"
        )
    if code in _BAD_CLIENT_ID:
        return (
            f"the MQTT broker at {where} refused the client id ({_reason(exc)}): set "
            "`client_id` to one it accepts (short, letters and digits)"
        )
    if code is not None:
        return f"the MQTT broker at {where} refused the connection: {_reason(exc)}"
    detail = redact(str(exc)) or type(exc).__name__
    if "timed out" in detail.lower():
        return (
            f"the MQTT broker at {where} did not answer within {options.connect_timeout:g}s "
            f"({detail}): check host and port in `url`, that the broker runs and that no "
            "firewall drops the connection"
        )
    return (
        f"cannot reach the MQTT broker at {where} ({detail}): check that it runs and that "
        "host and port in `url` are right"
    )


def _connack_code(exc: BaseException) -> int | None:
    if not isinstance(exc, MqttConnectError):
        return None
    rc = exc.rc
    if isinstance(rc, ReasonCode):
        return int(rc.value)
    return rc if isinstance(rc, int) else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiomqtt.MqttCodeError) and isinstance(exc.rc, ReasonCode):
        return str(exc.rc)
    return redact(str(exc)).removeprefix("[code:").split("] ", 1)[-1] or type(exc).__name__
