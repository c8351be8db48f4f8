"""Talks to the Rasa server: the REST channel for messages, the HTTP API for status."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

from bot.http_lanes import HttpLanes
from bot.metrics import RASA_ERRORS, RASA_SECONDS

log = logging.getLogger(__name__)


class RasaUnavailable(Exception):
    """Rasa (or the action server behind it) did not answer usefully in time.

    ``kind`` (a metrics label): timeout, unavailable (no connection), http_error or bad_answer.
    """

    def __init__(self, message: str, kind: str = "unavailable") -> None:
        super().__init__(message)
        self.kind = kind


IN_FLIGHT = 16  # messages at Rasa at once, per gateway


class RasaClient:
    """Sends citizens' messages to Rasa, one per lane (:mod:`bot.http_lanes`), so at most ``lanes.count`` at once.

    A Rasa server works on one message at a time in its event loop (it only switches while an action runs), so more
    messages in flight only wait there. They cost here too: httpx's pool scans every connection it holds (a
    ``select`` each) whenever a request starts or ends, and with 60 messages in flight that was a fifth of the
    gateway's CPU time under load. The rest wait for a free lane here, within the same ``timeout``.
    """

    def __init__(self, base_url: str, token: str | None, timeout: float, lanes: HttpLanes,
                 http: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.lanes = lanes
        self.http = http  # for /status: a health check does not queue behind citizens' messages

    async def send(self, sender: str, text: str, metadata: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Send one user message and return Rasa's replies (timed and counted in :mod:`bot.metrics`)."""
        started = time.perf_counter()
        try:
            return await self._send(sender, text, metadata)
        except RasaUnavailable as exc:
            RASA_ERRORS.labels(exc.kind).inc()
            raise
        finally:
            RASA_SECONDS.observe(time.perf_counter() - started)

    async def _send(self, sender: str, text: str, metadata: dict[str, Any] | None) -> list[dict[str, Any]]:
        body = {"sender": sender, "message": text, "metadata": metadata or {}}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        try:
            async with asyncio.timeout_at(deadline):
                client = await self.lanes.acquire()
        except TimeoutError as exc:
            raise RasaUnavailable(f"no turn at Rasa within {self.timeout:g} s", "timeout") from exc
        try:
            # the wait for a lane counts toward the same timeout
            resp = await client.post(f"{self.base_url}/webhooks/rest/webhook", json=body,
                                     timeout=max(deadline - loop.time(), 0.001))
        except httpx.TimeoutException as exc:
            raise RasaUnavailable(f"{type(exc).__name__}: {exc}", "timeout") from exc
        except httpx.HTTPError as exc:
            raise RasaUnavailable(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.lanes.release(client)
        if resp.status_code != 200:
            raise RasaUnavailable(f"HTTP {resp.status_code}", "http_error")
        try:
            data = resp.json()
        except ValueError as exc:
            raise RasaUnavailable("not JSON", "bad_answer") from exc
        if not isinstance(data, list):
            raise RasaUnavailable("unexpected answer shape", "bad_answer")
        return [item for item in data if isinstance(item, dict)]

    async def status(self) -> dict[str, Any]:
        """Rasa's ``/status`` (needs the token); raises ``RasaUnavailable`` when down."""
        params = {"token": self.token} if self.token else {}
        try:
            resp = await self.http.get(f"{self.base_url}/status", params=params, timeout=3.0)
            resp.raise_for_status()
            data: dict[str, Any] = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RasaUnavailable(str(exc)) from exc
        return data
