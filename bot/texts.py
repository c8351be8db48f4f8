"""The gateway's own replies, read from ``data/content/gateway.yml`` (content, not code)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.channels.base import Button, OutgoingMessage
from dvcbot import PROJECT_ROOT

DEFAULT_PATH = PROJECT_ROOT / "data" / "content" / "gateway.yml"
REQUIRED = ("start", "unavailable", "empty_text", "too_long", "unsupported_media", "choose_by_number",
            "handoff_queued", "handoff_queued_late", "handoff_queued_closed", "handoff_complaint",
            "handoff_still_queued", "handoff_in_progress", "handoff_unclaimed", "handoff_closed_now",
            "handoff_keep_waiting", "handoff_claimed", "handoff_transferred", "handoff_requeued", "staff_reply",
            "handoff_ended", "handoff_rated", "handoff_cancelled", "handoff_silence",
            "handoff_stale", "staff_ticket_summary", "staff_citizen_says", "staff_console_reply", "staff_claimed",
            "staff_claim_lost", "staff_claim_closed", "staff_not_claimed", "staff_ended", "staff_cancelled",
            "staff_silence", "staff_reminder", "staff_requeued", "staff_transferred",
            "staff_rated")


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
    labels: dict[str, Any] = field(default_factory=dict)  # short names: reasons, channels, button titles

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> GatewayTexts:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        messages = {key: _entries(value) for key, value in (data.get("messages") or {}).items()}
        missing = [k for k in REQUIRED if not messages.get(k)]
        if missing:
            raise ValueError(f"{path}: missing messages: {', '.join(missing)}")
        labels = data.get("labels") or {}
        return cls(messages, labels if isinstance(labels, dict) else {})

    def label(self, group: str, key: str | None = None) -> str:
        """A short label (``label("reasons", "complaint")``, ``label("claim_button")``); the key when missing."""
        value = self.labels.get(group)
        if key is not None:
            value = value.get(key) if isinstance(value, dict) else None
            return str(value) if value is not None else key
        return str(value) if value is not None else group

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
