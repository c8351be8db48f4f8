"""Rasa's SQL tracker store, minus the reload of every conversation on every message.

Rasa 3.6's ``SQLTrackerStore`` reads back every event of the conversation's current session on each message (ORM
rows, then JSON), and before saving counts them again to know which events are new; then it inserts the new ones
one statement at a time. That was about a third of a Rasa server's CPU time under load here (py-spy, bench/).

:class:`RememberingSQLTrackerStore` keeps, for recently active conversations, the serialised events of the current
session as it read or wrote them, with the highest event id the conversation had in the database then (its
*head*). Each retrieve asks the database for the current head (one indexed ``max(id)``, outside a transaction):
when it is the one remembered, nothing was written meanwhile — by this server or another replica — and the
remembered events are used; otherwise the conversation is read from the database exactly as Rasa does. The
tracker is rebuilt from the events every time, as Rasa does, so a caller that changes a tracker it got cannot
change what is remembered. New events are written in one multi-row ``INSERT`` (on PostgreSQL with ``RETURNING``,
which gives the new head). A message the store remembers thus costs two statements instead of Rasa's five or more;
on PostgreSQL through psycopg2 both go to the driver directly, without SQLAlchemy compiling the insert each time.

Saving a tracker this store returned relies on Rasa's conversation lock (the lock store) as Rasa's own store does:
between retrieve and save no one else writes the conversation, so its stored events are the ones it was read with.
Any other tracker is compared with the database first (its head, else Rasa's count of the session's events). The
table, its rows and what ``retrieve_full_tracker`` and ``keys`` return are Rasa's own, so the store can be
switched back to ``type: SQL`` at any time.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import ujson
from psycopg2.extras import execute_values
from rasa.core.tracker_store import SQLTrackerStore, is_postgresql_url
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

DEFAULT_REMEMBERED = 1000  # conversations; a few hundred kB each at most
_READ = "_dvcbot_read_at"  # on a tracker retrieve() built: (head, number of stored events) it was read at


_COLUMNS = ("sender_id", "type_name", "timestamp", "intent_name", "action_name", "data")  # what _row() gives

SCHEMA_LOCK = 0x64766362  # PostgreSQL advisory lock key ("dvcb") held while a server creates Rasa's tables


@contextmanager
def _creating_tables_alone(options: dict[str, Any]) -> Iterator[None]:
    """On PostgreSQL, hold an advisory lock while Rasa creates its tables at start-up.

    Rasa servers started together on an empty database all run ``CREATE TABLE events`` at once; one of them failed
    with a ``UniqueViolation`` on PostgreSQL's catalogue, logged it and waited 5 s before trying again. Taking turns,
    the first creates the tables and the others find them. Nothing happens on SQLite, nor when the server cannot be
    reached yet (Rasa's own start-up loop waits for it).
    """
    url = SQLTrackerStore.get_db_url(
        options.get("dialect", "sqlite"), options.get("host"), options.get("port"), options.get("db", "rasa.db"),
        options.get("username"), options.get("password"), options.get("login_db"), options.get("query"))
    if not is_postgresql_url(url) or options.get("login_db"):
        yield
        return
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        conn = engine.connect()
    except sa.exc.DBAPIError:
        engine.dispose()
        yield
        return
    try:
        conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK})
        yield
    finally:
        conn.close()  # ends the session: the lock goes with it
        engine.dispose()


@dataclass(frozen=True)
class _Known:
    head: int  # the conversation's highest event id in the database when ``events`` were read or written
    events: tuple[str, ...]  # the current session's events, serialised as stored, oldest first


class RememberingSQLTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` that remembers the current session of recently active conversations (see module)."""

    def __init__(self, *args: Any, remembered: int = DEFAULT_REMEMBERED, **kwargs: Any) -> None:
        with _creating_tables_alone(kwargs if not args else {}):
            super().__init__(*args, **kwargs)
        self.remembered = int(remembered)
        self._known: OrderedDict[str, _Known] = OrderedDict()
        event = self.SQLEvent
        self._head_query = sa.select(sa.func.max(event.id)).where(event.sender_id == sa.bindparam("sender"))
        # the same pool's connections for single reads outside a transaction
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # on PostgreSQL through psycopg2 (Rasa's driver), the two statements of a remembered message go to the
        # driver directly
        self._raw = self.engine.dialect.name == "postgresql" and self.engine.dialect.driver == "psycopg2"
        table = event.__tablename__
        self._raw_head = f"SELECT max(id) FROM {table} WHERE sender_id = %s"
        self._raw_insert = f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES %s RETURNING id"
        self.hits = 0  # retrieves answered from memory (tests and benchmarks read these)
        self.misses = 0

    def _head(self, session: Any, sender_id: str) -> int | None:
        head = session.execute(self._head_query, {"sender": sender_id}).scalar()
        return None if head is None else int(head)

    def _remember(self, sender_id: str, known: _Known | None) -> None:
        if known is None or self.remembered <= 0:
            self._known.pop(sender_id, None)
            return
        self._known[sender_id] = known
        self._known.move_to_end(sender_id)
        while len(self._known) > self.remembered:
            self._known.popitem(last=False)

    def _read_head(self, sender_id: str) -> int | None:
        """The conversation's highest event id, read outside a transaction (one round trip, no BEGIN/ROLLBACK)."""
        with self._autocommit.connect() as conn:
            if self._raw:  # psycopg2 itself: half the CPU time of SQLAlchemy's execute
                cursor = conn.connection.cursor()
                try:
                    cursor.execute(self._raw_head, (sender_id,))
                    head = cursor.fetchone()[0]
                finally:
                    cursor.close()
            else:
                head = conn.execute(self._head_query, {"sender": sender_id}).scalar()
        return None if head is None else int(head)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The tracker of the conversation's latest session, as ``SQLTrackerStore.retrieve`` returns it."""
        head = self._read_head(sender_id)
        known = self._known.get(sender_id)
        if head is not None and known is not None and known.head == head:
            self.hits += 1
            self._known.move_to_end(sender_id)
            serialised = known.events
        else:
            self.misses += 1
            with self.session_scope() as session:
                head = self._head(session, sender_id)  # again, inside the transaction that reads the events
                rows = (self._event_query(session, sender_id, fetch_events_from_all_sessions=False)
                        .with_entities(self.SQLEvent.data).all())
            serialised = tuple(row.data for row in rows)
            self._remember(sender_id, _Known(head, serialised) if head is not None else None)
        if not self.domain or not serialised:
            return None
        # ujson: the same values as json.loads (floats included), three times faster
        tracker = DialogueStateTracker.from_dict(sender_id, [ujson.loads(data) for data in serialised],
                                                 self.domain.slots)
        tracker.__dict__[_READ] = (head, len(serialised))  # what save() may trust (see there)
        return tracker

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Store the tracker's events that are not stored yet (what ``SQLTrackerStore.save`` stores).

        A tracker this store returned, whose conversation the store still remembers at the head it was read at,
        was worked on under Rasa's conversation lock since: its first events are the stored ones, and the store
        writes the rest without asking the database first. Any other tracker is compared with the database as Rasa
        does (the head, else Rasa's count of the session's events).
        """
        await self.stream_events(tracker)
        sender_id = tracker.sender_id
        known = self._known.get(sender_id)
        read = tracker.__dict__.get(_READ)
        if known is not None and read == (known.head, len(known.events)) and self._raw:
            events = list(tracker.events)[len(known.events):]
            rows = [self._row(sender_id, event) for event in events]
            head: int | None = self._append_raw(rows) if rows else known.head
        else:
            head, known, events, rows = self._save_checked(tracker, known, read)
        if not rows:
            return
        if known is None or head is None or any(isinstance(event, SessionStarted) for event in events):
            # a new session starts: what the next retrieve returns is decided by Rasa's own query
            self._remember(sender_id, None)
            tracker.__dict__.pop(_READ, None)
        else:
            self._remember(sender_id, _Known(head, known.events + tuple(row["data"] for row in rows)))
            tracker.__dict__[_READ] = (head, len(tracker.events))  # saved again later: the rest only

    def _save_checked(self, tracker: DialogueStateTracker, known: _Known | None, read: Any
                      ) -> tuple[int | None, _Known | None, list[Any], list[dict[str, Any]]]:
        """Save through SQLAlchemy, comparing with the database unless the tracker can be trusted (see save)."""
        sender_id = tracker.sender_id
        with self.session_scope() as session:
            if known is not None and read == (known.head, len(known.events)):
                head: int | None = known.head
            else:
                head = self._head(session, sender_id)
                if known is None or known.head != head:
                    known = None
            stored = len(known.events) if known is not None else self._event_query(
                session, sender_id, fetch_events_from_all_sessions=False).count()
            events = list(tracker.events)[stored:]
            rows = [self._row(sender_id, event) for event in events]
            if rows:
                head = self._insert(session, sender_id, rows)
                session.commit()
        return head, known, events, rows

    @staticmethod
    def _row(sender_id: str, event: Any) -> dict[str, Any]:
        data = event.as_dict()
        return {
            "sender_id": sender_id,
            "type_name": event.type_name,
            "timestamp": data.get("timestamp"),
            "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
            "action_name": data.get("name"),
            "data": json.dumps(data),
        }

    def _append_raw(self, rows: list[dict[str, Any]]) -> int:
        """Insert ``rows`` with psycopg2 itself, in one statement and transaction; the new head (the last id).

        The same ``INSERT … RETURNING`` as :meth:`_insert`, without SQLAlchemy's compiling of a multi-row statement
        and its ORM session: 1.7 → 0.3 ms of CPU for a message's six events here."""
        with self.engine.begin() as conn:
            cursor = conn.connection.cursor()
            try:
                ids = execute_values(cursor, self._raw_insert, [tuple(row[c] for c in _COLUMNS) for row in rows],
                                     fetch=True)
            finally:
                cursor.close()
        return int(max(i for (i,) in ids))

    def _insert(self, session: Any, sender_id: str, rows: list[dict[str, Any]]) -> int | None:
        """Insert ``rows``; the conversation's head afterwards (under the conversation lock: the last id)."""
        table = self.SQLEvent.__table__
        if self.engine.dialect.name == "postgresql":  # one statement: the rows and their ids
            ids = session.execute(table.insert().values(rows).returning(table.c.id)).scalars().all()
            return int(max(ids))
        session.execute(table.insert(), rows)
        return self._head(session, sender_id)
