"""Zalo OA access tokens: the current one from the database, refreshed with the (single-use) refresh token.

Zalo rotates the refresh token on every refresh, so the pair lives in the ``channel_tokens`` table (seeded from
``DVCBOT_ZALO_ACCESS_TOKEN`` / ``DVCBOT_ZALO_REFRESH_TOKEN``) where a restart or another replica finds the
latest one. Configuring a new refresh token (the OA was authorised again) replaces the stored pair.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from dataclasses import dataclass

import httpx
from sqlalchemy.orm import Session

from bot.channels.base import RetryLater
from bot.database import Database
from bot.models import ChannelToken, utcnow

log = logging.getLogger(__name__)
CHANNEL = "zalo"
EARLY = dt.timedelta(minutes=5)  # refresh this long before the advertised expiry


@dataclass(frozen=True)
class ZaloCredentials:
    app_id: str
    app_secret: str
    access_token: str | None
    refresh_token: str
    oauth_base: str


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite gives naive datetimes back; they are UTC."""
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


class ZaloTokens:
    """Hands out a valid access token and refreshes it when it expires or Zalo rejects it (error -216)."""

    def __init__(self, creds: ZaloCredentials, db: Database, http: httpx.AsyncClient) -> None:
        self.creds = creds
        self.db = db
        self.http = http
        self._access: str | None = None
        self._expires_at: dt.datetime | None = None
        self._lock = asyncio.Lock()

    @property
    def _seed(self) -> str:
        return hashlib.sha256(self.creds.refresh_token.encode()).hexdigest()

    def _load(self, session: Session) -> ChannelToken:
        row = session.get(ChannelToken, CHANNEL)
        if row is None or row.seed != self._seed:
            if row is None:
                row = ChannelToken(channel=CHANNEL)
                session.add(row)
            row.access_token = self.creds.access_token or ""
            row.refresh_token = self.creds.refresh_token
            row.expires_at = None if self.creds.access_token else utcnow()
            row.seed = self._seed
            session.commit()
        return row

    async def current(self) -> str:
        """A usable access token (refreshed first when it is known to have expired)."""
        if self._access is None:
            row = await self.db.run(self._load)
            self._access, self._expires_at = row.access_token, _aware(row.expires_at)
        if not self._access or (self._expires_at is not None and self._expires_at - EARLY <= utcnow()):
            return await self.refresh(self._access)
        return self._access

    async def refresh(self, rejected: str) -> str:
        """Get a new access token unless someone already replaced ``rejected``; returns the token to use.

        Raises:
            RetryLater: Zalo's OAuth server failed or refused the refresh token.
        """
        async with self._lock:
            row = await self.db.run(self._load)
            if row.access_token and row.access_token != rejected:  # refreshed meanwhile (here or elsewhere)
                self._access, self._expires_at = row.access_token, _aware(row.expires_at)
                return row.access_token
            try:
                resp = await self.http.post(
                    f"{self.creds.oauth_base.rstrip('/')}/v4/oa/access_token",
                    headers={"secret_key": self.creds.app_secret},
                    data={"refresh_token": row.refresh_token, "app_id": self.creds.app_id,
                          "grant_type": "refresh_token"},
                    timeout=15,
                )
                data = resp.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise RetryLater(f"Zalo token refresh failed: {type(exc).__name__}") from exc
            if not isinstance(data, dict) or not data.get("access_token") or not data.get("refresh_token"):
                reason = data.get("error_description") or data.get("error") if isinstance(data, dict) else data
                log.error("Zalo refused the refresh token (%s): authorise the OA again", reason)
                raise RetryLater(f"Zalo token refresh refused: {reason}")
            expires = utcnow() + dt.timedelta(seconds=int(data.get("expires_in") or 3600))
            access, refresh = str(data["access_token"]), str(data["refresh_token"])

            def save(session: Session) -> None:
                stored = self._load(session)
                stored.access_token, stored.refresh_token, stored.expires_at = access, refresh, expires
                session.commit()

            await self.db.run(save)
            log.info("Zalo access token refreshed")
            self._access, self._expires_at = access, expires
            return access
