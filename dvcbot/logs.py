"""Logging for every dvcbot process (gateway, action server, the ``dvcbot`` command).

``DVCBOT_LOG_FORMAT=json`` writes one JSON object per line — ``time``, ``level``, ``logger``, ``message``,
``role`` (which process), ``conversation`` (the Rasa sender id being handled, or ``null``) and ``exception`` when
there is one — for a log collector; ``text`` (the default of ``make run``) writes the same as a readable line.
Personal numbers are masked in both (:mod:`dvcbot.logmask`), and the conversation comes from a context variable
that the gateway's router and outbox worker, and the action server per request, set while they work
(:func:`conversation_context`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

from dvcbot import logmask

FORMATS = ("text", "json")
# the conversation (Rasa sender id, e.g. "telegram:123") whose message this task is handling
conversation: ContextVar[str | None] = ContextVar("dvcbot_conversation", default=None)
# libraries that install handlers of their own: their records go through ours instead
OWN_HANDLERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "sanic.root", "sanic.error", "sanic.access",
                "sanic.server", "sanic.websockets", "rasa_sdk")
# chatter at INFO that says nothing about the bot: Alembic lists its plugins at every start; httpx logs a line
# per request (two per citizen message: Rasa and the platform) with the full URL — failures reach our own logs
QUIET = ("alembic.runtime.plugins", "httpx", "httpcore")


@contextmanager
def conversation_context(key: str | None) -> Iterator[None]:
    """Log records created inside the block carry ``key`` as their conversation."""
    token = conversation.set(key)
    try:
        yield
    finally:
        conversation.reset(token)


class ContextFilter(logging.Filter):
    """Adds the process role and the current conversation to each record (unless the caller set them)."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "role"):
            record.role = self.role
        if not hasattr(record, "conversation"):
            record.conversation = conversation.get()
        return True


def _time(record: logging.LogRecord) -> str:
    # dt.timezone.utc, not dt.UTC: the Rasa server (Python 3.10) writes its logs through this module too
    utc = dt.timezone.utc  # noqa: UP017
    return dt.datetime.fromtimestamp(record.created, utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "role": getattr(record, "role", None),
            "conversation": getattr(record, "conversation", None),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = logmask.mask(self.formatException(record.exc_info))
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = logmask.mask(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [conversation] message``: for a terminal (the supervisor prefixes the process)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(where)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        key = getattr(record, "conversation", None)
        record.where = f" [{key}]" if key else ""
        if record.exc_info and not record.exc_text:
            record.exc_text = logmask.mask(self.formatException(record.exc_info))
        return super().format(record)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it), like logging's last-resort handler."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def configure(role: str, log_format: str = "text", level: str | int = "INFO",
              handler: logging.Handler | None = None) -> logging.Handler:
    """Send every log record of this process, masked, to stderr (or ``handler``) in ``log_format``.

    Idempotent: a second call replaces the handler of the first. Returns the handler installed.
    """
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")
    logmask.install()
    handler = handler or StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter(role))
    handler.dvcbot = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "dvcbot", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in OWN_HANDLERS:
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


def configure_from_settings(role: str) -> logging.Handler:
    """:func:`configure` with ``DVCBOT_LOG_FORMAT`` and ``DVCBOT_LOG_LEVEL``."""
    from dvcbot.settings import get_settings

    settings = get_settings()
    return configure(role, settings.log_format, settings.log_level)
