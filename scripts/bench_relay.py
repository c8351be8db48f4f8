"""Relay latency under load: a citizen's message during a handoff → the staff side.

    .venv/bin/python scripts/bench_relay.py [--citizens 40] [--rate 20] [--seconds 20]
                                            [--postgres postgresql://postgres@127.0.0.1:5432/test] [--group-limit]

Starts the gateway as its own process (uvicorn, like production) against fake Rasa and a fake Telegram Bot API in
this process, puts ``--citizens`` Telegram citizens in the hands of a staff member (each asks for a person, the
staff member claims every ticket in the staff group), then sends ``--rate`` citizen messages per second in total
through the Telegram webhook for ``--seconds``. For every message it records, on one clock:

- **stored**: when the message is in the database, i.e. what the web console shows (the console page itself
  polls every 2 s, which adds up to 2 s in a browser);
- **topic**: when the fake Bot API received it as a post in the ticket's forum topic (outbox, sender, PTB).

Telegram lets a bot post about 20 messages a minute into one group; that limit would dominate everything, so it
is off unless ``--group-limit`` is given (then expect the topic latency to grow with the queue).
"""
# ruff: noqa: E402  (the project goes on sys.path before its imports)

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from bot.models import Message, StaffMember, Ticket
from dvcbot.db import create_schema, make_engine
from tests.bot.handoff_helpers import HANDOFF
from tests.bot.helpers import TELEGRAM_SECRET
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import STAFF_GROUP, TOKEN, FakeTelegram, group_callback_update, text_update
from tests.servers import free_port, serve

STAFF_TG = 4242
LAUNCH = """
import sys, uvicorn
from bot.app import create_app
from bot.channels.telegram_limits import TelegramLimits
limits = None if sys.argv[2] == "real" else TelegramLimits(per_bot=(10**6, 1.0), per_chat=(10**6, 1.0),
                                                           per_group=(10**6, 1.0))
uvicorn.run(create_app(telegram_limits=limits), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def describe(name: str, values: list[float], expected: int) -> str:
    if not values:
        return f"{name:<7} nothing arrived"
    ms = [v * 1000 for v in values]
    return (f"{name:<7} n={len(ms)}/{expected}  p50={statistics.median(ms):.0f} ms  p95={percentile(ms, .95):.0f} ms"
            f"  p99={percentile(ms, .99):.0f} ms  max={max(ms):.0f} ms")


class StoredWatcher(threading.Thread):
    """Polls the database every 10 ms and notes when each marked citizen message first appears."""

    def __init__(self, db_url: str) -> None:
        super().__init__(daemon=True)
        self.engine = make_engine(db_url)
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        last = 0
        while not self.stop.is_set():
            with Session(self.engine) as session:
                rows = session.execute(select(Message.id, Message.text).where(
                    Message.id > last, Message.sender == "citizen")).all()
            now = time.monotonic()
            for row_id, line in rows:
                last = max(last, row_id)
                if line and line.startswith("bench-"):
                    self.seen.setdefault(line.split()[0], now)
            time.sleep(0.01)


def wait(check: object, what: str, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


async def post(client: httpx.AsyncClient, url: str, update: dict[str, object]) -> None:
    resp = await client.post(f"{url}/webhooks/telegram", json=update,
                             headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
    resp.raise_for_status()


async def run(args: argparse.Namespace, db_url: str, telegram: FakeTelegram, url: str) -> None:
    engine = make_engine(db_url)
    ids = iter(range(1, 10**9))
    chats = [600_000 + i for i in range(args.citizens)]
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as client:
        await asyncio.gather(*[post(client, url, text_update(next(ids), c, "gặp nhân viên")) for c in chats])

        def topics_ready() -> bool:
            return sum(1 for c in telegram.sent(STAFF_GROUP) if c.buttons) >= args.citizens

        await asyncio.to_thread(wait, topics_ready, "every ticket's topic")
        for call in [c for c in telegram.sent(STAFF_GROUP) if c.buttons]:
            await post(client, url, group_callback_update(next(ids), STAFF_TG, call, "Nhận xử lý", "Lan"))

        def claimed() -> bool:
            with Session(engine) as session:
                return len(session.scalars(select(Ticket.id).where(Ticket.status == "claimed")).all()) \
                    == args.citizens

        await asyncio.to_thread(wait, claimed, "every ticket claimed")
        await asyncio.sleep(1.0)
        watcher = StoredWatcher(db_url)
        watcher.start()
        total = int(args.rate * args.seconds)
        sent: dict[str, float] = {}
        started = time.monotonic()

        async def one(i: int) -> None:
            await asyncio.sleep(max(0.0, started + i / args.rate - time.monotonic()))
            marker = f"bench-{i}"
            sent[marker] = time.monotonic()
            await post(client, url, text_update(next(ids), chats[i % len(chats)], f"{marker} cho hỏi thêm"))

        await asyncio.gather(*[one(i) for i in range(total)])

        def arrived() -> bool:
            return sum(1 for c in telegram.sent(STAFF_GROUP) if "bench-" in (c.text or "")) >= total

        await asyncio.to_thread(wait, arrived, "every relay in the topics", 300)
        watcher.stop.set()
        watcher.join()
    engine.dispose()
    topic = {}
    for call in telegram.sent(STAFF_GROUP):
        posted = call.text or ""
        if "bench-" in posted:
            marker = "bench-" + posted.split("bench-", 1)[1].split()[0]
            topic.setdefault(marker, call.at)
    print(f"{total} citizen messages, {args.rate:g}/s over {args.citizens} conversations in the hands of staff, "
          f"{'PostgreSQL' if db_url.startswith('postgresql') else 'SQLite'}, Telegram group limit "
          f"{'on' if args.group_limit else 'off'}:")
    print(describe("stored", [watcher.seen[m] - t for m, t in sent.items() if m in watcher.seen], total))
    print(describe("topic", [topic[m] - t for m, t in sent.items() if m in topic], total))


@contextmanager
def database(server: str | None, tmp: str) -> Iterator[str]:
    """A SQLite file in ``tmp``, or a new database on the PostgreSQL ``server`` dropped afterwards."""
    if server is None:
        yield f"sqlite:///{tmp}/bench.db"
        return
    name = f"dvcbot_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine("postgresql+psycopg://" + server.split("://", 1)[1], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server.rpartition('/')[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--citizens", type=int, default=40)
    parser.add_argument("--rate", type=float, default=20.0, help="citizen messages per second, all together")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--postgres", metavar="SERVER_URL",
                        help="run on a throw-away database of this PostgreSQL server (default: a SQLite file)")
    parser.add_argument("--group-limit", action="store_true", help="keep Telegram's 20 posts/min per group")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, database(args.postgres, tmp) as db_url:
        engine = make_engine(db_url)
        create_schema(engine)
        with Session(engine) as session:
            session.add(StaffMember(username="bench-lan", display_name="Chị Lan", telegram_user_id=STAFF_TG))
            session.commit()
        engine.dispose()
        rasa, telegram = FakeRasa(script={"gặp nhân viên": [HANDOFF]}), FakeTelegram()
        rasa_port, port = free_port(), free_port()
        with serve(rasa.app(), rasa_port), serve(telegram.app()) as telegram_url:
            env = {k: v for k, v in os.environ.items() if not k.startswith("DVCBOT_")}
            env.update(DVCBOT_DATABASE_URL=db_url, DVCBOT_RASA_PORT=str(rasa_port), DVCBOT_RASA_TOKEN="test-token",
                       DVCBOT_TELEGRAM_TOKEN=TOKEN, DVCBOT_TELEGRAM_SECRET=TELEGRAM_SECRET,
                       DVCBOT_TELEGRAM_API_BASE=telegram_url, DVCBOT_STAFF_TELEGRAM_GROUP_ID=str(STAFF_GROUP),
                       DVCBOT_HANDOFF_HOURS="mon-sun 00:00-24:00", DVCBOT_ACTIONS_PORT=str(free_port()))
            gateway = subprocess.Popen([sys.executable, "-c", LAUNCH, str(port),
                                        "real" if args.group_limit else "off"], cwd=ROOT, env=env)
            url = f"http://127.0.0.1:{port}"
            try:
                def up() -> bool:
                    try:
                        return httpx.get(f"{url}/console/login", timeout=1).status_code == 200
                    except httpx.HTTPError:
                        return False

                wait(up, "the gateway to start", 60)
                asyncio.run(run(args, db_url, telegram, url))
            finally:
                gateway.terminate()
                gateway.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
