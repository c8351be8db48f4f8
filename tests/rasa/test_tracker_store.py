"""nlu/tracker_store.py: the remembering SQL tracker store must read and write exactly what Rasa's own does.

Every test runs on SQLite and on PostgreSQL; Rasa's plain ``SQLTrackerStore`` on the same database plays the
other replica and the reference.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, create_tracker_store
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import read_endpoint_config

from nlu.tracker_store import RememberingSQLTrackerStore
from tests.rasa.conftest import REPO_ROOT

DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [greet, ask_fee]
slots:
  procedure:
    type: text
    mappings: [{type: custom}]
responses:
  utter_greet: [{text: "Dạ, chào anh/chị."}]
""")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rasa.db'}"
        return
    yield from _pg_database(request.getfixturevalue("postgres_server_url"))


@pytest.fixture
def pg_url(postgres_server_url: str) -> Iterator[str]:
    yield from _pg_database(postgres_server_url)


def _pg_database(server: str) -> Iterator[str]:
    base = "postgresql://" + server.split("://", 1)[1].rpartition("/")[0]
    name = f"dvcbot_rasa_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def stores(url: str, remembered: int = 1000) -> tuple[RememberingSQLTrackerStore, SQLTrackerStore]:
    dialect = url.split(":", 1)[0]
    ours = RememberingSQLTrackerStore(domain=DOMAIN, dialect=dialect, host=url, remembered=remembered)
    plain = SQLTrackerStore(domain=DOMAIN, dialect=dialect, host=url)
    return ours, plain


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def session_start(t: float) -> list[Event]:
    return [ActionExecuted("action_session_start", timestamp=t), SessionStarted(timestamp=t + 0.001),
            ActionExecuted("action_listen", timestamp=t + 0.002)]


def turn(text: str, intent: str, t: float, procedure: str | None = None) -> list[Event]:
    events: list[Event] = [UserUttered(text, {"name": intent, "confidence": 0.9}, timestamp=t)]
    if procedure:
        events.append(SlotSet("procedure", procedure, timestamp=t + 0.001))
    events += [ActionExecuted("utter_greet", timestamp=t + 0.002), BotUttered("Dạ", timestamp=t + 0.003),
               ActionExecuted("action_listen", timestamp=t + 0.004)]
    return events


def dumped(tracker: DialogueStateTracker | None) -> list[dict[str, Any]]:
    assert tracker is not None
    return [e.as_dict() for e in tracker.events]


async def say(store: SQLTrackerStore, sender: str, events: list[Event]) -> DialogueStateTracker:
    """What Rasa does for a message: retrieve (or start) the tracker, add the message's events, save."""
    tracker = await store.retrieve(sender) or DialogueStateTracker(sender, DOMAIN.slots)
    for event in events:
        tracker.update(event)
    await store.save(tracker)
    return tracker


def rows(url: str, sender: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(sa.text(
            "SELECT type_name, timestamp, intent_name, action_name, data FROM events WHERE sender_id = :s "
            "ORDER BY id"), {"s": sender}).all()
    engine.dispose()
    return [tuple(r) for r in found]


def test_it_writes_the_rows_rasa_writes_and_reads_back_what_rasa_reads(database_url: str) -> None:
    ours, plain = stores(database_url)

    async def talk(store: SQLTrackerStore, sender: str) -> None:
        await say(store, sender, session_start(1.0) + turn("chào", "greet", 2.0))
        await say(store, sender, turn("lệ phí khai sinh", "ask_fee", 3.0, procedure="khai_sinh"))
        await say(store, sender, turn("cảm ơn", "greet", 4.0))

    run(talk(ours, "a"))
    run(talk(plain, "b"))
    assert rows(database_url, "a") == rows(database_url, "b")
    assert len(rows(database_url, "a")) == 3 + 4 + 5 + 4
    assert dumped(run(ours.retrieve("a"))) == dumped(run(plain.retrieve("a"))) == dumped(run(plain.retrieve("b")))
    assert run(ours.retrieve("a")).get_slot("procedure") == "khai_sinh"


def test_a_conversation_it_wrote_is_read_from_memory(database_url: str) -> None:
    ours, _ = stores(database_url)
    run(say(ours, "a", session_start(1.0) + turn("chào", "greet", 2.0)))
    run(say(ours, "a", turn("lệ phí", "ask_fee", 3.0)))  # miss: the session start is read back once
    hits, misses = ours.hits, ours.misses
    run(say(ours, "a", turn("cảm ơn", "greet", 4.0)))
    run(ours.retrieve("a"))
    assert (ours.hits - hits, ours.misses - misses) == (2, 0)


def test_events_another_replica_wrote_are_read_from_the_database(database_url: str) -> None:
    ours, other = stores(database_url)
    run(say(ours, "a", session_start(1.0) + turn("chào", "greet", 2.0)))
    run(say(ours, "a", turn("lệ phí", "ask_fee", 3.0)))
    run(say(other, "a", turn("khai sinh", "ask_fee", 4.0, procedure="khai_sinh")))  # the other replica's turn
    tracker = run(ours.retrieve("a"))
    assert tracker.get_slot("procedure") == "khai_sinh"
    run(say(ours, "a", turn("cảm ơn", "greet", 5.0)))  # and nothing is stored twice or lost after it
    assert dumped(run(other.retrieve("a"))) == dumped(run(ours.retrieve("a")))
    assert len(rows(database_url, "a")) == 3 + 4 * 4 + 1


def test_a_tracker_changed_but_not_saved_does_not_change_what_is_remembered(database_url: str) -> None:
    ours, plain = stores(database_url)
    run(say(ours, "a", session_start(1.0) + turn("chào", "greet", 2.0)))
    run(say(ours, "a", turn("lệ phí", "ask_fee", 3.0)))
    tracker = run(ours.retrieve("a"))
    tracker.update(SlotSet("procedure", "ket_hon"))  # an action that failed before the save
    again = run(ours.retrieve("a"))
    assert again.get_slot("procedure") is None
    assert dumped(again) == dumped(run(plain.retrieve("a")))


def test_a_tracker_saved_twice_stores_each_event_once(database_url: str) -> None:
    ours, plain = stores(database_url)
    run(say(ours, "a", session_start(1.0) + turn("chào", "greet", 2.0)))
    run(say(ours, "a", turn("lệ phí", "ask_fee", 3.0)))
    tracker = run(ours.retrieve("a"))
    for event in turn("khai sinh", "ask_fee", 4.0, procedure="khai_sinh"):
        tracker.update(event)
    run(ours.save(tracker))
    for event in turn("cảm ơn", "greet", 5.0):
        tracker.update(event)
    run(ours.save(tracker))
    assert len(rows(database_url, "a")) == 3 + 4 + 4 + 5 + 4
    assert dumped(run(plain.retrieve("a"))) == dumped(tracker) == dumped(run(ours.retrieve("a")))


def test_a_remembered_message_costs_two_statements(database_url: str) -> None:
    """Read the head, insert the new events (and, on SQLite, read the head again): nothing else."""
    ours, _ = stores(database_url)
    run(say(ours, "a", session_start(1.0) + turn("chào", "greet", 2.0)))
    run(say(ours, "a", turn("lệ phí", "ask_fee", 3.0)))
    statements: list[str] = []
    if database_url.startswith("postgresql"):
        # counted by the driver's cursors: the store hands the remembered path's statements to psycopg2 itself
        import psycopg2.extensions

        class Counting(psycopg2.extensions.cursor):
            def execute(self, query, vars=None):  # type: ignore[no-untyped-def]
                text = query.decode() if isinstance(query, bytes) else query
                statements.append(text.split()[0].upper())
                return super().execute(query, vars)

        ours.engine.dispose()
        sa.event.listen(ours.engine, "connect", lambda dbapi_conn, _record: setattr(dbapi_conn, "cursor_factory",
                                                                                   Counting))
    else:
        sa.event.listen(ours.engine, "before_cursor_execute",
                        lambda conn, cursor, statement, *args: statements.append(statement.split()[0].upper()))
    run(say(ours, "a", turn("cảm ơn", "greet", 4.0)))
    expected = ["SELECT", "INSERT"] if database_url.startswith("postgresql") else ["SELECT", "INSERT", "SELECT"]
    assert statements == expected


def test_a_new_session_reads_like_rasa(database_url: str) -> None:
    ours, plain = stores(database_url)
    run(say(ours, "a", session_start(1.0) + turn("chào", "greet", 2.0, procedure="khai_sinh")))
    run(say(ours, "a", turn("lệ phí", "ask_fee", 3.0)))
    run(say(ours, "a", session_start(10_000.0) + turn("chào lại", "greet", 10_001.0)))
    tracker = run(ours.retrieve("a"))
    assert dumped(tracker) == dumped(run(plain.retrieve("a")))
    assert tracker.events[0].as_dict()["event"] == "session_started"  # as Rasa: from the latest session start
    assert tracker.get_slot("procedure") is None
    run(say(ours, "a", turn("cảm ơn", "greet", 10_002.0)))
    assert dumped(run(ours.retrieve("a"))) == dumped(run(plain.retrieve("a")))


def test_it_forgets_the_least_recent_conversations_beyond_its_limit(database_url: str) -> None:
    ours, plain = stores(database_url, remembered=2)
    for sender in ("a", "b", "c"):
        run(say(ours, sender, session_start(1.0) + turn("chào", "greet", 2.0)))
        run(say(ours, sender, turn("lệ phí", "ask_fee", 3.0)))
    assert list(ours._known) == ["b", "c"]
    assert dumped(run(ours.retrieve("a"))) == dumped(run(plain.retrieve("a")))
    assert run(ours.retrieve("nobody")) is None


def test_endpoints_yml_makes_rasa_use_it(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DVCBOT_ACTIONS_WEBHOOK_URL", "DVCBOT_RASA_LOCK_HOST", "DVCBOT_RASA_LOCK_PORT", "DVCBOT_RASA_LOCK_DB",
                 "DVCBOT_RASA_LOCK_PASSWORD"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("DVCBOT_RASA_LOCK_STORE", "in_memory")
    monkeypatch.setenv("DVCBOT_RASA_TRACKER_URL", database_url)
    monkeypatch.setenv("DVCBOT_RASA_TRACKER_DIALECT", database_url.split(":", 1)[0])
    monkeypatch.chdir(REPO_ROOT)  # the class is found by module path, from the repository root as in `make run`
    config = read_endpoint_config(os.path.join(REPO_ROOT, "endpoints.yml"), "tracker_store")
    store = create_tracker_store(config, DOMAIN)
    while not isinstance(store, SQLTrackerStore):  # Rasa wraps it (fail-safe, awaitable)
        store = store._tracker_store
    assert type(store) is RememberingSQLTrackerStore


def test_servers_starting_together_on_an_empty_database_take_turns_creating_the_tables(
        pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """PostgreSQL (production: several Rasa servers); SQLite serves one Rasa server (`make run`)."""
    import threading

    database_url, dialect = pg_url, "postgresql"
    made: list[RememberingSQLTrackerStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def start_one() -> None:
        try:
            start.wait()
            made.append(RememberingSQLTrackerStore(domain=DOMAIN, dialect=dialect, host=database_url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    with caplog.at_level("WARNING", logger="rasa.core.tracker_store"):
        threads = [threading.Thread(target=start_one) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not errors and len(made) == 4
    assert not [r for r in caplog.records if r.name == "rasa.core.tracker_store" and r.levelno >= logging.WARNING]
    run(say(made[0], "a", session_start(1.0) + turn("chào", "greet", 2.0)))
    assert len(dumped(run(made[3].retrieve("a")))) == 6  # from the session start on
