"""An external dossier-status API, over httpx, with timeout, retries with backoff and a circuit breaker.

The API this client speaks (a provincial or national status service, or an adapter in front of one):

``POST {base_url}/dossiers/verify`` with ``Authorization: Bearer <token>`` and
``{"code": "000.00.04.H51-200221-0001", "phone_last4": "1234"}`` answers

- ``200`` with ``{"code", "procedure_name", "received_on": "YYYY-MM-DD", "status", "due_on", "status_detail",
  "delivery", "shipment_code", "shipment_status"}`` (statuses as in ``models.STATUSES``) when the code exists and
  the digits match;
- ``404`` when either does not (the API must not tell which);
- anything else is a failure: ``429`` and ``5xx`` and network errors are retried, the rest are not.

An answer that does not fit this contract is treated as a failure, never shown as a status.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import httpx

from actions.dossiers.breaker import CircuitBreaker
from actions.dossiers.models import DELIVERIES, SHIPMENT_STATUSES, STATUSES
from actions.dossiers.settings import DossierSettings
from actions.dossiers.sources import DossierView, SourceUnavailable

log = logging.getLogger(__name__)
RETRIED = {429, 500, 502, 503, 504}


def _optional_date(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def parse_view(data: Any, code: str) -> DossierView:
    """The API's answer as a ``DossierView``; ``ValueError`` when it breaks the contract."""
    if not isinstance(data, dict) or data.get("code") != code:
        raise ValueError("answer is not about the dossier asked for")
    status = data.get("status")
    delivery = data.get("delivery") or "counter"
    shipment_status = data.get("shipment_status") or None
    if status not in STATUSES or delivery not in DELIVERIES or (
            shipment_status is not None and shipment_status not in SHIPMENT_STATUSES):
        raise ValueError("unknown status value")
    name = data.get("procedure_name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("no procedure name")
    return DossierView(
        code=code, procedure_name=name.strip(), received_on=dt.date.fromisoformat(data["received_on"]),
        status=status, due_on=_optional_date(data.get("due_on")), status_detail=data.get("status_detail") or None,
        delivery=delivery, shipment_code=data.get("shipment_code") or None, shipment_status=shipment_status,
    )


class ApiSource:
    """The external status API named by ``DVCBOT_DOSSIER_API_URL``."""

    def __init__(self, settings: DossierSettings, transport: httpx.AsyncBaseTransport | None = None,
                 breaker: CircuitBreaker | None = None) -> None:
        if not settings.api_url:
            raise ValueError("DVCBOT_DOSSIER_API_URL is not set")
        self.settings = settings
        self.transport = transport
        self.breaker = breaker or CircuitBreaker(settings.breaker_failures, settings.breaker_reset)

    def _client(self) -> httpx.AsyncClient:
        headers = {"Accept": "application/json"}
        if self.settings.api_token:
            headers["Authorization"] = f"Bearer {self.settings.api_token.get_secret_value()}"
        return httpx.AsyncClient(base_url=str(self.settings.api_url), headers=headers,
                                 timeout=self.settings.api_timeout, transport=self.transport)

    async def lookup(self, code: str, last4: str) -> DossierView | None:
        if not self.breaker.allow():
            raise SourceUnavailable("status API: circuit open")
        try:
            view = await self._call(code, last4)
        except SourceUnavailable:
            self.breaker.failure()
            raise
        self.breaker.success()
        return view

    async def _call(self, code: str, last4: str) -> DossierView | None:
        delay = self.settings.api_backoff
        attempts = 1 + max(0, self.settings.api_retries)
        async with self._client() as client:
            for attempt in range(1, attempts + 1):
                try:
                    resp = await client.post("/dossiers/verify", json={"code": code, "phone_last4": last4})
                except httpx.HTTPError as exc:
                    reason = type(exc).__name__
                else:
                    if resp.status_code == 404:
                        return None
                    if resp.status_code == 200:
                        try:
                            return parse_view(resp.json(), code)
                        except (ValueError, KeyError, TypeError) as exc:
                            log.warning("status API broke its contract: %s", exc)
                            raise SourceUnavailable("status API: bad answer") from None
                    reason = f"HTTP {resp.status_code}"
                    if resp.status_code not in RETRIED:
                        log.warning("status API refused the request: %s", reason)
                        raise SourceUnavailable(f"status API: {reason}")
                if attempt < attempts:
                    log.info("status API attempt %d failed (%s); retrying in %.1f s", attempt, reason, delay)
                    await asyncio.sleep(delay)
                    delay *= 2
        log.warning("status API unavailable after %d attempts (%s)", attempts, reason)
        raise SourceUnavailable(f"status API: {reason}")
