"""The gateway's parts wired together for one process: database, Rasa, channels, router, intake, outbox, handoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as redis

from bot import retention
from bot.channels.base import PushChannel
from bot.channels.telegram import Telegram
from bot.channels.telegram_limits import TelegramLimits, for_replicas
from bot.channels.zalo import Zalo
from bot.channels.zalo_tokens import ZaloCredentials
from bot.database import WORKERS as DB_WORKERS
from bot.database import Database
from bot.handoff import STAFF_CHANNEL, Handoff, HandoffConfig
from bot.handoff_telegram import StaffGroup
from bot.http_lanes import HttpLanes
from bot.intake import Intake
from bot.locks import ConversationLocks, LocalLocks, RedisLocks
from bot.notifications import NotificationRelay
from bot.outbox import Outbox
from bot.rasa_client import IN_FLIGHT, RasaClient
from bot.router import Router
from bot.texts import GatewayTexts
from dvcbot.db import create_schema, make_engine
from dvcbot.settings import Settings

log = logging.getLogger(__name__)


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


@dataclass
class Gateway:
    settings: Settings
    db: Database
    http: httpx.AsyncClient
    rasa: RasaClient
    router: Router
    intake: Intake
    outbox: Outbox
    handoff: Handoff
    telegram: Telegram | None = None
    zalo: Zalo | None = None
    workers: list[asyncio.Task[None]] = field(default_factory=list)  # sending and sweeping
    poller: asyncio.Task[None] | None = None  # Telegram long polling


def build_channels(settings: Settings, db: Database, http: httpx.AsyncClient, texts: GatewayTexts,
                   telegram_limits: TelegramLimits | None = None) -> tuple[Telegram | None, Zalo | None]:
    """The push channels whose credentials are configured."""
    telegram = zalo = None
    if settings.telegram_enabled:
        telegram = Telegram(_secret(settings.telegram_token) or "", _secret(settings.telegram_secret),
                            settings.telegram_api_base, db, max_chars=settings.webchat_max_chars,
                            limits=telegram_limits or for_replicas(settings.gateway_replicas))
    if settings.zalo_enabled:
        creds = ZaloCredentials(settings.zalo_app_id or "", _secret(settings.zalo_app_secret) or "",
                                _secret(settings.zalo_access_token), _secret(settings.zalo_refresh_token) or "",
                                settings.zalo_oauth_base)
        zalo = Zalo(creds, _secret(settings.zalo_oa_secret_key) or "", settings.zalo_api_base, db, http, texts,
                    max_chars=settings.webchat_max_chars)
    return telegram, zalo


@asynccontextmanager
async def running_gateway(settings: Settings, telegram_limits: TelegramLimits | None = None
                          ) -> AsyncIterator[Gateway]:
    """Start every part (and the background work: sending, sweeping, polling); stop them on exit.

    ``telegram_limits`` replaces Telegram's flood limits (tests that need many messages in one chat).
    """
    # no pings: Database retries on a dead connection; a connection for each of its workers
    engine = make_engine(settings.database_url, pre_ping=False, pool_size=DB_WORKERS)
    create_schema(engine)
    db = Database(engine, DB_WORKERS)
    # socket timeouts: a Redis that stopped answering fails the locks' calls (the sweep retries) instead of hanging
    redis_client = (redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
                    if settings.redis_url else None)
    locks: ConversationLocks = RedisLocks(redis_client) if redis_client else LocalLocks()
    texts = GatewayTexts.load()
    try:
        # Rasa has lanes of its own (bot.http_lanes): a kept connection for each message that may be in flight
        async with httpx.AsyncClient() as http, HttpLanes(IN_FLIGHT) as rasa_lanes:
            rasa = RasaClient(settings.rasa_url, _secret(settings.rasa_token), settings.rasa_timeout, rasa_lanes,
                              http)
            telegram, zalo = build_channels(settings, db, http, texts, telegram_limits)
            channels: dict[str, PushChannel] = {c.name: c for c in (telegram, zalo) if c is not None}
            outbox = Outbox(db, channels)
            handoff = Handoff(db, texts, outbox, HandoffConfig.from_settings(settings))
            if settings.staff_telegram_group_id is not None:
                if telegram is None:
                    log.error("DVCBOT_STAFF_TELEGRAM_GROUP_ID is set without Telegram: tickets go to the console only")
                else:
                    telegram.staff = StaffGroup(telegram, settings.staff_telegram_group_id, db, handoff)
                    channels[STAFF_CHANNEL] = telegram.staff
            router = Router(db, rasa, texts, outbox, settings.webchat_max_chars, handoff)
            intake = Intake(db, router, locks)
            gw = Gateway(settings, db, http, rasa, router, intake, outbox, handoff, telegram, zalo)
            await _start(gw, single_process=redis_client is None)
            try:
                yield gw
            finally:
                await _stop(gw)
    finally:
        if redis_client:
            await redis_client.aclose()
        engine.dispose()


async def _start(gw: Gateway, single_process: bool) -> None:
    if gw.telegram:
        await gw.telegram.start()
    if single_process:  # no other replica can be sending: leases left behind belong to a dead process
        await gw.outbox.release_leases()
    gw.workers = [asyncio.create_task(gw.outbox.run()), asyncio.create_task(gw.intake.sweep()),
                  asyncio.create_task(gw.handoff.run()),
                  asyncio.create_task(NotificationRelay(gw.db, gw.outbox).run()),
                  asyncio.create_task(retention.run(gw.db, gw.settings.transcript_retention_days,
                                                    gw.settings.inbound_retention_hours))]
    if gw.telegram and gw.settings.telegram_polling:
        gw.poller = asyncio.create_task(gw.telegram.poll(gw.intake))
    elif gw.telegram and gw.settings.telegram_secret is None:
        log.error("DVCBOT_TELEGRAM_SECRET is not set: every Telegram webhook call will be refused")
    pending = await gw.intake.recover()
    if pending:
        log.info("resuming %d conversation(s) with updates left unprocessed", pending)


async def _stop(gw: Gateway) -> None:
    if gw.poller:  # no new updates first
        gw.poller.cancel()
    await gw.intake.close()  # answers being computed still reach the outbox
    for task in gw.workers:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*gw.workers, *([gw.poller] if gw.poller else []), return_exceptions=True)
    await gw.outbox.drain()
    if gw.telegram:
        await gw.telegram.stop()
