"""Dossier notifications reach the citizen's conversation once, and only conversations that exist."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from actions.dossiers import notify, register
from actions.dossiers.importer import import_csv
from actions.dossiers.models import Notification
from bot.database import Database
from bot.models import Conversation, Message
from bot.notifications import NotificationRelay
from bot.outbox import Outbox

REGISTER = Path(__file__).resolve().parents[1] / "fixtures" / "dossiers" / "register.csv"


def follow_and_change(engine: Engine, keys: list[str]) -> None:
    with Session(engine) as session:
        import_csv(session, REGISTER)
        dossier = register.find(session, "000.00.04.H51-200221-0001")
        assert dossier is not None
        for key in keys:
            notify.subscribe(session, dossier.id, key)
        session.commit()
        register.set_status(session, dossier.code, register.Change("delivered", shipment_status="delivered"))
        assert notify.detect_changes(session) == len(keys)


def test_relay_puts_each_notice_into_its_conversation_once(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(Conversation(key="webchat:alice", channel="webchat"))
        session.commit()
    follow_and_change(engine, ["webchat:alice", "webchat:gone"])
    db = Database(engine)
    relay = NotificationRelay(db, Outbox(db, {}))
    with Session(engine) as session:
        assert relay.relay_once(session) == 2
    with Session(engine) as session:
        assert relay.relay_once(session) == 0  # nothing twice
        states = dict(session.execute(select(Notification.conversation_key, Notification.state)).all())
        assert states == {"webchat:alice": "sent", "webchat:gone": "undeliverable"}
        (line,) = session.scalars(select(Message)).all()
        assert (line.direction, line.sender) == ("out", "system")
        assert line.text is not None and "vừa được cập nhật" in line.text and "Đã trả kết quả" in line.text
