"""Finding and creating JetStream streams, with errors that say what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
from nats.js import api

from fspipeline_nats.errors import NatsStreamMissing, NatsUnavailable, api_failure

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from structlog.typing import FilteringBoundLogger

    from fspipeline_nats.settings import StreamSpec

_TRANSIENT = (nats.errors.Error, OSError, TimeoutError)


def _failure(exc: BaseException, doing: str, url: str) -> NatsStreamMissing | NatsUnavailable:
    """What a failed JetStream API call means: no responders is JetStream being off (a
    setup to fix), anything else a server that cannot answer now."""
    if isinstance(exc, nats.errors.NoRespondersError):
        return NatsStreamMissing(api_failure(exc, doing, url))
    return NatsUnavailable(api_failure(exc, doing, url))


async def stream_info(js: JetStreamContext, name: str, url: str) -> api.StreamInfo:
    """The stream's info; NatsStreamMissing if it does not exist or JetStream is off."""
    try:
        return await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        raise NatsStreamMissing(
            f"the JetStream stream {name!r} does not exist on {url}; create it (for example "
            "with the nats sink's `create_stream`, or `nats stream add`) or fix `stream`"
        ) from None
    except _TRANSIENT as exc:
        raise _failure(exc, f"looking up stream {name!r}", url) from None


async def stream_for_subject(js: JetStreamContext, subject: str, url: str) -> str:
    """The name of the stream that stores `subject`; NatsStreamMissing if none does."""
    try:
        return await js.find_stream_name_by_subject(subject)
    except nats.js.errors.NotFoundError:
        raise NatsStreamMissing(
            f"no JetStream stream on {url} stores the subject {subject!r}; create one whose "
            "subjects cover it (`nats stream add`), or set `create_stream` on the nats sink"
        ) from None
    except _TRANSIENT as exc:
        raise _failure(exc, "looking up streams", url) from None


def stream_config(spec: StreamSpec, subjects: list[str]) -> api.StreamConfig:
    return api.StreamConfig(
        name=spec.name,
        subjects=subjects,
        duplicate_window=spec.duplicate_window,
        max_age=spec.max_age,
        max_msgs=spec.max_msgs,
        max_bytes=spec.max_bytes,
        storage=api.StorageType(spec.storage),
        num_replicas=spec.replicas,
    )


async def ensure_stream(
    js: JetStreamContext,
    spec: StreamSpec,
    subjects: list[str],
    url: str,
    log: FilteringBoundLogger,
) -> None:
    """Create the stream unless it exists (an existing one is left as it is)."""
    try:
        info = await js.stream_info(spec.name)
    except nats.js.errors.NotFoundError:
        pass
    except _TRANSIENT as exc:
        raise _failure(exc, f"looking up stream {spec.name!r}", url) from None
    else:
        missing = [s for s in subjects if s not in (info.config.subjects or [])]
        if missing:
            log.warning(
                "the stream exists without some of the subjects create_stream names; it is "
                "left as it is",
                stream=spec.name,
                has=info.config.subjects,
                missing=missing,
            )
        return
    try:
        await js.add_stream(stream_config(spec, subjects))
    except nats.js.errors.BadRequestError as exc:
        if exc.err_code == 10058:  # created meanwhile by another process: fine
            return
        raise NatsStreamMissing(
            api_failure(exc, f"creating stream {spec.name!r} (subjects {subjects})", url)
        ) from None
    except _TRANSIENT as exc:
        raise _failure(exc, f"creating stream {spec.name!r}", url) from None
    log.info("created JetStream stream", stream=spec.name, subjects=subjects)
