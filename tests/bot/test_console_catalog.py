"""The console's catalog pages over HTTP: list and search, edit a record (written back to a temporary copy of
data/catalog, loaded into the database, recorded in the history), errors shown next to their field with nothing
written, stale forms refused, a new procedure, roles."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from actions.catalog.loader import load_catalog
from actions.catalog.models import Procedure
from actions.catalog.schema import read_catalog
from actions.editor.models import CatalogChange
from bot.console.auth import hash_password
from dvcbot import PROJECT_ROOT
from tests.bot.handoff_helpers import StaffDesk, add_staff, handoff_gateway
from tests.bot.test_console import PASSWORD, sign_in
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import FakeTelegram
from tests.fakes.zalo import FakeZalo


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """A copy of the repository's catalog, laid out as ``<root>/data/catalog``."""
    target = tmp_path / "data" / "catalog"
    shutil.copytree(PROJECT_ROOT / "data" / "catalog", target)
    return target


@pytest.fixture
def desk(database_url: str, engine: Engine, fake_rasa: tuple[FakeRasa, int], catalog_dir: Path,
         fake_telegram: tuple[FakeTelegram, str], fake_zalo: tuple[FakeZalo, str]) -> Iterator[StaffDesk]:
    for username, name, role in (("lan", "Chị Lan", "staff"), ("ha", "Chị Hà", "supervisor"),
                                 ("bt", "Biên tập", "editor")):
        add_staff(engine, username, name, role=role, password_hash=hash_password(PASSWORD))
    catalog, errors = read_catalog(catalog_dir, catalog_dir.parent.parent)
    assert not errors
    with Session(engine) as session:
        load_catalog(session, catalog)
    yield from handoff_gateway(database_url, engine, fake_rasa, fake_telegram, fake_zalo, catalog_dir=catalog_dir)


class FormReader(HTMLParser):
    """What a browser would submit for the first POST form on a page: (name, value) pairs in order."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self.action = ""
        self._in_form = self._done = False
        self._textarea: str | None = None
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method") == "post" and not self._done and "catalog" in a.get("action", ""):
            self._in_form, self.action = True, a["action"]
        if not self._in_form:
            return
        if tag == "input" and "name" in a:
            if a.get("type") == "checkbox" and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value", "")))
        elif tag == "textarea":
            self._textarea, self._text = a["name"], []
        elif tag == "select":
            self._select, self._options = a["name"], []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._in_form:
            self._in_form, self._done = False, True
        elif tag == "textarea" and self._textarea is not None:
            self.fields.append((self._textarea, "".join(self._text)))
            self._textarea = None
        elif tag == "select" and self._select is not None:
            chosen = [v for v, sel in self._options if sel] or [self._options[0][0] if self._options else ""]
            self.fields.append((self._select, chosen[0]))
            self._select = None


def read_form(html: str) -> list[tuple[str, str]]:
    reader = FormReader()
    reader.feed(html)
    assert reader.fields, "no catalog form on the page"
    return reader.fields


def replace(fields: list[tuple[str, str]], **values: str) -> list[tuple[str, str]]:
    out = [(k, values[k]) if k in values else (k, v) for k, v in fields]
    return out


def body(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Form fields as httpx sends them (repeated names in their order)."""
    out: dict[str, list[str]] = {}
    for key, value in fields:
        out.setdefault(key, []).append(value)
    return out


def get(fields: list[tuple[str, str]], name: str) -> str:
    return next(v for k, v in fields if k == name)


async def editor(desk: StaffDesk, username: str = "bt") -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=desk.gw.url, follow_redirects=False, timeout=60)  # a loaded CI machine
    assert (await sign_in(client, username)).status_code == 303
    return client


def ids_on(html: str) -> set[str]:
    return set(re.findall(r'<tr data-id="([a-z0-9_]+)"', html))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def changes(engine: Engine) -> list[CatalogChange]:
    with Session(engine) as session:
        return list(session.scalars(select(CatalogChange).order_by(CatalogChange.id)))


def procedure(engine: Engine, pid: str) -> Procedure | None:
    with Session(engine) as session:
        return session.get(Procedure, pid)


async def test_list_and_search_without_diacritics(desk: StaffDesk, catalog_dir: Path) -> None:
    client = await editor(desk)
    try:
        page = await client.get("/console/catalog")
        assert page.status_code == 200
        catalog, _ = read_catalog(catalog_dir)
        assert ids_on(page.text) == set(catalog.procedures)
        assert 'href="/console/catalog"' in page.text and ">Thủ tục</a>" in page.text  # in the menu
        # verified date and the empty fields of khai_sinh (no code, no processing time in the catalog)
        row = page.text.split('<tr data-id="khai_sinh">')[1].split("</tr>")[0]
        assert "27/11/2026" in row and "Mã thủ tục quốc gia" in row and "Thời hạn giải quyết" in row
        assert "ghi chú chưa xác minh" in row

        by_name = await client.get("/console/catalog", params={"q": "dang ky khai sinh"})
        assert "khai_sinh" in ids_on(by_name.text) and "ho_chieu" not in ids_on(by_name.text)
        by_alias = await client.get("/console/catalog", params={"q": "làm khai sinh cho con"})
        assert ids_on(by_alias.text) == {"khai_sinh"}
        by_id = await client.get("/console/catalog", params={"q": "gia_han_tam_tru"})
        assert ids_on(by_id.text) == {"gia_han_tam_tru"}
        by_field = await client.get("/console/catalog", params={"q": "CƯ TRÚ"})
        residence = {pid for pid, f in catalog.fields.items() if f == "Cư trú"}
        assert residence and residence <= ids_on(by_field.text) and "ho_chieu" not in ids_on(by_field.text)
        by_level = await client.get("/console/catalog", params={"level": "police"})
        police = {pid for pid, (_, rec) in catalog.procedures.items() if rec.authority.level == "police"}
        assert ids_on(by_level.text) == police and police
        by_level_word = await client.get("/console/catalog", params={"q": "cong an"})
        assert police <= ids_on(by_level_word.text)
        nothing = await client.get("/console/catalog", params={"q": "xyzzy"})
        assert ids_on(nothing.text) == set() and "Không có thủ tục nào khớp" in nothing.text
    finally:
        await client.aclose()


async def test_edit_a_field_writes_the_file_loads_the_database_and_records_history(
        desk: StaffDesk, catalog_dir: Path, engine: Engine) -> None:
    path = catalog_dir / "ho_tich.yml"
    original = path.read_text(encoding="utf-8")
    client = await editor(desk)
    try:
        page = await client.get("/console/catalog/khai_sinh")
        assert page.status_code == 200
        fields = read_form(page.text)
        today = get(fields, "verified_on")
        assert "Đã điền sẵn ngày hôm nay" in page.text and "lần kiểm tra trước: 2026-11-27" in page.text
        # the form as shown, with the old verified date: nothing changes, nothing is written
        same = await client.post("/console/catalog/khai_sinh", data=body(replace(fields, verified_on="2026-11-27")))
        assert same.status_code == 303 and same.headers["location"].endswith("saved=nothing")
        assert path.read_text(encoding="utf-8") == original and changes(engine) == []

        form = replace(fields, processing_time="Trong ngày làm việc", verified_on=today)
        saved = await client.post("/console/catalog/khai_sinh", data=body(form))
        assert saved.status_code == 303 and saved.headers["location"] == "/console/catalog/khai_sinh?saved=fields"
        after = await client.get(saved.headers["location"])
        assert "Bot trả lời theo thông tin mới ngay" in after.text
    finally:
        await client.aclose()
    text = path.read_text(encoding="utf-8")
    changed = [(a, b) for a, b in zip(original.splitlines(), text.splitlines(), strict=True) if a != b]
    expected = [("    processing_time: null", "    processing_time: Trong ngày làm việc")]
    if today != "2026-11-27":
        expected.append(("    verified_on: 2026-11-27", f"    verified_on: {today}"))
    assert changed == expected  # every other line, comments and other records included, is as it was
    proc = procedure(engine, "khai_sinh")
    assert proc is not None and proc.processing_time == "Trong ngày làm việc"
    assert proc.verified_on == dt.date.fromisoformat(today)
    [change] = changes(engine)
    assert (change.procedure_id, change.editor, change.action, change.file) == (
        "khai_sinh", "bt", "update", "data/catalog/ho_tich.yml")
    assert change.fields[0] == "processing_time"
    assert change.before["processing_time"] is None and change.after["processing_time"] == "Trong ngày làm việc"


async def test_invalid_input_is_shown_by_field_and_nothing_is_written(desk: StaffDesk, catalog_dir: Path,
                                                                      engine: Engine) -> None:
    before = snapshot(catalog_dir)
    client = await editor(desk)
    try:
        fields = read_form((await client.get("/console/catalog/khai_sinh")).text)
        sources = get(fields, "sources")
        cases = {
            "sources": replace(fields, sources="ftp://example.org/khai-sinh\n" + sources),
            "authority_level": replace(fields, authority_level="county"),
            "name": replace(fields, name=""),
            "aliases": replace(fields, aliases=get(fields, "aliases") + "\nđăng ký tạm trú"),  # tam_tru's
            "online_url": replace(fields, online_url="dichvucong.gov.vn"),
            "verified_on": replace(fields, verified_on="27/11/2026"),
        }
        for field, form in cases.items():
            resp = await client.post("/console/catalog/khai_sinh", data=body(form))
            assert resp.status_code == 400, field
            assert "Chưa lưu, không có gì bị ghi" in resp.text
            assert f'<p class="field-error" id="err-{field}"' in resp.text, field
            assert f'id="{field}"' in resp.text and 'aria-invalid="true"' in resp.text
            if field != "verified_on":  # the catalog check's own message, with file:line
                assert re.search(r"data/catalog/(ho_tich|cu_tru)\.yml:\d+", resp.text), field
        # the editor's input is kept
        resp = await client.post("/console/catalog/khai_sinh", data=body(cases["sources"]))
        assert "ftp://example.org/khai-sinh" in resp.text and "not a web link" in resp.text
        # documents: a count that is not a number
        bad_doc = [*fields, ("doc_name", "Ảnh 4x6"), ("doc_form", ""), ("doc_kind", ""), ("doc_count", "hai"),
                   ("doc_note", "")]
        resp = await client.post("/console/catalog/khai_sinh", data=body(bad_doc))
        assert resp.status_code == 400 and 'id="err-documents"' in resp.text and "số nguyên" in resp.text
        # a new procedure with an id already used, and one with a bad id
        new = replace(read_form((await client.get("/console/catalog/new")).text), id="khai_sinh",
                      name="Thủ tục thử", sources="https://dichvucong.gov.vn/")
        resp = await client.post("/console/catalog/new", data=body(new))
        assert resp.status_code == 400 and 'id="err-id"' in resp.text and "đã có thủ tục khác dùng" in resp.text
        resp = await client.post("/console/catalog/new", data=body(replace(new, id="Khai Sinh 2")))
        assert resp.status_code == 400 and 'id="err-id"' in resp.text
    finally:
        await client.aclose()
    assert snapshot(catalog_dir) == before  # no temporary file left behind either
    assert changes(engine) == []
    proc = procedure(engine, "khai_sinh")
    assert proc is not None and proc.name == "Đăng ký khai sinh" and proc.authority_level == "commune"


async def test_a_stale_form_is_refused(desk: StaffDesk, catalog_dir: Path, engine: Engine) -> None:
    first, second = await editor(desk), await editor(desk, "ha")  # an editor and a supervisor
    try:
        form_a = read_form((await first.get("/console/catalog/tam_tru")).text)
        form_b = read_form((await second.get("/console/catalog/tam_tru")).text)
        ok = await second.post("/console/catalog/tam_tru", data=body(replace(form_b, notes="Mang theo CCCD.")))
        assert ok.status_code == 303
        written = (catalog_dir / "cu_tru.yml").read_text(encoding="utf-8")
        stale = await first.post("/console/catalog/tam_tru", data=body(replace(form_a, notes="Ghi chú khác.")))
        assert stale.status_code == 409 and "vừa được người khác sửa" in stale.text
        assert "Ghi chú khác." in stale.text  # the input is still there to copy
        again = await first.post("/console/catalog/tam_tru", data=body(read_form(stale.text)))
        assert again.status_code == 409  # the page keeps the old hash: a second press does not overwrite
        assert (catalog_dir / "cu_tru.yml").read_text(encoding="utf-8") == written
        # reopened, the form saves
        fresh = read_form((await first.get("/console/catalog/tam_tru")).text)
        assert get(fresh, "notes") == "Mang theo CCCD."
        assert (await first.post("/console/catalog/tam_tru", data=body(replace(fresh, notes="Ghi chú khác.")))
                ).status_code == 303
    finally:
        await first.aclose()
        await second.aclose()
    assert [(c.editor, c.after["notes"]) for c in changes(engine)] == [("ha", "Mang theo CCCD."),
                                                                        ("bt", "Ghi chú khác.")]


async def test_a_new_procedure(desk: StaffDesk, catalog_dir: Path, engine: Engine) -> None:
    path = catalog_dir / "tu_phap_chung_thuc.yml"
    original = path.read_text(encoding="utf-8")
    client = await editor(desk)
    try:
        page = await client.get("/console/catalog/new")
        assert page.status_code == 200 and "Đã điền sẵn ngày hôm nay" in page.text
        form = replace(read_form(page.text), file="tu_phap_chung_thuc.yml", id="cap_phieu_ly_lich_tu_phap_so_3",
                       name="Cấp Phiếu lý lịch tư pháp số 3",
                       aliases="xin lý lịch tư pháp số 3\nlàm phiếu lý lịch tư pháp số 3\nlý lịch tư pháp số ba",
                       authority_level="province", authority_name="Sở Tư pháp",
                       steps="Khai tờ khai.\nNộp hồ sơ.\nNhận phiếu.", online_url="https://dichvucong.gov.vn/",
                       sources="https://dichvucong.gov.vn/p/home/dvc-trang-chu.html", verified_on="2026-11-20",
                       unconfirmed="processing_time: 10 ngày — chưa đối chiếu")
        form = [*[(k, v) for k, v in form if k != "online_portals"], ("online_portals", "dvcqg"),
                ("online_portals", "vneid")]
        first_doc = next(i for i, (k, _) in enumerate(form) if k == "doc_name")  # the first empty row
        form[first_doc] = ("doc_name", "Tờ khai yêu cầu cấp Phiếu")
        created = await client.post("/console/catalog/new", data=body(form))
        assert created.status_code == 303, created.text
        assert created.headers["location"] == "/console/catalog/cap_phieu_ly_lich_tu_phap_so_3?saved=created"
        shown = await client.get(created.headers["location"])
        assert "chưa nhận ra" in shown.text and "dvcbot train" in shown.text and "data/nlu/procedures.yml" in shown.text
        history = await client.get("/console/catalog/cap_phieu_ly_lich_tu_phap_so_3/history")
        assert history.status_code == 200 and "thêm mới" in history.text and "Sở Tư pháp" in history.text
    finally:
        await client.aclose()
    text = path.read_text(encoding="utf-8")
    assert text.startswith(original)  # appended; everything before it untouched
    added = yaml.safe_load(text)["procedures"][-1]
    assert added["id"] == "cap_phieu_ly_lich_tu_phap_so_3" and added["online"]["portals"] == ["dvcqg", "vneid"]
    assert added["documents"] == [{"name": "Tờ khai yêu cầu cấp Phiếu", "form": None, "kind": None, "count": None,
                                   "note": None}]
    assert added["verified_on"] == dt.date(2026, 11, 20) and added["code"] is None
    assert list(added) == ["id", "name", "aliases", "code", "authority", "applicants", "documents", "steps",
                           "processing_time", "fees", "online", "agent_can_file", "delivery_by_post", "legal_basis",
                           "notes", "sources", "verified_on", "unconfirmed"]
    assert not read_catalog(catalog_dir)[1]
    proc = procedure(engine, "cap_phieu_ly_lich_tu_phap_so_3")
    assert proc is not None and proc.authority_level == "province"
    assert proc.field == yaml.safe_load(original)["field"] and proc.source_file == "data/catalog/tu_phap_chung_thuc.yml"
    [change] = changes(engine)
    assert change.action == "create" and change.before == {} and "name" in change.fields
    assert "online.portals" in change.fields and "code" not in change.fields  # the fields it fills


async def test_the_history_shows_who_changed_what(desk: StaffDesk, engine: Engine) -> None:
    client = await editor(desk)
    try:
        fields = read_form((await client.get("/console/catalog/khai_sinh")).text)
        aliases = get(fields, "aliases").split("\n")
        form = replace(fields, aliases="\n".join([*aliases[:-1], "đăng ký khai sinh cho bé"]))
        saved = await client.post("/console/catalog/khai_sinh", data=body(form))
        assert saved.headers["location"].endswith("saved=names")
        shown = await client.get(saved.headers["location"])
        assert "chỉ nhận ra sau khi huấn luyện lại" in shown.text
        history = await client.get("/console/catalog/khai_sinh/history")
    finally:
        await client.aclose()
    assert history.status_code == 200
    row = history.text.split('<tr data-field="aliases">')[1].split("</tr>")[0]
    assert f'<div class="diff diff--old">{aliases[-1]}</div>' in row
    assert '<div class="diff diff--new">đăng ký khai sinh cho bé</div>' in row
    assert " · bt · sửa " in history.text
    proc = procedure(engine, "khai_sinh")
    assert proc is not None and "đăng ký khai sinh cho bé" in proc.aliases and aliases[-1] not in proc.aliases
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(CatalogChange)) == 1


async def test_roles(desk: StaffDesk, catalog_dir: Path) -> None:
    before = (catalog_dir / "ho_tich.yml").read_bytes()
    staff = await editor(desk, "lan")
    try:
        for url in ("/console/catalog", "/console/catalog/khai_sinh", "/console/catalog/new",
                    "/console/catalog/khai_sinh/history"):
            assert (await staff.get(url)).status_code == 403, url
        page = await staff.get("/console/conversations")
        assert ">Thủ tục</a>" not in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        resp = await staff.post("/console/catalog/khai_sinh", data={"csrf": csrf.group(1), "name": "x"})
        assert resp.status_code == 403
    finally:
        await staff.aclose()
    async with httpx.AsyncClient(base_url=desk.gw.url) as anonymous:
        for url in ("/console/catalog", "/console/catalog/khai_sinh"):
            resp = await anonymous.get(url)
            assert resp.status_code == 303 and "/console/login" in resp.headers["location"]
        resp = await anonymous.post("/console/catalog/khai_sinh", data={"name": "x"})
        assert resp.status_code == 303 and "/console/login" in resp.headers["location"]
    client = await editor(desk)
    try:
        no_csrf = await client.post("/console/catalog/khai_sinh", data={"name": "x", "csrf": "wrong"})
        assert no_csrf.status_code == 403
        assert (await client.get("/console/catalog/khong_co")).status_code == 404
    finally:
        await client.aclose()
    assert (catalog_dir / "ho_tich.yml").read_bytes() == before
