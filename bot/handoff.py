"""Human handoff: a conversation goes ``bot → waiting → staff → bot``, with a ticket for staff in between.

The mode lives on the :class:`~bot.models.Conversation` row and the router reads it: in ``bot`` mode a message goes
to Rasa, in ``waiting``/``staff`` mode it is stored and relayed to the staff side instead (Rasa is never paused,
so its tracker keeps the conversation's context for when the bot takes over again). An action asks for a person
with the custom payload ``{"handoff": {"reason": ..., "procedure": ..., "procedure_name": ...}}``.

Every change happens in one transaction that starts by locking the conversation row (``UPDATE … SET mode =
mode``: a row lock on PostgreSQL, the write lock on SQLite), then compares-and-sets the ticket's status — so of two
staff members who claim at once exactly one wins and the other is told who did, and a citizen's message can never
be relayed into a ticket that was closed a moment before. Messages for the citizen go to the transcript and the
outbox in that same transaction; messages for the Telegram staff group go to the outbox as ``tgstaff`` rows that
:mod:`bot.handoff_telegram` delivers into the ticket's forum topic. The web console reads the same tables.

A background task applies the rules a team needs: the citizen is told honestly when a ticket stays unclaimed (or
when staff went home), staff are reminded of unclaimed tickets, and a claimed ticket whose citizen went silent
closes itself. Each of those is a compare-and-set too, so several gateway replicas do each once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot import metrics
from bot.channels.base import POST_OFFICE_INTENT, Button, IncomingMessage, OutgoingMessage
from bot.database import Database
from bot.handoff_hours import WorkingHours
from bot.models import (
    Conversation,
    Message,
    OutboxEntry,
    StaffMember,
    Ticket,
    TicketEvent,
    finish_inbound,
    utcnow,
)
from bot.outbox import Outbox
from bot.texts import GatewayTexts
from dvcbot.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

STAFF_CHANNEL = "tgstaff"  # the Telegram staff group: inbound updates and outbox rows
HANDOFF_INTENT = "/human_handoff"
CANCEL = "/handoff_cancel"
KEEP_WAITING = "/handoff_wait"
RATE = "/handoff_rate_"
CANCEL_WORDS = {"thoi", "huy", "huy bo", "huy yeu cau", "thoi khoi", "thoi a", "thoi khong can", "khong can nua",
                "thoi khong can nua", "khong can nua a", "thoi khong gap nua", "thoi em", "thoi khong cho nua",
                "khong cho nua", "cancel"}
RATING_TEXT = re.compile(r"^\s*([1-5])\s*(sao|diem|\*|⭐)?\s*$")
ACK_EVERY = dt.timedelta(minutes=3)  # a waiting citizen hears "noted" at most this often
ACTIVE = ("waiting", "claimed")
HANDLING_ROLES = ("staff", "supervisor")


def fold(text: str) -> str:
    """Lower case without diacritics or punctuation: ``"Thôi, hủy!"`` → ``"thoi huy"``."""
    decomposed = unicodedata.normalize("NFD", text.lower().replace("đ", "d"))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w\s]", " ", bare).split())


def is_cancel(text: str) -> bool:
    return text == CANCEL or fold(text) in CANCEL_WORDS


def rating_of(text: str) -> int | None:
    """The 1–5 rating a message gives: a rating button's payload, or a bare digit."""
    if text.startswith(RATE):
        tail = text.removeprefix(RATE)
        return int(tail) if tail in {"1", "2", "3", "4", "5"} else None
    match = RATING_TEXT.match(fold(text) if not text.strip().isdigit() else text)
    return int(match.group(1)) if match else None


class Refused(Exception):
    """A staff action that cannot be done (the ticket is not theirs, is closed, …); the message says why."""


@dataclass(frozen=True)
class ClaimResult:
    won: bool
    holder: str | None  # who has it (the winner's name), when the claim was lost
    status: str


@dataclass(frozen=True)
class HandoffConfig:
    hours: WorkingHours
    unclaimed_after: float  # minutes of working time
    remind_every: float
    silence_after: float
    default_wait: float
    transcript_lines: int
    check_every: float  # seconds
    staff_group: int | None

    @classmethod
    def from_settings(cls, settings: Settings) -> HandoffConfig:
        hours = WorkingHours.parse(settings.handoff_hours, settings.handoff_holidays, settings.handoff_timezone)
        return cls(hours, settings.handoff_unclaimed_minutes, settings.handoff_remind_minutes,
                   settings.handoff_silence_minutes, settings.handoff_default_wait_minutes,
                   settings.handoff_transcript_lines, settings.handoff_check_seconds, settings.staff_telegram_group_id)


def lock_conversation(session: Session, conversation_id: int) -> Conversation:
    """Lock the conversation row for the rest of the transaction and return it, fresh."""
    session.execute(update(Conversation).where(Conversation.id == conversation_id)
                    .values(mode=Conversation.mode))
    conv = session.get(Conversation, conversation_id, populate_existing=True)
    assert conv is not None
    return conv


def active_ticket(session: Session, conversation_id: int) -> Ticket | None:
    return session.scalar(select(Ticket).where(Ticket.conversation_id == conversation_id,
                                               Ticket.status.in_(ACTIVE)).order_by(Ticket.id.desc()).limit(1)
                          .execution_options(populate_existing=True))


def rating_ticket(session: Session, conversation_id: int) -> Ticket | None:
    """The ticket whose rating the citizen was asked for and has not given or skipped yet."""
    return session.scalar(select(Ticket).where(Ticket.conversation_id == conversation_id,
                                               Ticket.rating_state == "asked").order_by(Ticket.id.desc()).limit(1))


def position(session: Session, ticket: Ticket) -> int:
    """The ticket's place in the queue (1 = next)."""
    return int(session.scalar(select(func.count()).where(Ticket.status == "waiting", Ticket.id <= ticket.id))
               or 1)


def citizen_name(conv: Conversation, texts: GatewayTexts) -> str:
    if conv.display_name:
        return conv.display_name
    return f"{texts.label('citizen')} {texts.label('channels', conv.channel)} …{conv.user_id[-4:]}"


class Handoff:
    """Tickets, the queue and the relay between a citizen and staff (Telegram staff group and web console)."""

    def __init__(self, db: Database, texts: GatewayTexts, outbox: Outbox | None, config: HandoffConfig,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.db = db
        self.texts = texts
        self.outbox = outbox
        self.config = config
        self.clock = clock

    @property
    def topics(self) -> bool:
        """Whether tickets are posted to a Telegram staff group."""
        return self.config.staff_group is not None and self.outbox is not None \
            and STAFF_CHANNEL in self.outbox.channels

    def _notify(self) -> None:
        if self.outbox:
            self.outbox.notify()

    # --- routing (called by the router) ---------------------------------------------------------------------

    def handles(self, mode: str, rating_pending: bool, msg: IncomingMessage) -> bool:
        """Whether the gateway answers ``msg`` itself instead of Rasa."""
        if msg.text.startswith(("/handoff_",)):
            return True
        if mode == "waiting":
            return msg.text != POST_OFFICE_INTENT  # the bot still finds post offices while the citizen waits
        if mode == "staff":
            return True
        return rating_pending and rating_of(msg.text) is not None

    @staticmethod
    def request_in(replies: list[OutgoingMessage]) -> dict[str, Any] | None:
        """The handoff request among Rasa's replies (the action's custom payload), if any."""
        for reply in replies:
            request = (reply.custom or {}).get("handoff")
            if isinstance(request, dict):
                return request
        return None

    def after_bot(self, session: Session, conv: Conversation, replies: list[OutgoingMessage],
                  rating_pending: bool = True) -> list[OutgoingMessage]:
        """After Rasa answered: a pending rating is skipped; a handoff request opens a ticket.

        ``rating_pending=False`` says that no rating was pending when the message arrived, in ``bot`` mode; none can
        have been asked for since (only closing a ticket asks, and the conversation had none open), so it is not
        looked up again."""
        if rating_pending:
            pending = rating_ticket(session, conv.id)
            if pending is not None:
                pending.rating_state = "skipped"
        request = self.request_in(replies)
        if request is None:
            return []
        conv = lock_conversation(session, conv.id)
        return self._open(session, conv, request)

    def on_citizen(self, session: Session, conv: Conversation, msg: IncomingMessage, max_chars: int = 2000
                   ) -> list[OutgoingMessage]:
        """A citizen's message the gateway handles (``waiting``/``staff`` mode, ratings, handoff buttons)."""
        conv = lock_conversation(session, conv.id)
        now = self.clock()
        text = msg.text
        ticket = active_ticket(session, conv.id)
        rating = rating_of(text)
        if ticket is None:
            conv.mode = "bot"  # repairs a mode left behind without a ticket
            pending = rating_ticket(session, conv.id)
            if pending is not None and rating is not None:
                return self._rate(session, pending, rating)
            return [self.texts.message("handoff_stale")]
        if ticket.status == "waiting":
            if is_cancel(text):
                return self._cancel(session, conv, ticket, now)
            if text == KEEP_WAITING:
                return [self.texts.message("handoff_keep_waiting", position=position(session, ticket))]
            if text.startswith("/handoff_"):
                return [self.texts.message("handoff_stale")]
        # with a person on it, an old button is relayed as what the citizen saw; staff decide what it means
        if msg.notice == "start" or text == HANDOFF_INTENT:
            return self._status(session, ticket)
        ticket.last_citizen_at = now
        replies = self.texts.messages(msg.notice, limit=max_chars) if msg.notice else []
        name = citizen_name(conv, self.texts)
        self._to_topic(session, ticket, self.texts.message("staff_citizen_says", name=name,
                                                           text=msg.transcript_text).text or "")
        if ticket.status == "waiting" and not replies and (ticket.acked_at is None or now - _aware(
                ticket.acked_at) >= ACK_EVERY):
            ticket.acked_at = now
            replies = [self.texts.message("handoff_still_queued", ticket=ticket.id,
                                          position=position(session, ticket))]
        return replies

    # --- opening, the queue, the expected wait ----------------------------------------------------------------

    def _open(self, session: Session, conv: Conversation, request: dict[str, Any]) -> list[OutgoingMessage]:
        now = self.clock()
        existing = active_ticket(session, conv.id)
        if existing is not None:
            return self._status(session, existing)
        reason = str(request.get("reason") or "human_handoff")[:30]
        procedure = request.get("procedure")
        procedure_name = request.get("procedure_name")
        hours = self.config.hours
        ticket = Ticket(
            conversation_id=conv.id, status="waiting", reason=reason, channel=conv.channel,
            display_name=citizen_name(conv, self.texts)[:200],
            procedure_id=str(procedure)[:80] if procedure else None,
            procedure_name=str(procedure_name)[:300] if procedure_name else None,
            last_messages=self._recent(session, conv.id), opened_at=now,
            opened_message_id=session.scalar(select(func.max(Message.id)).where(Message.conversation_id == conv.id)),
            out_of_hours=not hours.is_open(now), last_citizen_at=now, acked_at=now,
        )
        session.add(ticket)
        session.flush()
        conv.mode = "waiting"
        self._event(session, ticket, "opened", detail=reason)
        self._post_summary(session, ticket)
        replies = [self.texts.message("handoff_complaint")] if reason == "complaint" else []
        return [*replies, self._queued(session, ticket, now)]

    def _queued(self, session: Session, ticket: Ticket, now: dt.datetime) -> OutgoingMessage:
        hours = self.config.hours
        place = position(session, ticket)
        wait = self.expected_wait(session, place)
        next_open = hours.next_open(now)
        when = hours.when(next_open, now) if next_open else self.texts.label("next_open_unknown")
        if not hours.is_open(now):
            return self.texts.message("handoff_queued_closed", ticket=ticket.id, hours=hours.describe(),
                                      next_open=when)
        closes = hours.closes_at(now)
        if closes is not None and closes - now < dt.timedelta(minutes=wait):
            after = hours.next_open(closes)
            return self.texts.message("handoff_queued_late", ticket=ticket.id, position=place,
                                      closes=f"{closes:%H:%M}",
                                      next_open=hours.when(after, now) if after else
                                      self.texts.label("next_open_unknown"))
        return self.texts.message("handoff_queued", ticket=ticket.id, position=place, wait=wait)

    def _status(self, session: Session, ticket: Ticket) -> list[OutgoingMessage]:
        if ticket.status == "claimed":
            return [self.texts.message("handoff_in_progress")]
        return [self.texts.message("handoff_still_queued", ticket=ticket.id, position=position(session, ticket))]

    def expected_wait(self, session: Session, place: int) -> int:
        """Minutes until a staff member answers, from the last week: the average wait of claimed tickets,
        plus, for each ticket ahead, the average handling time shared among the staff at work lately."""
        now = self.clock()
        hours = self.config.hours
        recent = session.execute(
            select(Ticket.opened_at, Ticket.claimed_at, Ticket.closed_at, Ticket.claimed_by)
            .where(Ticket.claimed_at.is_not(None), Ticket.claimed_at >= now - dt.timedelta(days=7))
            .order_by(Ticket.claimed_at.desc()).limit(50)
        ).all()
        waits = [hours.open_minutes(_aware(o), _aware(c)) for o, c, _, _ in recent if c is not None]
        handled = [(_aware(d) - _aware(c)).total_seconds() / 60 for _, c, d, _ in recent
                   if c is not None and d is not None]
        wait = sum(waits) / len(waits) if len(waits) >= 3 else self.config.default_wait
        handle = sum(handled) / len(handled) if len(handled) >= 3 else self.config.default_wait
        lately = now - dt.timedelta(hours=2)
        staff = len({by for _, c, _, by in recent if by is not None and c is not None and _aware(c) >= lately}) or 1
        return max(1, math.ceil(wait + (place - 1) * handle / staff))

    def _recent(self, session: Session, conversation_id: int) -> list[dict[str, Any]]:
        rows = session.scalars(select(Message).where(Message.conversation_id == conversation_id)
                               .order_by(Message.id.desc()).limit(self.config.transcript_lines)).all()
        return [{"sender": r.sender, "text": (r.text or "")[:500], "at": _aware(r.created_at).isoformat()
                 if r.created_at else None} for r in reversed(rows)]

    # --- citizen's side -----------------------------------------------------------------------------------

    def _cancel(self, session: Session, conv: Conversation, ticket: Ticket, now: dt.datetime
                ) -> list[OutgoingMessage]:
        self._close(session, conv, ticket, now, "citizen", None)
        self._to_topic(session, ticket, self.texts.message("staff_cancelled", ticket=ticket.id).text or "")
        self._close_topic(session, ticket)
        return [self.texts.message("handoff_cancelled")]  # the router stores it: the transcript's end is open

    def _rate(self, session: Session, ticket: Ticket, rating: int) -> list[OutgoingMessage]:
        ticket.rating, ticket.rating_state = rating, "given"
        self._event(session, ticket, "rated", detail=str(rating))
        self._to_topic(session, ticket, self.texts.message("staff_rated", ticket=ticket.id, rating=rating).text
                       or "")
        return [self.texts.message("handoff_rated")]

    def _close(self, session: Session, conv: Conversation, ticket: Ticket, now: dt.datetime, reason: str,
               staff_id: int | None) -> None:
        ticket.status = "cancelled" if ticket.status == "waiting" else "closed"
        ticket.closed_at, ticket.close_reason = now, reason
        conv.mode = "bot"
        self._event(session, ticket, ticket.status, staff_id, reason)

    # --- staff actions (web console and Telegram) ------------------------------------------------------------

    async def claim(self, ticket_id: int, staff_id: int, via: str = "console") -> ClaimResult:
        """Claim a waiting ticket; of concurrent claims exactly one wins, the others learn who did."""
        return await self._run(functools.partial(self.claim_in, ticket_id=ticket_id, staff_id=staff_id, via=via))

    async def reply(self, ticket_id: int, staff_id: int, text: str, via: str = "console") -> int:
        """Send ``text`` to the citizen of a ticket this staff member holds; returns the transcript line's id."""
        return await self._run(functools.partial(self.reply_in, ticket_id=ticket_id, staff_id=staff_id, text=text,
                                                 via=via))

    async def end(self, ticket_id: int, staff_id: int, via: str = "console") -> None:
        await self._run(functools.partial(self.end_in, ticket_id=ticket_id, staff_id=staff_id, via=via))

    async def transfer(self, ticket_id: int, staff_id: int, to_staff_id: int | None) -> None:
        """Hand a held ticket to another staff member, or back to the queue (``to_staff_id`` ``None``)."""
        await self._run(functools.partial(self.transfer_in, ticket_id=ticket_id, staff_id=staff_id,
                                          to_staff_id=to_staff_id))

    async def take_over(self, conversation_id: int, staff_id: int) -> int:
        """A staff member takes a conversation over on their own; returns the new ticket's id."""
        return await self._run(functools.partial(self.take_over_in, conversation_id=conversation_id,
                                                 staff_id=staff_id))

    async def _run(self, fn: Callable[[Session], T]) -> T:
        """``fn`` in one transaction, committed unless it raises (``Refused`` included); then wake the outbox."""

        def work(session: Session) -> T:
            value = fn(session)
            session.commit()
            return value

        result = await self.db.run(work)
        self._notify()
        return result

    def _staff(self, session: Session, staff_id: int) -> StaffMember:
        staff = session.get(StaffMember, staff_id)
        if staff is None or not staff.active or staff.role not in HANDLING_ROLES:
            raise Refused("Tài khoản này không được xử lý phiếu.")
        return staff

    def _locked_ticket(self, session: Session, ticket_id: int) -> tuple[Conversation, Ticket]:
        conversation_id = session.scalar(select(Ticket.conversation_id).where(Ticket.id == ticket_id))
        if conversation_id is None:
            raise Refused(f"Không có phiếu #{ticket_id}.")
        conv = lock_conversation(session, conversation_id)
        ticket = session.get(Ticket, ticket_id, populate_existing=True)
        assert ticket is not None
        return conv, ticket

    def claim_in(self, session: Session, ticket_id: int, staff_id: int, via: str) -> ClaimResult:
        staff = self._staff(session, staff_id)
        conv, before = self._locked_ticket(session, ticket_id)
        first_claim = before.claimed_at is None and before.reason != "staff"  # a take-over waited for nobody
        now = self.clock()
        won = session.execute(
            update(Ticket).where(Ticket.id == ticket_id, Ticket.status == "waiting")
            .values(status="claimed", claimed_by=staff.id, claimed_at=func.coalesce(Ticket.claimed_at, now),
                    last_staff_at=now)
        ).rowcount == 1  # type: ignore[attr-defined]
        ticket = session.get(Ticket, ticket_id, populate_existing=True)
        assert ticket is not None
        if not won:
            holder = session.get(StaffMember, ticket.claimed_by) if ticket.claimed_by else None
            holder_name = holder.display_name if holder else None
            if via == "telegram":
                key = "staff_claim_lost" if ticket.status == "claimed" else "staff_claim_closed"
                self._to_topic(session, ticket, self.texts.message(key, staff=staff.display_name, ticket=ticket.id,
                                                                    holder=holder_name or "").text or "")
            return ClaimResult(False, holder_name, ticket.status)
        conv.mode = "staff"
        if first_claim:
            metrics.claimed(ticket.opened_at, now)
        self._event(session, ticket, "claimed", staff.id, via)
        self._to_citizen(session, conv, [self.texts.message("handoff_claimed", staff=staff.display_name)])
        self._to_topic(session, ticket, self.texts.message("staff_claimed", staff=staff.display_name,
                                                           ticket=ticket.id).text or "",
                       [(self.texts.label("end_button"), f"hs:end:{ticket.id}")])
        return ClaimResult(True, staff.display_name, ticket.status)

    def _held(self, session: Session, ticket_id: int, staff: StaffMember) -> tuple[Conversation, Ticket]:
        conv, ticket = self._locked_ticket(session, ticket_id)
        if ticket.status != "claimed":
            raise Refused(f"Phiếu #{ticket_id} không còn mở." if ticket.status != "waiting"
                          else f"Phiếu #{ticket_id} chưa được nhận.")
        if ticket.claimed_by != staff.id and staff.role != "supervisor":
            raise Refused(f"Phiếu #{ticket_id} do nhân viên khác xử lý.")
        return conv, ticket

    def reply_in(self, session: Session, ticket_id: int, staff_id: int, text: str, via: str) -> int:
        text = text.strip()
        if not text:
            raise Refused("Tin nhắn trống.")
        staff = self._staff(session, staff_id)
        conv, ticket = self._held(session, ticket_id, staff)
        ticket.last_staff_at = self.clock()
        push = self.texts.message("staff_reply", staff=staff.display_name, text=text)
        row = Message(conversation_id=conv.id, direction="out", sender="staff", text=text,
                      payload={"staff": staff.display_name})
        session.add(row)
        session.flush()
        if self.outbox:
            self.outbox.add(session, conv, [(OutgoingMessage(text=push.text, sender="staff"), row)])
        if via != "telegram":
            self._to_topic(session, ticket, self.texts.message("staff_console_reply", staff=staff.display_name,
                                                               text=text).text or "")
        return row.id

    def end_in(self, session: Session, ticket_id: int, staff_id: int, via: str) -> None:
        staff = self._staff(session, staff_id)
        conv, ticket = self._held(session, ticket_id, staff)
        self._close(session, conv, ticket, self.clock(), "staff", staff.id)
        ticket.rating_state = "asked"
        self._to_citizen(session, conv, [self.texts.message("handoff_ended")])
        self._seal(session, ticket)
        self._to_topic(session, ticket, self.texts.message("staff_ended", ticket=ticket.id,
                                                           staff=staff.display_name).text or "")
        self._close_topic(session, ticket)

    def transfer_in(self, session: Session, ticket_id: int, staff_id: int, to_staff_id: int | None) -> None:
        staff = self._staff(session, staff_id)
        conv, ticket = self._held(session, ticket_id, staff)
        ticket.transfers += 1
        if to_staff_id is None:
            ticket.status, ticket.claimed_by = "waiting", None
            conv.mode = "waiting"
            self._event(session, ticket, "requeued", staff.id)
            self._to_citizen(session, conv, [self.texts.message("handoff_requeued",
                                                                position=position(session, ticket))])
            self._to_topic(session, ticket, self.texts.message("staff_requeued", staff=staff.display_name,
                                                               ticket=ticket.id).text or "",
                           [(self.texts.label("claim_button"), f"hs:claim:{ticket.id}")])
            return
        target = self._staff(session, to_staff_id)
        ticket.claimed_by = target.id
        self._event(session, ticket, "transferred", staff.id, target.username)
        self._to_citizen(session, conv, [self.texts.message("handoff_transferred", staff=target.display_name)])
        self._to_topic(session, ticket, self.texts.message("staff_transferred", staff=staff.display_name,
                                                           ticket=ticket.id, target=target.display_name).text or "")

    def take_over_in(self, session: Session, conversation_id: int, staff_id: int) -> int:
        staff = self._staff(session, staff_id)
        if session.get(Conversation, conversation_id) is None:
            raise Refused(f"Không có cuộc trò chuyện #{conversation_id}.")
        conv = lock_conversation(session, conversation_id)
        if active_ticket(session, conv.id) is not None:
            raise Refused("Cuộc trò chuyện này đã có phiếu đang mở.")
        replies = self._open(session, conv, {"reason": "staff"})
        del replies  # the citizen hears from the staff member instead of the queue
        ticket = active_ticket(session, conv.id)
        assert ticket is not None
        result = self.claim_in(session, ticket.id, staff.id, "console")
        assert result.won
        return ticket.id

    # --- the Telegram staff group -------------------------------------------------------------------------

    async def staff_update(self, inbound_id: int, msg: IncomingMessage) -> None:
        """A message or button press in the staff group (already stored by the intake); once only."""
        await self.db.run(lambda s: self._staff_update(s, inbound_id, msg))
        self._notify()

    def _staff_update(self, session: Session, inbound_id: int, msg: IncomingMessage) -> None:
        if not finish_inbound(session, inbound_id):
            session.rollback()  # processed meanwhile by another replica
            return
        sender = msg.metadata.get("from")
        staff = session.scalar(select(StaffMember).where(StaffMember.telegram_user_id == sender)) \
            if isinstance(sender, int) else None
        if staff is None or not staff.active or staff.role not in HANDLING_ROLES:
            log.info("staff group: ignored a message from unregistered Telegram user %s", sender)
            session.commit()
            return
        text = msg.text.strip()
        staff_name = staff.display_name
        ticket_id: int | None = None
        try:
            if msg.metadata.get("callback"):
                verb, _, ticket_ref = text.removeprefix("hs:").partition(":")
                if ticket_ref.isdigit():
                    ticket_id = int(ticket_ref)
                    self._staff_command(session, staff, verb, ticket_id, "")
            else:
                thread = int(msg.user_id) if msg.user_id.lstrip("-").isdigit() else 0
                ticket_id = session.scalar(select(Ticket.id).where(Ticket.topic_id == thread)
                                           .order_by(Ticket.id.desc()).limit(1)) if thread else None
                if ticket_id is not None:
                    command = text.split(maxsplit=1)[0].split("@")[0].lower() if text.startswith("/") else ""
                    verb = {"/xong": "end", "/nhan": "claim", "/chuyen": "requeue"}.get(command, "say")
                    self._staff_command(session, staff, verb, ticket_id, text)
        except Refused as exc:
            session.rollback()
            log.info("staff group: %s", exc)
            if not finish_inbound(session, inbound_id):
                session.rollback()
                return
            ticket = session.get(Ticket, ticket_id) if ticket_id is not None else None
            if ticket is not None:  # say why in the topic, so the staff member is not left guessing
                self._to_topic(session, ticket, f"⚠️ {staff_name}: {exc}")
        session.commit()

    def _staff_command(self, session: Session, staff: StaffMember, verb: str, ticket_id: int, text: str) -> None:
        if verb == "claim":
            self.claim_in(session, ticket_id, staff.id, "telegram")
        elif verb == "end":
            self.end_in(session, ticket_id, staff.id, "telegram")
        elif verb == "requeue":  # "/chuyen": back to the queue; "/chuyen minh": to that colleague
            target = text.split(maxsplit=1)[1].strip().lstrip("@").lower() if " " in text.strip() else ""
            to_id = session.scalar(select(StaffMember.id).where(StaffMember.username == target)) if target else None
            if target and to_id is None:
                raise Refused(f"Không có nhân viên có tên đăng nhập “{target}”.")
            self.transfer_in(session, ticket_id, staff.id, to_id)
        elif verb == "say":
            ticket = session.get(Ticket, ticket_id)
            assert ticket is not None
            if ticket.status == "waiting":
                self._to_topic(session, ticket, self.texts.message("staff_not_claimed", ticket=ticket.id).text
                               or "")
            elif ticket.status == "claimed" and ticket.claimed_by == staff.id:
                self.reply_in(session, ticket_id, staff.id, text, "telegram")

    # --- what goes out -------------------------------------------------------------------------------------

    def _to_citizen(self, session: Session, conv: Conversation, replies: list[OutgoingMessage]) -> None:
        rows = [Message(conversation_id=conv.id, direction="out", sender=r.sender, text=r.text,
                        payload=r.payload_dict()) for r in replies]
        session.add_all(rows)
        session.flush()
        if self.outbox:
            self.outbox.add(session, conv, list(zip(replies, rows, strict=True)))

    def _to_topic(self, session: Session, ticket: Ticket, text: str,
                  buttons: list[tuple[str, str]] | None = None) -> None:
        if not self.topics or not text:
            return
        body: dict[str, Any] = {"ticket": ticket.id, "text": text[:4000]}
        if buttons:
            body["keyboard"] = [{"text": title, "data": data} for title, data in buttons]
        session.add(OutboxEntry(channel=STAFF_CHANNEL, conversation_id=ticket.conversation_id,
                                recipient=str(self.config.staff_group), body=body))

    def _close_topic(self, session: Session, ticket: Ticket) -> None:
        if self.topics:
            session.add(OutboxEntry(channel=STAFF_CHANNEL, conversation_id=ticket.conversation_id,
                                    recipient=str(self.config.staff_group), body={"ticket": ticket.id, "close": True}))

    def summary(self, ticket: Ticket) -> str:
        """The ticket as staff first see it: who, why, which procedure, the recent messages."""
        labels = {"citizen": "👤", "bot": "🤖", "system": "🤖", "staff": "🧑‍💼"}
        lines = [f"{labels.get(m.get('sender', ''), '•')} {_short(str(m.get('text') or ''))}"
                 for m in ticket.last_messages]
        opened = _aware(ticket.opened_at).astimezone(self.config.hours.tz)
        return self.texts.message(
            "staff_ticket_summary", ticket=ticket.id, channel=self.texts.label("channels", ticket.channel),
            name=ticket.display_name, reason=self.texts.label("reasons", ticket.reason),
            procedure=ticket.procedure_name or ticket.procedure_id or self.texts.label("no_procedure"),
            opened=f"{opened:%H:%M %d/%m}", out_of_hours=self.texts.label("out_of_hours") if ticket.out_of_hours
            else "", transcript="\n".join(lines) or "—").text or ""

    def topic_title(self, ticket: Ticket) -> str:
        subject = ticket.procedure_name or self.texts.label("reasons", ticket.reason)
        return f"#{ticket.id} · {self.texts.label('channels', ticket.channel)} · {subject}"[:128]

    def _post_summary(self, session: Session, ticket: Ticket) -> None:
        self._to_topic(session, ticket, self.summary(ticket),
                       [(self.texts.label("claim_button"), f"hs:claim:{ticket.id}")])

    @staticmethod
    def _seal(session: Session, ticket: Ticket) -> None:
        """Mark where the closed ticket's transcript ends (the console shows nothing after it)."""
        session.flush()
        ticket.closed_message_id = session.scalar(
            select(func.max(Message.id)).where(Message.conversation_id == ticket.conversation_id))

    @staticmethod
    def _event(session: Session, ticket: Ticket, kind: str, staff_id: int | None = None,
               detail: str | None = None) -> None:
        session.add(TicketEvent(ticket_id=ticket.id, kind=kind, staff_id=staff_id, detail=detail))

    # --- the rules over time ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Apply the timers every ``check_every`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.config.check_every)
            try:
                await self.tick()
            except Exception:
                log.exception("handoff timers failed")

    async def tick(self) -> None:
        """Tell waiting citizens, remind staff, close silent tickets (each at most once, whatever the replicas)."""
        ids = await self.db.run(lambda s: list(s.execute(
            select(Ticket.id, Ticket.status).where(Ticket.status.in_(ACTIVE)).order_by(Ticket.id)).all()))
        for ticket_id, status in ids:
            work = self._waiting_rules if status == "waiting" else self._silence_rule
            await self.db.run(lambda s, t=ticket_id, w=work: w(s, t))  # type: ignore[misc]
        if ids:
            self._notify()

    def _waiting_rules(self, session: Session, ticket_id: int) -> None:
        conv, ticket = self._locked_ticket(session, ticket_id)
        if ticket.status != "waiting":
            session.rollback()
            return
        now, hours = self.clock(), self.config.hours
        opened = _aware(ticket.opened_at)
        waited = hours.open_minutes(opened, now)
        if ticket.citizen_notified_at is None:
            if hours.is_open(now) and waited >= self.config.unclaimed_after:
                place = position(session, ticket)
                self._to_citizen(session, conv, [self.texts.message(
                    "handoff_unclaimed", ticket=ticket.id, position=place,
                    wait=self.expected_wait(session, place))])
                ticket.citizen_notified_at = now
            elif not hours.is_open(now) and not ticket.out_of_hours:
                next_open = hours.next_open(now)
                self._to_citizen(session, conv, [self.texts.message(
                    "handoff_closed_now", ticket=ticket.id, hours=hours.describe(),
                    next_open=hours.when(next_open, now) if next_open else self.texts.label("next_open_unknown"))])
                ticket.citizen_notified_at = now
        since = _aware(ticket.reminded_at) if ticket.reminded_at else opened
        if hours.is_open(now) and hours.open_minutes(since, now) >= self.config.remind_every:
            ticket.reminded_at = now
            self._event(session, ticket, "reminded", detail=f"{waited:.0f}")
            self._to_topic(session, ticket, self.texts.message("staff_reminder", ticket=ticket.id,
                                                               minutes=f"{waited:.0f}").text or "",
                           [(self.texts.label("claim_button"), f"hs:claim:{ticket.id}")])
        session.commit()

    def _silence_rule(self, session: Session, ticket_id: int) -> None:
        conv, ticket = self._locked_ticket(session, ticket_id)
        now = self.clock()
        last_staff = _aware(ticket.last_staff_at) if ticket.last_staff_at else None
        last_citizen = _aware(ticket.last_citizen_at) if ticket.last_citizen_at else _aware(ticket.opened_at)
        silent = dt.timedelta(minutes=self.config.silence_after)
        if ticket.status != "claimed" or last_staff is None or last_citizen > last_staff \
                or now - last_staff < silent:
            session.rollback()
            return
        self._close(session, conv, ticket, now, "silence", None)
        self._to_citizen(session, conv, [self.texts.message("handoff_silence")])
        self._seal(session, ticket)
        self._to_topic(session, ticket, self.texts.message("staff_silence", ticket=ticket.id,
                                                           minutes=f"{self.config.silence_after:.0f}").text or "")
        self._close_topic(session, ticket)
        session.commit()

    # --- reading (console, stats) --------------------------------------------------------------------------

    def queue(self, session: Session) -> list[Ticket]:
        return list(session.scalars(select(Ticket).where(Ticket.status.in_(ACTIVE)).order_by(Ticket.id)))

    def transcript(self, session: Session, ticket: Ticket, after: int = 0) -> list[Message]:
        """The ticket's conversation: a few lines before it opened, then everything until it closed."""
        start = ticket.opened_message_id or 0
        before = session.scalars(select(Message.id).where(Message.conversation_id == ticket.conversation_id,
                                                          Message.id <= start)
                                 .order_by(Message.id.desc()).limit(self.config.transcript_lines)).all()
        query = select(Message).where(Message.conversation_id == ticket.conversation_id,
                                      Message.id >= min(before, default=start + 1), Message.id > after)
        if ticket.closed_message_id is not None:
            query = query.where(Message.id <= ticket.closed_message_id)
        elif ticket.status not in ACTIVE:  # cancelled by the citizen: up to the next ticket, if any
            following = session.scalar(select(func.min(Ticket.opened_message_id)).where(
                Ticket.conversation_id == ticket.conversation_id, Ticket.id > ticket.id))
            if following is not None:
                query = query.where(Message.id <= following)
        return list(session.scalars(query.order_by(Message.id).limit(500)))


def buttons_of(message: Message) -> list[Button]:
    return [Button(b["title"], b["payload"]) for b in (message.payload or {}).get("buttons", [])]


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
