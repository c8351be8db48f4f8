"""Pieces of the gateway pipeline on their own: text splitting, rate windows, log masking, intake retries."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.channels.base import IncomingMessage, split_text, utf16_len
from bot.database import Database
from bot.intake import Intake
from bot.locks import LocalLocks
from bot.models import InboundUpdate
from bot.ratelimit import Window, Windows
from dvcbot import logmask

words = st.text(alphabet=st.sampled_from("aăâbcdđeêghiklmnoôơpqrstuưvxy😀 \n"), max_size=3000)


@given(words, st.integers(min_value=10, max_value=500))
def test_split_text_keeps_every_word_within_the_limit(text: str, limit: int) -> None:
    parts = split_text(text, limit, utf16_len)
    assert all(0 < utf16_len(p) <= limit for p in parts)
    assert "".join("".join(p.split()) for p in parts) == "".join(text.split())


def test_split_text_prefers_paragraphs() -> None:
    text = "một hai ba bốn năm.\n\nsáu bảy tám chín mười.\nmột"
    assert split_text(text, 30) == ["một hai ba bốn năm.", "sáu bảy tám chín mười.\nmột"]
    assert split_text("một hai ba bốn năm sáu", 10) == ["một hai", "ba bốn", "năm sáu"]
    assert split_text("   ", 10) == []


async def test_window_allows_limit_per_period() -> None:
    window = Window(3, 0.5)
    started = time.monotonic()
    stamps = []
    for _ in range(7):
        await window.acquire()
        stamps.append(time.monotonic() - started)
    assert stamps[2] < 0.1 and 0.45 <= stamps[3] < 0.7 and stamps[6] >= 0.95


async def test_windows_are_per_key_and_forget_idle_ones() -> None:
    windows = Windows(1, 0.05, prune_every=4)
    started = time.monotonic()
    await asyncio.gather(*[windows.acquire(k) for k in ("a", "b", "c")])
    assert time.monotonic() - started < 0.04  # different keys do not wait for each other
    await asyncio.sleep(0.06)
    await windows.acquire("d")  # the fourth call forgets a, b and c
    assert len(windows) == 1


@pytest.mark.parametrize(("raw", "masked"), [
    ("số điện thoại 0912345678 nhé", "số điện thoại *******678 nhé"),
    ("CCCD 001099012345", "CCCD *********345"),
    ("gọi 0912 345 678", "gọi **** *** 678"),
    ("+84912345678", "+********678"),
    ("mã hồ sơ 12345, 127.0.0.1:8000", "mã hồ sơ 12345, 127.0.0.1:8000"),
])
def test_personal_numbers_are_masked(raw: str, masked: str) -> None:
    assert logmask.mask(raw) == masked


def test_log_records_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    logmask.install()
    logmask.install()  # idempotent
    log = logging.getLogger("tests.logmask")
    with caplog.at_level(logging.INFO):
        log.info("citizen %s wrote %r", "zalo:8412345678901", "sđt 0987654321")
        try:
            raise ValueError("CCCD 001099012345 not found")
        except ValueError:
            log.exception("lookup failed")
    text = caplog.text
    assert "8412345678901" not in text and "0987654321" not in text and "001099012345" not in text
    assert "zalo:**********901" in text and "*******321" in text and "*********345" in text


class FlakyRouter:
    """Fails the first ``failures`` calls, then marks the update done like the real router."""

    def __init__(self, db: Database, failures: int) -> None:
        self.db = db
        self.failures = failures
        self.seen: list[str] = []

    async def process(self, inbound_id: int, msg: IncomingMessage, received_at: object = None) -> None:
        self.seen.append(msg.text)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database hiccup")

        def done(session: Session) -> None:
            row = session.get(InboundUpdate, inbound_id)
            assert row is not None
            row.status = "done"
            session.commit()

        await self.db.run(done)


async def test_a_failing_update_is_retried_then_given_up_without_reordering(engine: Engine) -> None:
    db = Database(engine)
    router = FlakyRouter(db, failures=3)
    intake = Intake(db, router, LocalLocks(), max_attempts=3)  # type: ignore[arg-type]
    for i in range(2):
        stored = await intake.store("test", f"u{i}", IncomingMessage("test", "1", f"m{i}"))
        assert not stored.duplicate
    assert (await intake.store("test", "u0", IncomingMessage("test", "1", "m0"))).duplicate
    for _ in range(3):
        await intake.drain("test:1")
    assert router.seen == ["m0", "m0", "m0", "m1"]  # m1 waited until m0 was given up
    with Session(engine) as session:
        rows = session.scalars(select(InboundUpdate).order_by(InboundUpdate.id)).all()
        assert [(r.status, r.attempts) for r in rows] == [("failed", 3), ("done", 0)]
        assert rows[0].error == "RuntimeError: database hiccup"

