"""Following a dossier: one notification per change, exactly once across re-runs, restarts and concurrency."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from actions.dossiers import audit, notify, register
from actions.dossiers.actions import ActionDossierSubscribe, ActionDossierUnsubscribe
from actions.dossiers.models import Notification, Subscription
from dvcbot.db import make_engine
from tests.actions.dossiers.conftest import CODE, OTHER
from tests.actions.dossiers.helpers import look_up, replies, run, turn

Sessions = sessionmaker[Session]
SUBSCRIBE = ActionDossierSubscribe()
ALICE = "webchat:alice"


async def subscribe(sender: str = ALICE, code: str = CODE) -> list[str]:
    messages, _ = await run(SUBSCRIBE, turn("báo cho tôi khi có thay đổi", intent="dossier_subscribe",
                                            slots={"dossier_verified": code}, sender=sender, form_active=False))
    return replies(messages)


def change(sessions: Sessions, status: str, detail: str | None = None, code: str = CODE) -> None:
    with sessions() as session:
        register.set_status(session, code, register.Change(status, detail, shipment_status="delivered"
                                                            if status == "delivered" else None))


def detect(sessions: Sessions) -> int:
    with sessions() as session:
        return notify.detect_changes(session)


def rows(sessions: Sessions) -> list[Notification]:
    with sessions() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


async def test_a_change_is_notified_once_with_the_new_status(sessions: Sessions) -> None:
    await look_up(CODE, "4567")
    assert await subscribe() == ["utter_dossier_subscribed"]
    assert detect(sessions) == 0  # subscribing is not a change
    change(sessions, "delivered")
    assert detect(sessions) == 1
    assert detect(sessions) == 0
    (row,) = rows(sessions)
    assert (row.conversation_key, row.state, row.handled_at) == (ALICE, "pending", None)
    assert row.text.startswith("Hồ sơ đăng ký khai sinh của anh/chị vừa được cập nhật:")
    assert "• Tình trạng: Đã trả kết quả" in row.text and "EI261118012VN (đã giao thành công)" in row.text
    assert "4567" not in row.text and "0901" not in row.text


async def test_a_restart_does_not_notify_again(sessions: Sessions, database_url: str) -> None:
    await look_up(CODE, "4567")
    await subscribe()
    change(sessions, "delivered")
    assert detect(sessions) == 1
    # a new process: a new engine and sessions on the same database
    engine: Engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            assert notify.detect_changes(session) == 0
    finally:
        engine.dispose()
    assert len(rows(sessions)) == 1


async def test_a_run_with_stale_state_cannot_write_a_second_row(sessions: Sessions) -> None:
    await look_up(CODE, "4567")
    await subscribe()
    with sessions() as session:
        before = session.scalar(select(Subscription.last_history_id))
    change(sessions, "delivered")
    assert detect(sessions) == 1
    with sessions() as session:  # as if another run had read the subscription before this one committed
        session.execute(update(Subscription).values(last_history_id=before))
        session.commit()
    assert detect(sessions) == 0
    assert len(rows(sessions)) == 1


async def test_concurrent_runs_write_one_row(sessions: Sessions) -> None:
    for n in range(3):
        sender = f"webchat:c{n}"
        await look_up(CODE, "4567", sender=sender)
        await subscribe(sender)
    change(sessions, "delivered")
    barrier = threading.Barrier(4)
    counts: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            counts.append(detect(sessions))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert sum(counts) == 3
    assert sorted(r.conversation_key for r in rows(sessions)) == ["webchat:c0", "webchat:c1", "webchat:c2"]


async def test_several_changes_between_runs_make_one_message_with_the_latest(sessions: Sessions) -> None:
    await look_up(OTHER, "0111")
    await subscribe(code=OTHER)
    change(sessions, "processing", code=OTHER)
    change(sessions, "completed", code=OTHER)
    assert detect(sessions) == 1
    (row,) = rows(sessions)
    assert "• Tình trạng: Đã có kết quả" in row.text


async def test_subscribing_needs_a_verified_look_up_by_the_same_conversation(sessions: Sessions) -> None:
    assert await subscribe() == ["utter_dossier_subscribe_needs_lookup"]  # slot set, but never verified
    await look_up(CODE, "4567", sender="webchat:owner")
    assert await subscribe() == ["utter_dossier_subscribe_needs_lookup"]  # verified by someone else
    await look_up(CODE, "0000")
    assert await subscribe() == ["utter_dossier_subscribe_needs_lookup"]  # failed
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subscription)) == 0


async def test_a_dossier_outside_the_register_cannot_be_followed(sessions: Sessions) -> None:
    elsewhere = "000.00.09.H26-261116-0020"
    with sessions() as session:  # verified through the external API
        audit.record(session, ALICE, elsewhere, "verified")
        session.commit()
    assert await subscribe(code=elsewhere) == ["utter_dossier_subscribe_unsupported"]


async def test_unsubscribing_stops_notifications_and_a_new_subscription_starts_afresh(sessions: Sessions) -> None:
    unsubscribe = ActionDossierUnsubscribe()
    stop = turn("dừng thông báo", intent="dossier_unsubscribe", form_active=False)
    assert replies((await run(unsubscribe, stop))[0]) == ["utter_dossier_no_subscription"]
    await look_up(CODE, "4567")
    await subscribe()
    assert replies((await run(unsubscribe, stop))[0]) == ["utter_dossier_unsubscribed"]
    change(sessions, "delivered")
    assert detect(sessions) == 0
    await subscribe()  # again, within the verified period: nothing about the change made while away
    assert detect(sessions) == 0
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subscription)) == 1
