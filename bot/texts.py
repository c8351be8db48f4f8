"""The gateway's own replies, read from ``data/content/gateway.yml`` (content, not code)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.channels.base import Button, OutgoingMessage
from dvcbot import PROJECT_ROOT

DEFAULT_PATH = PROJECT_ROOT / "data" / "content" / "gateway.yml"
REQUIRED = ("unavailable", "empty_text", "too_long", "unsupported_media")


@dataclass(frozen=True)
class GatewayTexts:
    raw: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> GatewayTexts:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        messages = data.get("messages") or {}
        missing = [k for k in REQUIRED if not isinstance(messages.get(k), dict) or not messages[k].get("text")]
        if missing:
            raise ValueError(f"{path}: missing messages: {', '.join(missing)}")
        return cls(messages)

    def message(self, key: str, **values: Any) -> OutgoingMessage:
        entry = self.raw[key]
        text = str(entry["text"]).format(**values) if values else str(entry["text"])
        buttons = [Button(b["title"], b["payload"]) for b in entry.get("buttons") or []]
        return OutgoingMessage(text=text, buttons=buttons, sender="system")
