"""A gateway killed with SIGKILL in the middle of a handoff loses nothing and keeps the order, both ways."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bot.models import InboundUpdate
from tests.bot.handoff_helpers import ALWAYS_OPEN, LAN, add_staff, mode, script_rasa, update_ids
from tests.bot.helpers import eventually
from tests.bot.test_restart import GatewayProcess, count
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import (
    STAFF_GROUP,
    Failure,
    FakeTelegram,
    group_callback_update,
    group_text_update,
    text_update,
)


@pytest.fixture
def gateway(database_url: str, engine: Engine, fake_rasa: tuple[FakeRasa, int],
            fake_telegram: tuple[FakeTelegram, str], tmp_path: Path) -> Iterator[GatewayProcess]:
    script_rasa(fake_rasa[0])
    add_staff(engine, "lan", "Chị Lan", LAN)
    gw = GatewayProcess(database_url, fake_rasa[1], fake_telegram[1], tmp_path / "gateway.log")
    gw.env.update(DVCBOT_STAFF_TELEGRAM_GROUP_ID=str(STAFF_GROUP), DVCBOT_HANDOFF_HOURS=ALWAYS_OPEN)
    try:
        yield gw
    finally:
        gw.stop()


async def test_relay_survives_sigkill_in_order_both_ways(gateway: GatewayProcess, engine: Engine,
                                                         fake_telegram: tuple[FakeTelegram, str]) -> None:
    telegram, _ = fake_telegram
    chat, key = 9301, "telegram:9301"
    gateway.start()
    assert gateway.post(text_update(next(update_ids), chat, "gặp nhân viên")).status_code == 200
    await eventually(lambda: any(c.buttons for c in telegram.sent(STAFF_GROUP)), what="the ticket's summary")
    summary = next(c for c in telegram.sent(STAFF_GROUP) if c.buttons)
    thread = summary.thread
    assert thread is not None
    gateway.post(group_callback_update(next(update_ids), LAN, summary, "Nhận xử lý"))
    await eventually(lambda: mode(engine, key) == "staff", what="the claim")
    await eventually(lambda: any("đã tiếp nhận" in t for t in telegram.texts(chat)), what="the citizen told")

    telegram.fail = lambda method, params: Failure(503)  # Telegram is down: everything stays in the outbox
    for i in range(6):  # both sides write at once
        assert gateway.post(text_update(next(update_ids), chat, f"dân {i}")).status_code == 200
        assert gateway.post(group_text_update(next(update_ids), LAN, thread, f"cán bộ {i}")).status_code == 200
    gateway.kill()  # some updates are processed, some only stored; every relay so far is pending
    telegram.fail = None
    await asyncio.sleep(0.3)
    assert not any(t.startswith(("👤", "💬")) for t in telegram.texts(chat) + telegram.topic_texts(thread))

    gateway.start()
    await eventually(lambda: sum(t.startswith("💬") for t in telegram.texts(chat)) == 6, within=60,
                     what="the staff's messages at the citizen")
    await eventually(lambda: sum(t.startswith("👤") for t in telegram.topic_texts(thread)) == 6, within=60,
                     what="the citizen's messages in the topic")
    await asyncio.sleep(1.0)
    assert [t for t in telegram.texts(chat) if t.startswith("💬")] == [f"💬 Chị Lan: cán bộ {i}" for i in range(6)]
    assert [t for t in telegram.topic_texts(thread) if t.startswith("👤")] == [
        f"👤 Nguyễn Văn An: dân {i}" for i in range(6)]
    assert count(engine, InboundUpdate, status="pending") == 0
