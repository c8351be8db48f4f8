"""The gateway's Prometheus metrics, served at ``GET /metrics`` (docs/deploy.md, "Observability").

Two kinds:

- counters and histograms of *this process* (messages in and out, refused and duplicate webhook calls, Rasa calls
  and their errors, outbox sends, end-to-end reply latency, handoff waiting time). Each gateway replica counts its
  own; Prometheus scrapes every replica and ``sum()`` adds them up. Updating one costs a few microseconds and no
  database work.
- gauges of the *whole deployment* read from the database when Prometheus scrapes (outbox backlog, intake queue,
  tickets waiting, the oldest wait). Every replica reports the same values: use ``max()``, not ``sum()``.

No label carries personal data: labels are channels, outcomes, error kinds and ticket states.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from threading import Lock

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.channels.base import RetryLater, Undeliverable
from bot.database import Database
from bot.models import ConsoleSession, InboundUpdate, OutboxEntry, Ticket, utcnow

log = logging.getLogger(__name__)

# seconds: a reply normally takes well under a second; a Rasa timeout or a rate-limited chat takes many
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
WAIT_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0)

MESSAGES_IN = Counter("dvcbot_messages_in", "Updates stored by the intake (redeliveries excluded), per channel",
                      ["channel"])
MESSAGES_OUT = Counter("dvcbot_messages_out", "Messages handed to the platform (push channels: accepted platform "
                       "calls) or stored for the web chat to fetch, per channel", ["channel"])
DUPLICATES = Counter("dvcbot_webhook_duplicates", "Updates recognised as redeliveries (or web chat retries with "
                     "the same client_id) and not processed again, per channel", ["channel"])
REFUSED = Counter("dvcbot_webhook_refused", "Webhook calls and web chat messages answered with a 4xx (bad secret "
                  "or signature, unknown session, bad or oversized input), per channel and status",
                  ["channel", "status"])
RASA_SECONDS = Histogram("dvcbot_rasa_request_seconds", "Duration of calls to Rasa's REST channel, failures "
                         "included", buckets=LATENCY_BUCKETS)
RASA_ERRORS = Counter("dvcbot_rasa_errors", "Messages Rasa could not answer: timeout, unavailable (connection), "
                      "http_error, bad_answer, empty_reply (an action failed behind Rasa)", ["kind"])
REPLY_SECONDS = Histogram("dvcbot_reply_seconds", "End to end: update stored -> first reply stored (web chat) or "
                          "accepted by the platform (push channels), per channel", ["channel"],
                          buckets=LATENCY_BUCKETS)
OUTBOX_SENDS = Counter("dvcbot_outbox_sends", "Outbox send attempts by outcome: sent, retry (429/5xx/network, "
                       "tried again later), failed (refused for good), error (unexpected; tried again later)",
                       ["channel", "outcome"])
PLATFORM_LIMIT_WAIT = Histogram("dvcbot_platform_limit_wait_seconds", "How long a platform call waited for the "
                                "bot's flood limits before it went out (Telegram: 30 calls in any second per bot, "
                                "3 in 3 s per chat, 20 a minute per group), per channel", ["channel"],
                                buckets=LATENCY_BUCKETS)
HANDOFF_WAIT = Histogram("dvcbot_handoff_wait_seconds", "How long a ticket waited before a staff member claimed it "
                         "(first claim; tickets staff opened themselves excluded)", buckets=WAIT_BUCKETS)


def epoch(value: dt.datetime) -> float:
    """Seconds since the epoch of a stored time (SQLite hands back naive datetimes; every stored time is UTC)."""
    return (value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)).timestamp()


def stored(channel: str, duplicate: bool) -> None:
    """The intake stored an update (or recognised a redelivery)."""
    (DUPLICATES if duplicate else MESSAGES_IN).labels(channel).inc()


class _Awaiting:
    """Replies queued for a push channel whose delivery ends an end-to-end measurement: message id -> (channel,
    when the citizen's update was stored). Bounded: a row sent by another replica is never popped here."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._started: OrderedDict[int, tuple[str, float]] = OrderedDict()
        self._lock = Lock()

    def add(self, message_id: int, channel: str, started: float) -> None:
        with self._lock:
            self._started[message_id] = (channel, started)
            while len(self._started) > self.limit:
                self._started.popitem(last=False)

    def pop(self, message_id: int) -> tuple[str, float] | None:
        with self._lock:
            return self._started.pop(message_id, None)


awaiting = _Awaiting()


def replied(channel: str, received_at: dt.datetime | None, first_reply: int | None, queued: bool) -> None:
    """The router stored the replies to an update received at ``received_at``: the web chat's latency ends here;
    a push channel's ends when the outbox delivers ``first_reply`` (:func:`sent`)."""
    if received_at is None or first_reply is None:
        return
    started = epoch(received_at)
    if queued:
        awaiting.add(first_reply, channel, started)
    else:
        REPLY_SECONDS.labels(channel).observe(max(time.time() - started, 0.0))


def pulled(channel: str, count: int) -> None:
    """``count`` visible replies were stored for a channel the client fetches from (the web chat)."""
    if count:
        MESSAGES_OUT.labels(channel).inc(count)


def outcome(error: BaseException | None) -> str:
    """The ``outcome`` label of a platform call that ended with ``error``."""
    if error is None:
        return "sent"
    if isinstance(error, Undeliverable):
        return "failed"
    return "retry" if isinstance(error, RetryLater) else "error"


def sent(channel: str, error: BaseException | None, message_id: int | None = None) -> None:
    """The outbox made one platform call, which ended with ``error`` (``None``: the platform accepted it)."""
    OUTBOX_SENDS.labels(channel, outcome(error)).inc()
    if error is not None:
        return
    MESSAGES_OUT.labels(channel).inc()
    started = awaiting.pop(message_id) if message_id is not None else None
    if started is not None:
        REPLY_SECONDS.labels(started[0]).observe(max(time.time() - started[1], 0.0))


def claimed(opened_at: dt.datetime, now: dt.datetime) -> None:
    """A waiting ticket was claimed for the first time."""
    HANDOFF_WAIT.observe(max(epoch(now) - epoch(opened_at), 0.0))


# --- requests refused ----------------------------------------------------------------------------------------

REFUSABLE = {"/webhooks/telegram": "telegram", "/webhooks/zalo": "zalo", "/api/webchat/messages": "webchat"}


class RefusedCounter:
    """ASGI middleware: counts 4xx answers to the webhooks and to web chat messages (other paths pass untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        channel = REFUSABLE.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if channel is None:
            await self.app(scope, receive, send)
            return

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and 400 <= message["status"] < 500:
                REFUSED.labels(channel, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, watch)


# --- the deployment's state, read at scrape time --------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    outbox: dict[str, tuple[int, float]]  # channel -> (pending rows, age of the oldest in seconds)
    intake_pending: int
    intake_oldest: float
    intake_failed: int
    tickets: dict[str, int]  # waiting / claimed
    oldest_waiting: float
    console_sessions: int


def _age(now: dt.datetime, oldest: dt.datetime | None) -> float:
    return max(epoch(now) - epoch(oldest), 0.0) if oldest is not None else 0.0


def snapshot(session: Session, channels: Iterable[str]) -> Snapshot:
    """One cheap query per figure, each on an index's leading columns (``ix_outbox_pending``,
    ``ix_inbound_updates_pending``, ``ix_tickets_status``), scanning only the rows in the state counted."""
    now = utcnow()
    outbox = {}
    for channel in channels:
        count, oldest = session.execute(
            select(func.count(), func.min(OutboxEntry.created_at))
            .where(OutboxEntry.channel == channel, OutboxEntry.status == "pending")
        ).one()
        outbox[channel] = (int(count), _age(now, oldest))
    pending, oldest_in = session.execute(
        select(func.count(), func.min(InboundUpdate.received_at)).where(InboundUpdate.status == "pending")).one()
    failed = session.scalar(select(func.count()).where(InboundUpdate.status == "failed")) or 0
    tickets = {}
    for status in ("waiting", "claimed"):
        tickets[status] = int(session.scalar(select(func.count()).where(Ticket.status == status)) or 0)
    oldest_ticket = session.scalar(select(func.min(Ticket.opened_at)).where(Ticket.status == "waiting"))
    logins = session.scalar(select(func.count()).where(ConsoleSession.expires_at > now)) or 0
    return Snapshot(outbox, int(pending), _age(now, oldest_in), int(failed), tickets, _age(now, oldest_ticket),
                    int(logins))


def families(snap: Snapshot | None) -> Iterator[Metric]:
    """The gauges of a snapshot (``None``: the database could not be read)."""
    up = GaugeMetricFamily("dvcbot_database_up", "1 when the gauges below could be read from the database")
    up.add_metric([], 0.0 if snap is None else 1.0)
    yield up
    if snap is None:
        return
    scope = " (whole deployment: the same on every replica)"
    backlog = GaugeMetricFamily("dvcbot_outbox_pending", "Outbox rows not yet sent, per channel" + scope,
                                labels=["channel"])
    age = GaugeMetricFamily("dvcbot_outbox_oldest_pending_seconds", "Age of the oldest unsent outbox row, per "
                            "channel (0: none)" + scope, labels=["channel"])
    for channel, (count, oldest) in sorted(snap.outbox.items()):
        backlog.add_metric([channel], count)
        age.add_metric([channel], oldest)
    yield backlog
    yield age
    yield GaugeMetricFamily("dvcbot_intake_pending", "Updates stored but not processed yet" + scope,
                            value=snap.intake_pending)
    yield GaugeMetricFamily("dvcbot_intake_oldest_pending_seconds", "Age of the oldest unprocessed update (0: none)"
                            + scope, value=snap.intake_oldest)
    yield GaugeMetricFamily("dvcbot_intake_failed", "Updates given up after repeated failures, kept for inspection "
                            "until the retention purge" + scope, value=snap.intake_failed)
    tickets = GaugeMetricFamily("dvcbot_handoff_tickets", "Handoff tickets waiting for staff or being handled"
                                + scope, labels=["status"])
    for status, count in snap.tickets.items():
        tickets.add_metric([status], count)
    yield tickets
    yield GaugeMetricFamily("dvcbot_handoff_oldest_waiting_seconds", "How long the longest-waiting ticket has "
                            "waited (0: none)" + scope, value=snap.oldest_waiting)
    yield GaugeMetricFamily("dvcbot_console_sessions", "Web console logins not expired" + scope,
                            value=snap.console_sessions)


class _Families:
    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> list[Metric]:
        return self.metrics


def authorized(request: Request, token: str | None) -> bool:
    """No token configured: open. Otherwise ``Authorization: Bearer <token>``."""
    if token is None:
        return True
    given = request.headers.get("authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


async def endpoint(request: Request) -> Response:
    """``GET /metrics``: this process's counters, then the deployment's gauges."""
    state = request.app.state
    token = state.settings.metrics_token
    if not authorized(request, token.get_secret_value() if token is not None else None):
        return PlainTextResponse("unauthorized\n", status_code=401, headers={"WWW-Authenticate": "Bearer"})
    db: Database = state.db
    channels = sorted(state.outbox.channels)
    snap: Snapshot | None
    try:
        snap = await db.run(lambda s: snapshot(s, channels))
    except Exception as exc:  # the process's own metrics are still worth having
        log.warning("metrics: could not read the database: %s", type(exc).__name__)
        snap = None
    body = generate_latest(REGISTRY) + generate_latest(_Families(families(snap)))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
