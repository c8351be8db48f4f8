"""Rasa's SQL tracker store, minus the reload of every conversation on every message.

Rasa 3.6's ``SQLTrackerStore`` reads back every event of the conversation's current session on each message (ORM
rows, then JSON), and before saving counts them again to know which events are new; then it inserts the new ones
one statement at a time. That was about a third of a Rasa server's CPU time under load here (py-spy, bench/).

:class:`RememberingSQLTrackerStore` keeps, for recently active conversations, the serialised events of the current
session as it read or wrote them, with the highest event id the conversation had in the database then (its
*head*). Each retrieve and save still asks the database for the current head (one indexed ``max(id)``): when it is
the one remembered, nothing was written meanwhile — by this server or another replica — and the remembered events
are used; otherwise the conversation is read from the database exactly as Rasa does. The tracker is rebuilt from
the events every time, as Rasa does, so a caller that changes a tracker it got cannot change what is remembered.
New events are written in one multi-row ``INSERT``; the table, its rows and what ``retrieve_full_tracker`` and
``keys`` return are Rasa's own, so the store can be switched back to ``type: SQL`` at any time.

The conversation lock (Rasa's lock store) makes a server work on a conversation alone from retrieve to save; the
head check makes the store correct without relying on that.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

DEFAULT_REMEMBERED = 1000  # conversations; a few hundred kB each at most


@dataclass(frozen=True)
class _Known:
    head: int  # the conversation's highest event id in the database when ``events`` were read or written
    events: tuple[str, ...]  # the current session's events, serialised as stored, oldest first


class RememberingSQLTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` that remembers the current session of recently active conversations (see module)."""

    def __init__(self, *args: Any, remembered: int = DEFAULT_REMEMBERED, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.remembered = int(remembered)
        self._known: OrderedDict[str, _Known] = OrderedDict()
        event = self.SQLEvent
        self._head_query = sa.select(sa.func.max(event.id)).where(event.sender_id == sa.bindparam("sender"))
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

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The tracker of the conversation's latest session, as ``SQLTrackerStore.retrieve`` returns it."""
        with self.session_scope() as session:
            head = self._head(session, sender_id)
            known = self._known.get(sender_id)
            if head is not None and known is not None and known.head == head:
                self.hits += 1
                self._known.move_to_end(sender_id)
                serialised = known.events
            else:
                self.misses += 1
                rows = (self._event_query(session, sender_id, fetch_events_from_all_sessions=False)
                        .with_entities(self.SQLEvent.data).all())
                serialised = tuple(row.data for row in rows)
                self._remember(sender_id, _Known(head, serialised) if head is not None else None)
        if not self.domain or not serialised:
            return None
        return DialogueStateTracker.from_dict(sender_id, [json.loads(data) for data in serialised],
                                              self.domain.slots)

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Store the tracker's events that are not stored yet (what ``SQLTrackerStore.save`` stores)."""
        await self.stream_events(tracker)
        sender_id = tracker.sender_id
        with self.session_scope() as session:
            known = self._known.get(sender_id)
            head = self._head(session, sender_id)
            if known is not None and known.head == head:
                stored = len(known.events)
            else:
                known = None
                stored = self._event_query(session, sender_id, fetch_events_from_all_sessions=False).count()
            events = list(tracker.events)[stored:]
            rows = []
            for event in events:
                data = event.as_dict()
                rows.append({
                    "sender_id": sender_id,
                    "type_name": event.type_name,
                    "timestamp": data.get("timestamp"),
                    "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
                    "action_name": data.get("name"),
                    "data": json.dumps(data),
                })
            if rows:
                session.execute(self.SQLEvent.__table__.insert(), rows)
                head = self._head(session, sender_id)
            session.commit()
        if any(isinstance(event, SessionStarted) for event in events) or known is None or head is None:
            # a new session starts: what the next retrieve returns is decided by Rasa's own query
            self._remember(sender_id, None)
        else:
            self._remember(sender_id, _Known(head, known.events + tuple(row["data"] for row in rows)))
