"""A gateway process killed with SIGKILL loses nothing: stored updates and pending replies survive the restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from bot.models import InboundUpdate, OutboxEntry
from dvcbot import PROJECT_ROOT
from tests.bot.helpers import TELEGRAM_SECRET, eventually
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import TOKEN, Failure, FakeTelegram, text_update
from tests.servers import free_port


class GatewayProcess:
    """``uvicorn bot.app:create_app`` as its own process, configured through the environment like in production."""

    def __init__(self, database_url: str, rasa_port: int, telegram_url: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DVCBOT_")}
        self.env.update({
            "DVCBOT_DATABASE_URL": database_url, "DVCBOT_RASA_PORT": str(rasa_port),
            "DVCBOT_RASA_TOKEN": "test-token", "DVCBOT_RASA_TIMEOUT": "10", "DVCBOT_ACTIONS_PORT": str(free_port()),
            "DVCBOT_TELEGRAM_TOKEN": TOKEN, "DVCBOT_TELEGRAM_SECRET": TELEGRAM_SECRET,
            "DVCBOT_TELEGRAM_API_BASE": telegram_url,
        })
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "bot.app:create_app", "--factory", "--host", "127.0.0.1",
                 "--port", str(self.port)], cwd=PROJECT_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, f"the gateway exited: {self.log.read_text()[-2000:]}"
            try:
                httpx.get(f"{self.url}/healthz", timeout=2)
                return
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.1)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def post(self, update: dict[str, object]) -> httpx.Response:
        return httpx.post(f"{self.url}/webhooks/telegram", json=update, timeout=10,
                          headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})


@pytest.fixture
def gateway_process(database_url: str, engine: Engine, fake_rasa: tuple[FakeRasa, int],
                    fake_telegram: tuple[FakeTelegram, str], tmp_path: Path) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(database_url, fake_rasa[1], fake_telegram[1], tmp_path / "gateway.log")
    try:
        yield gw
    finally:
        gw.stop()


def count(engine: Engine, model: type, **where: str) -> int:
    with Session(engine) as session:
        query = select(func.count()).select_from(model)
        for column, value in where.items():
            query = query.where(getattr(model, column) == value)
        return int(session.scalar(query) or 0)


async def test_pending_replies_are_sent_after_sigkill(gateway_process: GatewayProcess, engine: Engine,
                                                      fake_telegram: tuple[FakeTelegram, str]) -> None:
    telegram, _ = fake_telegram
    telegram.fail = lambda method, params: Failure(429, retry_after=1)  # Telegram refuses everything for now
    chats = [9101, 9102, 9103]
    gateway_process.start()
    for i, chat in enumerate(chats * 2):
        assert gateway_process.post(text_update(500 + i, chat, f"m{i}")).status_code == 200
    await eventually(lambda: count(engine, OutboxEntry) == 6 and len(telegram.attempts()) >= 3,
                     what="replies queued and tried")
    gateway_process.kill()
    assert count(engine, OutboxEntry, status="pending") == 6
    telegram.fail = None
    await asyncio.sleep(0.5)
    assert telegram.sent() == []

    gateway_process.start()
    await eventually(lambda: len(telegram.sent()) == 6, within=30, what="the replies after the restart")
    await asyncio.sleep(1.0)
    for i, chat in enumerate(chats):
        assert telegram.texts(chat) == [f"echo: m{i}", f"echo: m{i + 3}"]  # each once, in order
    await eventually(lambda: count(engine, OutboxEntry, status="sent") == 6, what="rows marked sent")


async def test_stored_updates_are_processed_after_sigkill(gateway_process: GatewayProcess, engine: Engine,
                                                          fake_rasa: tuple[FakeRasa, int],
                                                          fake_telegram: tuple[FakeTelegram, str]) -> None:
    rasa, _ = fake_rasa
    telegram, _ = fake_telegram
    rasa.delay = 5.0  # the gateway dies while Rasa is thinking
    gateway_process.start()
    for i in range(3):
        assert gateway_process.post(text_update(600 + i, 9201, f"q{i}")).json()["update"] == "stored"
    await eventually(lambda: len(rasa.received) == 1, what="Rasa asked")
    gateway_process.kill()
    assert count(engine, InboundUpdate, status="pending") == 3
    assert telegram.sent() == []

    rasa.delay = 0.0
    gateway_process.start()
    await eventually(lambda: len(telegram.sent(9201)) == 3, within=30, what="the answers after the restart")
    assert telegram.texts(9201) == ["echo: q0", "echo: q1", "echo: q2"]
    assert count(engine, InboundUpdate, status="done") == 3
    # Rasa was asked q0 twice (the first answer died with the process); the citizen got it once
    assert rasa.messages("telegram:9201") == ["q0", "q0", "q1", "q2"]
