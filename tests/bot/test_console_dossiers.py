"""The console's dossier register page: staff find a dossier and record its new status (CSRF-protected)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from actions.dossiers import notify
from actions.dossiers.importer import import_csv
from actions.dossiers.models import Dossier, StatusChange
from bot.console.auth import hash_password
from tests.bot.handoff_helpers import StaffDesk, add_staff, handoff_gateway
from tests.bot.test_console import PASSWORD, console, csrf_of, sign_in
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import FakeTelegram
from tests.fakes.zalo import FakeZalo

REGISTER = Path(__file__).resolve().parents[1] / "fixtures" / "dossiers" / "register.csv"
CODE = "000.00.04.H51-200221-0001"


@pytest.fixture
def desk(database_url: str, engine: Engine, fake_rasa: tuple[FakeRasa, int],
         fake_telegram: tuple[FakeTelegram, str], fake_zalo: tuple[FakeZalo, str]) -> Iterator[StaffDesk]:
    add_staff(engine, "lan", "Chị Lan", role="staff", password_hash=hash_password(PASSWORD))
    add_staff(engine, "bt", "Biên tập", role="editor", password_hash=hash_password(PASSWORD))
    with Session(engine) as session:
        import_csv(session, REGISTER)
    yield from handoff_gateway(database_url, engine, fake_rasa, fake_telegram, fake_zalo)


async def test_staff_find_a_dossier_and_set_its_status(desk: StaffDesk, engine: Engine) -> None:
    client, _ = await console(desk.gw.url, "lan")
    try:
        page = await client.get("/console/dossiers", params={"code": "000 00 04 h51 200221 0001"})
        assert page.status_code == 200 and "Đăng ký khai sinh" in page.text and CODE in page.text
        missing = await client.get("/console/dossiers", params={"code": "000.00.04.H51-200221-0999"})
        assert "Không có hồ sơ nào với mã này" in missing.text
        bad = await client.get("/console/dossiers", params={"code": "abc"})
        assert "không đúng định dạng" in bad.text

        form = {"code": CODE, "status": "additional_documents", "detail": "", "csrf": csrf_of(page.text)}
        refused = await client.post("/console/dossiers/status", data=form)
        assert refused.status_code == 400 and "phải ghi rõ giấy tờ" in refused.text
        no_csrf = await client.post("/console/dossiers/status", data={**form, "csrf": "x", "detail": "Ảnh thẻ"})
        assert no_csrf.status_code == 403
        done = await client.post("/console/dossiers/status", data={**form, "detail": "Ảnh thẻ 3x4"})
        assert done.status_code == 303 and done.headers["location"].endswith("updated=1")
    finally:
        await client.aclose()
    with Session(engine) as session:
        dossier = session.scalars(select(Dossier).where(Dossier.code == CODE)).one()
        assert (dossier.status, dossier.status_detail) == ("additional_documents", "Ảnh thẻ 3x4")
        last = session.scalars(select(StatusChange).order_by(StatusChange.id.desc())).first()
        assert last is not None and last.source == "staff"
        assert notify.detect_changes(session) == 0  # nobody follows it here; the detection sees the change


async def test_editors_cannot_change_the_register(desk: StaffDesk) -> None:
    async with httpx.AsyncClient(base_url=desk.gw.url) as client:
        assert (await sign_in(client, "bt")).status_code == 303
        assert (await client.get("/console/dossiers")).status_code == 403
    async with httpx.AsyncClient(base_url=desk.gw.url) as anonymous:
        resp = await anonymous.get("/console/dossiers")
        assert resp.status_code in (302, 303) and "/console/login" in resp.headers["location"]
