"""The console's editor pages over HTTP: the inbox (groups, labelling into a temporary copy of data/, refusals,
dismissing, roles, CSRF) and "Thử câu" against a fake Rasa ``/model/parse``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from actions.editor import inbox
from actions.editor.inbox_data import content_paths
from actions.editor.models import InboxItem
from bot.console.auth import hash_password
from dvcbot import PROJECT_ROOT
from dvcbot.content import check_content
from dvcbot.settings import get_settings
from tests.bot.handoff_helpers import add_staff, handoff_gateway
from tests.bot.test_console import PASSWORD, csrf_of, sign_in
from tests.fakes.rasa_parse import FakeRasaParse
from tests.fakes.telegram import FakeTelegram
from tests.fakes.zalo import FakeZalo
from tests.servers import free_port, serve

ABBREVIATIONS: dict[str, str] = {}


@dataclass
class Desk:
    url: str
    engine: Engine
    data: Path  # the temporary copy of data/ the console writes into
    rasa: FakeRasaParse


@pytest.fixture
def fake_parse_rasa() -> Iterator[tuple[FakeRasaParse, int]]:
    fake = FakeRasaParse()
    port = free_port()
    with serve(fake.app(), port):
        yield fake, port


@pytest.fixture
def desk(database_url: str, engine: Engine, tmp_path: Path, fake_parse_rasa: tuple[FakeRasaParse, int],
         fake_telegram: tuple[FakeTelegram, str], fake_zalo: tuple[FakeZalo, str]) -> Iterator[Desk]:
    for username, name, role in (("lan", "Chị Lan", "staff"), ("ha", "Chị Hà", "supervisor"),
                                 ("bt", "Biên tập", "editor")):
        add_staff(engine, username, name, role=role, password_hash=hash_password(PASSWORD))
    data = tmp_path / "data"
    shutil.copytree(PROJECT_ROOT / "data", data)
    for desk in handoff_gateway(database_url, engine, fake_parse_rasa, fake_telegram, fake_zalo,  # type: ignore[arg-type]
                                editor_data_dir=data, catalog_dir=data / "catalog",
                                post_offices_file=data / "post_offices.yml"):
        yield Desk(desk.gw.url, engine, data, fake_parse_rasa[0])


def add_items(engine: Engine, *messages: tuple[str, str, float, str]) -> list[int]:
    """Inbox rows as the action server records them: (text, predicted intent, confidence, reason)."""
    ids = []
    with Session(engine) as session:
        for n, (text, intent, confidence, reason) in enumerate(messages):
            msg = {"text": text, "intent": {"name": intent, "confidence": confidence},
                   "intent_ranking": [{"name": intent, "confidence": confidence}],
                   "message_id": f"msg-{n}-{text}", "metadata": {"channel": "webchat"}}
            item = inbox.new_item(f"webchat:{n}", msg, reason, ABBREVIATIONS)
            assert item is not None
            inbox.store(session, item)
            ids.append(item.id)
    return ids


def state(engine: Engine, ids: list[int]) -> list[InboxItem]:
    with Session(engine) as session:
        return list(session.scalars(select(InboxItem).where(InboxItem.id.in_(ids)).order_by(InboxItem.id)))


async def editor(url: str, username: str = "bt") -> tuple[httpx.AsyncClient, str]:
    client = httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=60)  # a label runs the checks
    assert (await sign_in(client, username)).status_code == 303
    page = await client.get("/console/inbox")
    assert page.status_code == 200, page.text
    return client, csrf_of(page.text)


GREETINGS = [("alo alo bưu điện ơi có ai trực không", "greet", 0.41, "low_confidence"),
             ("alo alo buu dien oi co ai truc ko", "greet", 0.38, "low_confidence"),
             ("alo bưu điện ơi có ai trực không ạ", "bot_challenge", 0.35, "fallback")]


async def test_label_a_group_round_trip(desk: Desk) -> None:
    greet_ids = add_items(desk.engine, *GREETINGS)
    [phone_id] = add_items(desk.engine, ("số em 0912345678, cháu Nguyễn Văn An làm giấy khai sinh cho con mất mấy "
                                         "ngày", "procedure_info", 0.44, "low_confidence"))
    client, csrf = await editor(desk.url)
    try:
        page = await client.get("/console/inbox")
        assert "Câu bot chưa hiểu" in page.text and "alo alo buu dien oi co ai truc ko" in page.text
        assert "*******678" in page.text and "0912345678" not in page.text
        assert page.text.count('class="card inbox-group"') == 2  # three greetings together, the question alone
        assert '<option value="procedure_duration">' in page.text and 'value="khai_sinh"' in page.text

        form = {"csrf": csrf, "action": "label", "intent": "greet", "procedure": "",
                "item": [str(i) for i in greet_ids]}
        done = await client.post("/console/inbox/label", data=form)
        assert done.status_code == 303, done.text
        # the first two are one sentence once accents and "ko" are folded: written once
        assert "labelled=3" in done.headers["location"] and "written=2" in done.headers["location"]

        edited = "cho hỏi làm giấy khai sinh cho con mất mấy ngày"  # the editor removed the name and the number
        form = {"csrf": csrf, "action": "label", "intent": "procedure_duration", "procedure": "khai_sinh",
                "item": str(phone_id), f"text-{phone_id}": edited}
        assert (await client.post("/console/inbox/label", data=form)).status_code == 303
        after = await client.get("/console/inbox")
        assert "alo alo" not in after.text and "Không còn câu nào cần xem" in after.text
    finally:
        await client.aclose()

    written = (desk.data / "nlu" / "inbox.yml").read_text(encoding="utf-8")
    assert ("- intent: greet\n  examples: |\n    - alo alo bưu điện ơi có ai trực không\n"
            "    - alo bưu điện ơi có ai trực không ạ\n") in written and "buu dien" not in written
    assert ('    - cho hỏi [làm giấy khai sinh]{"entity": "procedure", "value": "khai_sinh"} cho con mất mấy '
            'ngày\n') in written
    assert "Nguyễn" not in written and "678" not in written
    assert not (PROJECT_ROOT / "data" / "nlu" / "inbox.yml").exists()
    settings = get_settings()
    result = check_content(content_paths(desk.data, desk.data / "catalog", settings.post_offices_file), rasa=False)
    assert result.ok, [str(p) for p in result.errors]
    assert result.counts["examples"] > 0
    items = state(desk.engine, [*greet_ids, phone_id])
    assert {(i.state, i.label_intent, i.labelled_by) for i in items[:3]} == {("labelled", "greet", "bt")}
    assert items[3].label_procedure == "khai_sinh" and items[3].labelled_at is not None
    assert items[1].written_to == f"trùng câu số {greet_ids[0]}"
    lines = written.split("\n")
    for item in [items[0], *items[2:]]:
        file, line = item.written_to.rsplit(":", 1)  # type: ignore[union-attr]
        assert file == "data/nlu/inbox.yml" and lines[int(line) - 1].lstrip().startswith("- ")


async def test_a_sentence_already_known_is_not_written_twice(desk: Desk) -> None:
    ids = add_items(desk.engine, ("Xin chào!", "greet", 0.5, "low_confidence"))
    client, csrf = await editor(desk.url)
    try:
        form = {"csrf": csrf, "action": "label", "intent": "greet", "item": str(ids[0])}
        done = await client.post("/console/inbox/label", data=form)
        assert done.status_code == 303 and "written=0" in done.headers["location"]
    finally:
        await client.aclose()
    assert not (desk.data / "nlu" / "inbox.yml").exists()
    [item] = state(desk.engine, ids)
    assert item.state == "labelled" and item.written_to.startswith("data/nlu/chitchat.yml:")  # type: ignore[union-attr]


async def test_bad_labels_are_refused_and_nothing_is_written(desk: Desk) -> None:
    [hello, vague] = add_items(desk.engine, ("xin chào", "greet", 0.5, "low_confidence"),
                               ("em muốn hỏi cái này", "procedure_info", 0.3, "fallback"))
    chitchat = (desk.data / "nlu" / "chitchat.yml").read_text(encoding="utf-8")
    client, csrf = await editor(desk.url)
    try:
        # the same sentence is already an example of another intent
        form = {"csrf": csrf, "action": "label", "intent": "thank", "item": str(hello)}
        refused = await client.post("/console/inbox/label", data=form)
        assert refused.status_code == 400 and "data/nlu/chitchat.yml:5" in refused.text and "«greet»" in refused.text
        # a procedure the sentence does not name
        form = {"csrf": csrf, "action": "label", "intent": "procedure_info", "procedure": "khai_sinh",
                "item": str(vague)}
        refused = await client.post("/console/inbox/label", data=form)
        assert refused.status_code == 400 and "Không thấy tên thủ tục" in refused.text
        # an intent or a procedure that does not exist, no intent
        for intent, procedure in (("no_such_intent", ""), ("procedure_info", "no_such_procedure"), ("", "")):
            form = {"csrf": csrf, "action": "label", "intent": intent, "procedure": procedure, "item": str(vague)}
            assert (await client.post("/console/inbox/label", data=form)).status_code == 400
        # data that fails the content check (an editor's broken file): the check's file:line is shown
        with (desk.data / "nlu" / "out_of_scope.yml").open("a", encoding="utf-8") as f:
            f.write("- intent: thank\n  examples: |\n    - chao ban a\n")
        form = {"csrf": csrf, "action": "label", "intent": "procedure_info", "item": str(vague),
                f"text-{vague}": "em muốn hỏi về thủ tục này"}
        refused = await client.post("/console/inbox/label", data=form)
        assert refused.status_code == 400 and "không qua bước kiểm tra" in refused.text
        assert "data/nlu/out_of_scope.yml:" in refused.text and "under intent" in refused.text
        assert "em muốn hỏi cái này" in refused.text  # still listed
    finally:
        await client.aclose()
    assert not (desk.data / "nlu" / "inbox.yml").exists()
    assert (desk.data / "nlu" / "chitchat.yml").read_text(encoding="utf-8") == chitchat
    assert {i.state for i in state(desk.engine, [hello, vague])} == {"open"}


async def test_dismiss_and_stale_selection(desk: Desk) -> None:
    ids = add_items(desk.engine, ("asdfgh", "out_of_scope", 0.2, "fallback"), ("qwerty", "greet", 0.2, "fallback"))
    client, csrf = await editor(desk.url)
    try:
        form = {"csrf": csrf, "action": "dismiss", "item": [str(i) for i in ids]}
        done = await client.post("/console/inbox/label", data=form)
        assert done.status_code == 303 and "dismissed=2" in done.headers["location"]
        again = await client.post("/console/inbox/label", data=form)  # another editor's page, already handled
        assert again.status_code == 409 and "người khác xử lý" in again.text
    finally:
        await client.aclose()
    assert {(i.state, i.labelled_by) for i in state(desk.engine, ids)} == {("dismissed", "bt")}
    assert not (desk.data / "nlu" / "inbox.yml").exists()


async def test_only_editors_and_supervisors_and_only_with_csrf(desk: Desk) -> None:
    ids = add_items(desk.engine, ("alo", "greet", 0.3, "fallback"))
    async with httpx.AsyncClient(base_url=desk.url) as staff:
        assert (await sign_in(staff, "lan")).status_code == 303
        for path in ("/console/inbox", "/console/try"):
            assert (await staff.get(path)).status_code == 403
        assert (await staff.post("/console/inbox/label", data={"item": str(ids[0]), "intent": "greet"})
                ).status_code == 403
        home = await staff.get("/console/")
        assert "/console/inbox" not in home.text
    async with httpx.AsyncClient(base_url=desk.url) as anonymous:
        resp = await anonymous.get("/console/inbox")
        assert resp.status_code == 303 and "/console/login" in resp.headers["location"]
    client, _ = await editor(desk.url, "ha")  # a supervisor
    try:
        page = await client.get("/console/inbox")
        assert 'href="/console/inbox"' in page.text and 'href="/console/try"' in page.text
        no_csrf = await client.post("/console/inbox/label", data={"csrf": "x", "item": str(ids[0]), "intent": "greet"})
        assert no_csrf.status_code == 403
    finally:
        await client.aclose()
    assert state(desk.engine, ids)[0].state == "open"


PARSE_OK = {
    "intent": {"name": "procedure_documents", "confidence": 0.91},
    "intent_ranking": [{"name": "procedure_documents", "confidence": 0.91},
                       {"name": "procedure_info", "confidence": 0.05}],
    "entities": [{"entity": "procedure", "value": "khai_sinh", "start": 4, "end": 18,
                  "extractor": "CatalogEntityExtractor"}],
    "normalized_text": "làm giấy khai sinh cần giấy tờ gì",
}
PARSE_FALLBACK = {
    "intent": {"name": "nlu_fallback", "confidence": 0.3},
    "intent_ranking": [{"name": "nlu_fallback", "confidence": 0.3}, {"name": "greet", "confidence": 0.21},
                       {"name": "thank", "confidence": 0.2}],
    "entities": [], "normalized_text": "không hiểu",
}


async def test_try_a_sentence(desk: Desk) -> None:
    desk.rasa.parses.update({"lam giay khai sinh can giay to gi": PARSE_OK, "ko hieu": PARSE_FALLBACK})
    client, csrf = await editor(desk.url)
    try:
        page = await client.get("/console/try")
        assert page.status_code == 200 and "Thử một câu" in page.text
        shown = await client.post("/console/try", data={"csrf": csrf, "text": "lam giay khai sinh can giay to gi"})
        assert shown.status_code == 200
        assert "làm giấy khai sinh cần giấy tờ gì" in shown.text  # the normalised text
        assert "procedure_documents" in shown.text and "91.0%" in shown.text and "<meter" in shown.text
        assert "khai_sinh" in shown.text and "giay khai sinh" in shown.text
        assert "trả lời theo ý định" in shown.text and "hộp thư" not in shown.text.split('id="verdict"')[1][:300]
        fallback = await client.post("/console/try", data={"csrf": csrf, "text": "ko hieu"})
        assert "hỏi lại người dân" in fallback.text and "dưới ngưỡng 30%" in fallback.text
        assert "nlu_fallback" not in fallback.text.split('id="ranking"')[1]  # the real intents only
        empty = await client.post("/console/try", data={"csrf": csrf, "text": "   "})
        assert empty.status_code == 400
        assert (await client.post("/console/try", data={"text": "x"})).status_code == 403  # no CSRF
    finally:
        await client.aclose()
    assert desk.rasa.parsed == ["lam giay khai sinh can giay to gi", "ko hieu"]


async def test_try_when_rasa_is_down_or_refuses(desk: Desk, database_url: str, engine: Engine,
                                                fake_telegram: tuple[FakeTelegram, str],
                                                fake_zalo: tuple[FakeZalo, str]) -> None:
    client, csrf = await editor(desk.url)
    try:
        desk.rasa.token = "another-token"
        refused = await client.post("/console/try", data={"csrf": csrf, "text": "xin chao"})
        assert refused.status_code == 503 and "từ chối mã bảo vệ" in refused.text
    finally:
        await client.aclose()
    down = (FakeRasaParse(), free_port())  # nothing listens on that port
    for other in handoff_gateway(database_url, engine, down, fake_telegram, fake_zalo,  # type: ignore[arg-type]
                                 editor_data_dir=desk.data):
        client, csrf = await editor(other.gw.url)
        try:
            resp = await client.post("/console/try", data={"csrf": csrf, "text": "xin chao"})
            assert resp.status_code == 503 and "Không kết nối được với máy chủ Rasa" in resp.text
        finally:
            await client.aclose()
