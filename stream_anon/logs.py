"""Logging: structlog for our code and the standard library's for everyone else's, one output, no PII.

Every event, whoever logs it, goes through ``scrub`` just before it is rendered:

* a value under a key that names a payload (``value``, ``record``, ``payload``, ``raw``, ``key``, ``body``,
  ``data``, ...) is replaced by ``[removed]``: records and their keys are never logged, not even masked;
* in every other string (the message itself, the values, nested containers, exception text), what the
  validated detectors recognise (emails, phone numbers, card numbers, IBANs, SSNs, IP addresses) is
  replaced by ``<ENTITY>``;
* bytes are replaced by their length, other objects by their scrubbed ``str``.

Names in free text are not recognised here (that takes NER, far too slow for a log line): log paths,
reasons and counts, never values. ``bind_record`` adds the topic, partition and offset a line is about.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from stream_anon.detection.validated import CREDIT_CARD, redact

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]

REMOVED = "[removed]"

# Keys whose values are record content, whatever their type: replaced, not masked.
_PAYLOAD_KEY = re.compile(
    r"(?:^|_)(?:value|values|record|records|payload|payloads|raw|key|body|data|content|message_value|"
    r"original|sanitized|document|row|headers)$",
    re.IGNORECASE,
)
# Keys set by this code and by structlog whose values are never record content.
_TRUSTED_KEYS = frozenset({"timestamp", "level", "logger", "logger_name"})
_MAX_DEPTH = 6
# Integers this long may be card numbers logged as numbers.
_CARD_DIGITS = range(12, 20)

_HANDLER_NAME = "stream-anon"


def scrub(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the event with payload keys removed and PII-looking values masked."""
    for key in list(event_dict):
        if key in _TRUSTED_KEYS:
            continue
        event_dict[key] = _scrub_item(key, event_dict[key], 0)
    return event_dict


def _scrub_item(key: Any, value: Any, depth: int) -> Any:
    if isinstance(key, str) and key != "event" and _PAYLOAD_KEY.search(key):
        return REMOVED
    return _scrub_value(value, depth)


def _scrub_value(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int):
        return _scrub_int(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if depth >= _MAX_DEPTH:
        return "[nested too deep]"
    if isinstance(value, Mapping):
        return {_scrub_value(k, depth + 1): _scrub_item(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub_value(item, depth + 1) for item in value]
    return redact(str(value))


def _scrub_int(value: int) -> int | str:
    if len(str(abs(value))) in _CARD_DIGITS and redact(str(value)) != str(value):
        return f"<{CREDIT_CARD}>"
    return value


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def configure_logging(
    log_format: LogFormat = "auto", log_level: LogLevel = "info", stream: IO[str] | None = None
) -> None:
    """Route structlog and the standard library's logging to ``stream`` (stderr), scrubbed and rendered.

    ``auto`` renders JSON unless ``stream`` is a terminal. Calling it again replaces the previous setup.
    """
    stream = stream if stream is not None else sys.stderr
    if log_format == "auto":
        log_format = "console" if _is_tty(stream) else "json"
    renderer: Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    elif log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=_is_tty(stream))
    else:
        raise ValueError(f"log_format must be auto, json or console, not {log_format!r}")
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise ValueError(f"log_level must be debug, info, warning or error, not {log_level!r}")

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks become plain text before scrubbing: exception messages can quote values, and
            # pretty renderers would print local variables.
            structlog.processors.format_exc_info,
            scrub,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # librdkafka's and the HTTP client's debug chatter stays out unless asked for.
    for noisy in ("urllib3", "httpx", "httpx2", "presidio-analyzer"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def bind_record(topic: str, partition: int, offset: int) -> structlog.stdlib.BoundLogger:
    """A logger whose lines say which record they are about."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger("stream_anon.record").bind(
        topic=topic, partition=partition, offset=offset
    )
    return logger


@contextmanager
def record_context(topic: str, partition: int, offset: int) -> Iterator[None]:
    """Within the block, every log line (any logger, this thread or task) carries the record's position."""
    with structlog.contextvars.bound_contextvars(topic=topic, partition=partition, offset=offset):
        yield
