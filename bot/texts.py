"""The gateway's own replies, read from ``data/content/gateway.yml`` (content, not code)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.channels.base import Button, OutgoingMessage
from dvcbot import PROJECT_ROOT

DEFAULT_PATH = PROJECT_ROOT / "data" / "content" / "gateway.yml"
REQUIRED = ("start", "unavailable", "empty_text", "too_long", "unsupported_media", "choose_by_number")


def _entries(value: Any) -> list[dict[str, Any]]:
    """A key holds one message or a list of messages; each needs a text."""
    items = value if isinstance(value, list) else [value]
    return [i for i in items if isinstance(i, dict) and i.get("text")] if items else []


def _fill(text: str, values: dict[str, Any]) -> str:
    """``text`` with its placeholders filled; a text with stray braces or unknown names is left as written."""
    try:
        return text.format(**values) if values else text
    except (KeyError, IndexError, ValueError):
        return text


@dataclass(frozen=True)
class GatewayTexts:
    raw: dict[str, list[dict[str, Any]]]

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> GatewayTexts:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        messages = {key: _entries(value) for key, value in (data.get("messages") or {}).items()}
        missing = [k for k in REQUIRED if not messages.get(k)]
        if missing:
            raise ValueError(f"{path}: missing messages: {', '.join(missing)}")
        return cls(messages)

    def messages(self, key: str, **values: Any) -> list[OutgoingMessage]:
        """Every message of ``key``, with ``{placeholders}`` filled from ``values``."""
        return [
            OutgoingMessage(
                text=_fill(str(entry["text"]), values),
                buttons=[Button(b["title"], b["payload"]) for b in entry.get("buttons") or []],
                sender="system",
            )
            for entry in self.raw[key]
        ]

    def message(self, key: str, **values: Any) -> OutgoingMessage:
        """The (first) message of ``key``."""
        return self.messages(key, **values)[0]
