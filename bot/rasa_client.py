"""Talks to the Rasa server: the REST channel for messages, the HTTP API for status."""

from __future__ import annotations

import logging
from typing import Any

import httpx

log = logging.getLogger(__name__)


class RasaUnavailable(Exception):
    """Rasa (or the action server behind it) did not answer usefully in time."""


class RasaClient:
    def __init__(self, base_url: str, token: str | None, timeout: float, client: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.client = client

    async def send(self, sender: str, text: str, metadata: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Send one user message and return Rasa's replies."""
        body = {"sender": sender, "message": text, "metadata": metadata or {}}
        try:
            resp = await self.client.post(
                f"{self.base_url}/webhooks/rest/webhook", json=body, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise RasaUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code != 200:
            raise RasaUnavailable(f"HTTP {resp.status_code}")
        try:
            data = resp.json()
        except ValueError as exc:
            raise RasaUnavailable("not JSON") from exc
        if not isinstance(data, list):
            raise RasaUnavailable("unexpected answer shape")
        return [item for item in data if isinstance(item, dict)]

    async def status(self) -> dict[str, Any]:
        """Rasa's ``/status`` (needs the token); raises ``RasaUnavailable`` when down."""
        params = {"token": self.token} if self.token else {}
        try:
            resp = await self.client.get(f"{self.base_url}/status", params=params, timeout=3.0)
            resp.raise_for_status()
            data: dict[str, Any] = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RasaUnavailable(str(exc)) from exc
        return data
