"""Helpers for the handoff tests: a gateway with a Telegram staff group, staff accounts, a scripted fake Rasa."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.app import create_app
from bot.channels.telegram_limits import TelegramLimits
from bot.models import Conversation, Message, StaffMember, Ticket
from tests.bot.helpers import Channels, channel_settings, eventually
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import STAFF_GROUP, Call, FakeTelegram
from tests.fakes.zalo import FakeZalo
from tests.servers import serve

ALWAYS_OPEN = "mon-sun 00:00-24:00"
HANDOFF = {"custom": {"handoff": {"reason": "human_handoff", "procedure": "khai_sinh",
                                  "procedure_name": "Đăng ký khai sinh"}}}
COMPLAINT = {"custom": {"handoff": {"reason": "complaint", "procedure": None, "procedure_name": None}}}
# Telegram's limits are not what these tests are about
RELAXED = TelegramLimits(per_bot=(1000, 1.0), per_chat=(1000, 1.0), per_group=(1000, 1.0))
LAN, MINH, STRANGER = 9001, 9002, 9999  # Telegram user ids: two registered staff and someone else in the group
update_ids = itertools.count(10_000)


def script_rasa(rasa: FakeRasa) -> None:
    """``gặp nhân viên`` / ``/human_handoff`` ask for a person, ``khiếu nại`` complains; the rest is echoed."""
    rasa.script.update({"gặp nhân viên": [HANDOFF], "/human_handoff": [HANDOFF], "khiếu nại": [COMPLAINT]})


def add_staff(engine: Engine, username: str, name: str, telegram_id: int | None = None, role: str = "staff",
              password_hash: str | None = None) -> int:
    with Session(engine) as session:
        member = StaffMember(username=username, display_name=name, role=role, telegram_user_id=telegram_id,
                             password_hash=password_hash)
        session.add(member)
        session.commit()
        return member.id


def tickets(engine: Engine) -> list[Ticket]:
    with Session(engine) as session:
        return list(session.scalars(select(Ticket).order_by(Ticket.id)))


def mode(engine: Engine, key: str) -> str:
    with Session(engine) as session:
        return session.scalars(select(Conversation.mode).where(Conversation.key == key)).one()


def transcript(engine: Engine, key: str) -> list[tuple[str, str | None]]:
    with Session(engine) as session:
        conv = session.scalars(select(Conversation).where(Conversation.key == key)).one()
        rows = session.scalars(select(Message).where(Message.conversation_id == conv.id).order_by(Message.id))
        return [(m.sender, m.text) for m in rows]


@dataclass
class StaffDesk:
    """The gateway, its fakes and the staff group as a test sees them."""

    gw: Channels

    @property
    def telegram(self) -> FakeTelegram:
        return self.gw.telegram

    async def post(self, client: httpx.AsyncClient, update: dict[str, Any]) -> None:
        resp = await self.gw.telegram_update(client, update)
        assert resp.status_code == 200, resp.text

    async def summary(self, ticket: int) -> Call:
        """The ticket's first post in its topic (with the "Nhận xử lý" button), once delivered."""
        found: list[Call] = []

        def posted() -> bool:
            if not any(name.startswith(f"#{ticket} ") for name in list(self.telegram.topics.values())):
                return False
            thread = self.telegram.topic_named(f"#{ticket} ")
            found[:] = [c for c in self.telegram.in_topic(thread) if c.buttons]
            return bool(found)

        await eventually(posted, what=f"the summary of ticket {ticket}")
        return found[0]


def handoff_gateway(database_url: str, engine: Engine, rasa: tuple[FakeRasa, int],
                    telegram: tuple[FakeTelegram, str], zalo: tuple[FakeZalo, str],
                    **extra: object) -> Iterator[StaffDesk]:
    script_rasa(rasa[0])
    values: dict[str, object] = dict(staff_telegram_group_id=STAFF_GROUP, handoff_hours=ALWAYS_OPEN,
                                     handoff_check_seconds=0.2)
    values.update(extra)
    settings = channel_settings(database_url, rasa[1], telegram[1], zalo[0], zalo[1], **values)
    with serve(create_app(settings, telegram_limits=RELAXED)) as url:
        yield StaffDesk(Channels(url, rasa[0], telegram[0], zalo[0], engine))
