"""The handoff's rules on their own: atomic claims (also as two replicas on PostgreSQL), working hours and
holidays, the timers (unclaimed, reminders, silence), the expected wait, cancel words and ratings."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.channels.base import IncomingMessage, OutgoingMessage
from bot.database import Database
from bot.handoff import Handoff, HandoffConfig, Refused, is_cancel, rating_of
from bot.handoff_hours import WorkingHours
from bot.models import Conversation, Message, StaffMember, Ticket, TicketEvent
from bot.texts import GatewayTexts
from dvcbot.db import make_engine
from tests.bot.handoff_helpers import add_staff

VN = ZoneInfo("Asia/Ho_Chi_Minh")
HOURS = "mon-fri 07:30-11:30, 13:30-17:00; sat 07:30-11:30"
MONDAY = dt.date(2025, 7, 7)


def at(day: dt.date, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=VN).astimezone(dt.UTC)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def make_handoff(engine: Engine, clock: Clock | None = None, holidays: str = "") -> Handoff:
    config = HandoffConfig(WorkingHours.parse(HOURS, holidays), unclaimed_after=5, remind_every=3,
                           silence_after=30, default_wait=5, transcript_lines=10, check_every=1, staff_group=None)
    return Handoff(Database(engine), GatewayTexts.load(), None, config, clock or Clock(at(MONDAY, 9)))


def open_ticket(engine: Engine, handoff: Handoff, key: str = "telegram:1", reason: str = "human_handoff"
                ) -> tuple[int, list[OutgoingMessage]]:
    with Session(engine) as session:
        conv = session.scalar(select(Conversation).where(Conversation.key == key))
        if conv is None:
            conv = Conversation(key=key, channel=key.split(":")[0], display_name="Trần Thị Bình")
            session.add(conv)
            session.flush()
        session.add(Message(conversation_id=conv.id, direction="in", sender="citizen", text="gặp nhân viên"))
        replies = handoff.after_bot(session, conv, [OutgoingMessage(custom={"handoff": {"reason": reason}})])
        session.commit()
        ticket_id = session.scalars(select(Ticket.id).where(Ticket.conversation_id == conv.id)
                                    .order_by(Ticket.id.desc())).first()
        assert ticket_id is not None
        return ticket_id, replies


def citizen_lines(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return [m.text or "" for m in session.scalars(select(Message).where(Message.direction == "out")
                                                      .order_by(Message.id))]


def events(engine: Engine, ticket_id: int) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket_id)
                                    .order_by(TicketEvent.id)))


# --- claims -------------------------------------------------------------------------------------------------

async def test_concurrent_claims_exactly_one_wins_and_the_others_learn_who(engine: Engine, database_url: str) -> None:
    """Eight staff on two gateway replicas (separate engines and pools) press "claim" at once, ten times over."""
    staff = [add_staff(engine, f"s{i}", f"Nhân viên {i}") for i in range(8)]
    second = make_engine(database_url)
    try:
        replicas = [make_handoff(engine), make_handoff(second)]
        for round_ in range(10):
            ticket_id, _ = open_ticket(engine, replicas[0], key=f"webchat:{round_}")
            results = await asyncio.gather(*[replicas[i % 2].claim(ticket_id, s) for i, s in enumerate(staff)])
            winners = [r for r in results if r.won]
            assert len(winners) == 1
            assert {r.holder for r in results} == {winners[0].holder}  # every loser was told who has it
            with Session(engine) as session:
                ticket = session.get(Ticket, ticket_id)
                assert ticket is not None and ticket.status == "claimed"
                holder = session.get(StaffMember, ticket.claimed_by)
                assert holder is not None and holder.display_name == winners[0].holder
                claimed_lines = session.scalars(select(Message.text).where(
                    Message.conversation_id == ticket.conversation_id, Message.sender == "system",
                    Message.text.like("%đã tiếp nhận%"))).all()
                assert len(claimed_lines) == 1  # the citizen hears about one staff member only
            assert events(engine, ticket_id).count("claimed") == 1
    finally:
        second.dispose()


async def test_only_the_holder_replies_ends_or_transfers(engine: Engine) -> None:
    handoff = make_handoff(engine)
    lan, minh = add_staff(engine, "lan", "Chị Lan"), add_staff(engine, "minh", "Anh Minh")
    boss = add_staff(engine, "boss", "Chị Hà", role="supervisor")
    editor = add_staff(engine, "ed", "Biên tập", role="editor")
    ticket_id, _ = open_ticket(engine, handoff)
    with pytest.raises(Refused, match="chưa được nhận"):
        await handoff.reply(ticket_id, lan, "chào anh")
    with pytest.raises(Refused, match="không được xử lý"):
        await handoff.claim(ticket_id, editor)
    assert (await handoff.claim(ticket_id, lan)).won
    with pytest.raises(Refused, match="nhân viên khác"):
        await handoff.reply(ticket_id, minh, "để em")
    with pytest.raises(Refused, match="Tin nhắn trống"):
        await handoff.reply(ticket_id, lan, "   ")
    await handoff.transfer(ticket_id, lan, minh)
    with pytest.raises(Refused):
        await handoff.reply(ticket_id, lan, "vẫn chị đây")
    await handoff.reply(ticket_id, minh, "em Minh đây ạ")
    await handoff.end(ticket_id, boss)  # a supervisor may close anyone's ticket
    with pytest.raises(Refused, match="không còn mở"):
        await handoff.end(ticket_id, minh)
    assert events(engine, ticket_id) == ["opened", "claimed", "transferred", "closed"]
    assert any("chuyển sang Anh Minh" in t for t in citizen_lines(engine))


async def test_staff_can_take_a_conversation_over_on_their_own(engine: Engine) -> None:
    handoff = make_handoff(engine)
    lan = add_staff(engine, "lan", "Chị Lan")
    with Session(engine) as session:
        conv = Conversation(key="zalo:55", channel="zalo")
        session.add(conv)
        session.commit()
        conv_id = conv.id
    ticket_id = await handoff.take_over(conv_id, lan)
    with Session(engine) as session:
        ticket = session.get(Ticket, ticket_id)
        conv = session.get(Conversation, conv_id)
        assert ticket is not None and conv is not None
        assert (ticket.reason, ticket.status, conv.mode) == ("staff", "claimed", "staff")
    with pytest.raises(Refused, match="đã có phiếu"):
        await handoff.take_over(conv_id, lan)


# --- the queue and what the citizen is told -------------------------------------------------------------------

def test_place_in_the_queue_and_expected_wait(engine: Engine) -> None:
    clock = Clock(at(MONDAY, 9))
    handoff = make_handoff(engine, clock)
    first, replies = open_ticket(engine, handoff, "telegram:1")
    assert "phiếu số 1" in (replies[0].text or "") and "vị trí số 1" in (replies[0].text or "")
    assert "khoảng 5 phút" in (replies[0].text or "")
    _, replies = open_ticket(engine, handoff, "telegram:2")
    assert "vị trí số 2" in (replies[0].text or "") and "khoảng 10 phút" in (replies[0].text or "")
    # history: three tickets waited 2 minutes and were handled in 6 by one person
    with Session(engine) as session:
        lan = StaffMember(username="lan", display_name="Lan")
        session.add(lan)
        session.flush()
        for i in range(3):
            session.add(Ticket(conversation_id=1, reason="x", channel="telegram", display_name="x",
                               opened_at=at(MONDAY, 8, i * 10), claimed_at=at(MONDAY, 8, i * 10 + 2),
                               closed_at=at(MONDAY, 8, i * 10 + 8), status="closed", claimed_by=lan.id))
        session.commit()
        assert handoff.expected_wait(session, 1) == 2
        assert handoff.expected_wait(session, 3) == 14  # 2 + 2 ahead × 6 min / 1 person
    _, replies = open_ticket(engine, handoff, "telegram:1")  # asking again: the same ticket, its place
    assert "phiếu số 1" in (replies[0].text or "") and "vẫn đang chờ" in (replies[0].text or "")
    del first


def test_a_complaint_is_acknowledged_before_the_queue(engine: Engine) -> None:
    _, replies = open_ticket(engine, make_handoff(engine), reason="complaint")
    assert (replies[0].text or "").startswith("Em rất tiếc") and "phiếu số 1" in (replies[1].text or "")


def test_outside_working_hours_the_citizen_is_told_when(engine: Engine) -> None:
    saturday_evening = Clock(at(MONDAY + dt.timedelta(days=5), 20))
    _, replies = open_ticket(engine, make_handoff(engine, saturday_evening))
    text = replies[0].text or ""
    assert "ngoài giờ làm việc (T2–T6 07:30–11:30, 13:30–17:00; T7 07:30–11:30)" in text
    assert "từ 07:30 thứ Hai, 14/07" in text
    assert [b.title for b in replies[0].buttons] == ["Bưu điện gần nhất", "Huỷ yêu cầu"]
    # a holiday on Monday moves it to Tuesday
    _, replies = open_ticket(engine, make_handoff(engine, saturday_evening, holidays="2025-07-14"), "zalo:9")
    assert "từ 07:30 thứ Ba, 15/07" in (replies[0].text or "")


def test_shortly_before_closing_the_citizen_hears_both_times(engine: Engine) -> None:
    _, replies = open_ticket(engine, make_handoff(engine, Clock(at(MONDAY, 16, 58))))
    text = replies[0].text or ""
    assert "chỉ trực đến 17:00 hôm nay" in text and "từ 07:30 ngày mai (thứ Ba, 08/07)" in text


# --- timers -------------------------------------------------------------------------------------------------

async def test_unclaimed_tickets_tell_the_citizen_once_and_remind_staff(engine: Engine) -> None:
    clock = Clock(at(MONDAY, 10))
    handoff = make_handoff(engine, clock)
    ticket_id, _ = open_ticket(engine, handoff)
    clock.now += dt.timedelta(minutes=2)
    await handoff.tick()
    assert events(engine, ticket_id) == ["opened"]
    clock.now += dt.timedelta(minutes=2)  # 4 minutes: a reminder (every 3), no notice yet (after 5)
    await handoff.tick()
    assert events(engine, ticket_id) == ["opened", "reminded"]
    clock.now += dt.timedelta(minutes=2)
    await handoff.tick()
    await handoff.tick()  # a second replica's tick at the same moment does nothing more
    lines = citizen_lines(engine)
    assert sum("chờ lâu" in t for t in lines) == 1
    assert "vị trí số 1" in lines[-1] and "khoảng 5 phút" in lines[-1]
    assert events(engine, ticket_id) == ["opened", "reminded"]
    clock.now += dt.timedelta(minutes=3)
    await handoff.tick()
    assert events(engine, ticket_id) == ["opened", "reminded", "reminded"]


async def test_waiting_over_the_lunch_break_does_not_count(engine: Engine) -> None:
    clock = Clock(at(MONDAY, 11, 28))
    handoff = make_handoff(engine, clock)
    ticket_id, _ = open_ticket(engine, handoff)
    clock.now = at(MONDAY, 11, 40)  # closed for lunch: told when staff are back
    await handoff.tick()
    assert "từ 13:30 hôm nay" in citizen_lines(engine)[-1]
    clock.now = at(MONDAY, 13, 30)  # two minutes before lunch, none during it: no reminder yet
    await handoff.tick()
    assert events(engine, ticket_id) == ["opened"]
    clock.now = at(MONDAY, 13, 31)  # three minutes of working time: staff are reminded
    await handoff.tick()
    assert events(engine, ticket_id) == ["opened", "reminded"]


async def test_a_silent_citizen_closes_the_ticket(engine: Engine) -> None:
    clock = Clock(at(MONDAY, 9))
    handoff = make_handoff(engine, clock)
    lan = add_staff(engine, "lan", "Chị Lan")
    ticket_id, _ = open_ticket(engine, handoff)
    await handoff.claim(ticket_id, lan)
    await handoff.reply(ticket_id, lan, "Anh cần hỏi gì ạ?")
    clock.now += dt.timedelta(minutes=29)
    await handoff.tick()
    with Session(engine) as session:
        assert session.get(Ticket, ticket_id).status == "claimed"  # type: ignore[union-attr]
    clock.now += dt.timedelta(minutes=2)
    await handoff.tick()
    with Session(engine) as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None and (ticket.status, ticket.close_reason) == ("closed", "silence")
        assert session.scalars(select(Conversation.mode)).one() == "bot"
    assert "lâu không thấy anh/chị trả lời" in citizen_lines(engine)[-1]


async def test_a_citizen_waiting_for_staff_is_not_closed_for_silence(engine: Engine) -> None:
    clock = Clock(at(MONDAY, 9))
    handoff = make_handoff(engine, clock)
    lan = add_staff(engine, "lan", "Chị Lan")
    ticket_id, _ = open_ticket(engine, handoff)
    await handoff.claim(ticket_id, lan)
    clock.now += dt.timedelta(minutes=1)
    with Session(engine) as session:
        conv = session.scalars(select(Conversation)).one()
        handoff.on_citizen(session, conv, IncomingMessage("telegram", "1", "anh ơi"))
        session.commit()
    clock.now += dt.timedelta(hours=2)
    await handoff.tick()
    with Session(engine) as session:
        assert session.get(Ticket, ticket_id).status == "claimed"  # type: ignore[union-attr]


# --- words ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["thôi", "Thôi!", "thoi", "hủy", "Huỷ yêu cầu", "thôi không cần nữa",
                                  "/handoff_cancel"])
def test_cancel_words(text: str) -> None:
    assert is_cancel(text)


@pytest.mark.parametrize("text", ["thôi được rồi để tôi hỏi thêm", "hủy hộ chiếu cũ thế nào", "không"])
def test_not_cancel_words(text: str) -> None:
    assert not is_cancel(text)


@pytest.mark.parametrize(("text", "rating"), [("/handoff_rate_5", 5), ("3", 3), ("4 sao", 4), ("1 điểm", 1),
                                              ("6", None), ("/handoff_rate_9", None), ("35", None), ("tốt", None)])
def test_ratings(text: str, rating: int | None) -> None:
    assert rating_of(text) == rating


# --- working hours --------------------------------------------------------------------------------------------

def test_working_hours() -> None:
    hours = WorkingHours.parse(HOURS, "2025-09-01, 2025-09-02")
    assert hours.describe() == "T2–T6 07:30–11:30, 13:30–17:00; T7 07:30–11:30"
    assert hours.is_open(at(MONDAY, 7, 30)) and not hours.is_open(at(MONDAY, 12))
    assert not hours.is_open(at(MONDAY + dt.timedelta(days=6), 9))  # Sunday
    assert not hours.is_open(at(dt.date(2025, 9, 2), 9))  # National Day
    assert hours.next_open(at(MONDAY, 12)) == at(MONDAY, 13, 30)
    assert hours.next_open(at(dt.date(2025, 8, 30), 12)) == at(dt.date(2025, 9, 3), 7, 30)  # Sat noon → Wed
    assert hours.open_minutes(at(MONDAY, 11), at(MONDAY, 14)) == 60
    assert WorkingHours.parse("t2-t6 08:00-17:00; cn 08:00-11:00").describe() == "T2–T6 08:00–17:00; CN 08:00–11:00"
    assert WorkingHours.parse("mon-sun 00:00-24:00").is_open(at(MONDAY, 23, 59))


@pytest.mark.parametrize(("hours", "holidays", "message"), [
    ("mon-fri", "", "expected days then times"),
    ("mon-xyz 07:00-17:00", "", "unknown days"),
    ("mon 7h-17h", "", "not a time range"),
    ("mon 17:00-07:00", "", "ends before it starts"),
    ("mon 07:00-17:00", "2025-13-01", "not a date"),
])
def test_bad_working_hours_are_explained(hours: str, holidays: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorkingHours.parse(hours, holidays)
