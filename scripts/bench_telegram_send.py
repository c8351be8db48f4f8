"""Sent-messages throughput of the outbox against the fake Telegram Bot API, with the flood limits on.

    .venv/bin/python scripts/bench_telegram_send.py [--messages 600] [--chats 200] [--no-limits]
                                                    [--database-url postgresql://...]

Queues ``--messages`` replies spread over ``--chats`` private chats straight into the outbox, then lets the
real sender (python-telegram-bot client, our rate limiter, the database bookkeeping) deliver them to the fake
Bot API on loopback, and reports messages per second and the densest second/chat it observed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.orm import Session

from bot.channels.telegram import Telegram
from bot.channels.telegram_limits import TelegramLimits
from bot.database import Database
from bot.models import Conversation, OutboxEntry
from bot.outbox import Outbox
from dvcbot.db import create_schema, make_engine
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.servers import serve

UNLIMITED = TelegramLimits(per_bot=(10**6, 1.0), per_chat=(10**6, 1.0), per_group=(10**6, 1.0))


def densest(times: list[float], period: float) -> int:
    times, best, start = sorted(times), 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= period:
            start += 1
        best = max(best, end - start + 1)
    return best


def queue(db_url: str, messages: int, chats: int) -> None:
    engine = make_engine(db_url)
    create_schema(engine)
    with Session(engine) as session:
        convs = [Conversation(key=f"telegram:{10_000 + i}", channel="telegram") for i in range(chats)]
        session.add_all(convs)
        session.flush()
        session.add_all(OutboxEntry(channel="telegram", conversation_id=convs[i % chats].id,
                                    recipient=str(10_000 + i % chats), body={"text": f"Tin nhắn thử {i}"})
                        for i in range(messages))
        session.commit()
    engine.dispose()


async def deliver(db_url: str, api_url: str, fake: FakeTelegram, messages: int, limits: TelegramLimits) -> float:
    engine = make_engine(db_url)
    db = Database(engine)
    telegram = Telegram(TOKEN, None, api_url, db, limits=limits)
    await telegram.start()
    outbox = Outbox(db, {"telegram": telegram})
    started = time.monotonic()
    worker = asyncio.create_task(outbox.run())
    for _ in iter(lambda: len(fake.sent()) >= messages, True):
        await asyncio.sleep(0.01)
    elapsed = time.monotonic() - started
    worker.cancel()
    await outbox.drain()
    await telegram.stop()
    engine.dispose()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--no-limits", action="store_true", help="measure the sender without the flood limits")
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db_url = args.database_url or f"sqlite:///{tmp}/bench.db"
        queue(db_url, args.messages, args.chats)
        fake = FakeTelegram()
        with serve(fake.app()) as api_url:
            limits = UNLIMITED if args.no_limits else TelegramLimits()
            elapsed = asyncio.run(deliver(db_url, api_url, fake, args.messages, limits))
    sent = fake.sent()
    per_chat = max(densest([c.at for c in sent if c.chat_id == chat], 1.0) for chat in {c.chat_id for c in sent})
    print(f"{len(sent)} messages to {args.chats} chats in {elapsed:.2f} s: {len(sent) / elapsed:.1f} msg/s "
          f"(limits {'off' if args.no_limits else 'on'}; densest second {densest([c.at for c in sent], 1.0)} "
          f"messages, densest second in one chat {per_chat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
