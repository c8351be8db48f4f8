"""Catalog editing as an editor sees it, in Debian's Chromium driven by Playwright: sign in, search, open a record,
save a bad value and see the error beside its field (input kept), fix it, save, read the history.

The console needs neither Rasa nor the action server, so the gateway runs here with the fake platforms on a
temporary database and a temporary copy of data/catalog.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy.orm import Session

from actions.catalog.loader import load_catalog
from actions.catalog.schema import read_catalog
from bot.app import create_app
from bot.console.auth import hash_password
from dvcbot import PROJECT_ROOT
from dvcbot.db import create_schema, make_engine
from tests.bot.handoff_helpers import add_staff
from tests.bot.helpers import channel_settings
from tests.e2e.test_browser import browser  # noqa: F401  (the module-scoped Chromium fixture)
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import FakeTelegram
from tests.fakes.zalo import FakeZalo
from tests.servers import free_port, serve

pytestmark = [pytest.mark.browser]
PASSWORD = "bien-tap-2025"
GOOD_URL = "https://dichvucong.gov.vn/p/home/dvc-trang-chu.html"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("catalog-browser")
    catalog_dir = tmp / "data" / "catalog"
    shutil.copytree(PROJECT_ROOT / "data" / "catalog", catalog_dir)
    db_url = f"sqlite:///{tmp / 'console.db'}"
    engine = make_engine(db_url)
    create_schema(engine)
    catalog, errors = read_catalog(catalog_dir, tmp)
    assert not errors
    with Session(engine) as session:
        load_catalog(session, catalog)
    add_staff(engine, "bt", "Biên tập", role="editor", password_hash=hash_password(PASSWORD))
    engine.dispose()
    rasa, telegram, zalo = FakeRasa(), FakeTelegram(), FakeZalo()
    rasa_port = free_port()
    with serve(rasa.app(), rasa_port), serve(telegram.app()) as telegram_url, serve(zalo.app()) as zalo_url:
        settings = channel_settings(db_url, rasa_port, telegram_url, zalo, zalo_url, catalog_dir=catalog_dir)
        with serve(create_app(settings)) as url:
            yield url, catalog_dir


def test_an_editor_fixes_a_record_in_the_browser(browser: Browser, console: tuple[str, Path]) -> None:  # noqa: F811
    url, catalog_dir = console
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="vi-VN")
    problems: list[str] = []
    try:
        page = context.new_page()
        # script errors and CSP refusals (a 400 page, the expected answer to a bad value, is logged too: not counted)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("console", lambda msg: problems.append(msg.text)
                if msg.type == "error" and "Failed to load resource" not in msg.text else None)
        page.goto(url + "/console/catalog")
        expect(page).to_have_url(re.compile(r"/console/login"))
        page.fill("#username", "bt")
        page.fill("#password", PASSWORD)
        page.get_by_role("button", name="Đăng nhập").click()
        expect(page).to_have_url(re.compile(r"/console/catalog$"))

        page.fill("#q", "lam giay khai sinh")  # without diacritics
        page.get_by_role("button", name="Tìm").click()
        rows = page.locator("tbody tr[data-id]")
        expect(rows).to_have_count(1)
        rows.first.get_by_role("link", name="Đăng ký khai sinh").click()
        expect(page).to_have_url(re.compile(r"/console/catalog/khai_sinh$"))
        expect(page.locator("#verified-hint")).to_contain_text("Đã điền sẵn ngày hôm nay")

        documents = page.locator("#doc-rows tr")
        count = documents.count()
        page.get_by_role("button", name="Thêm dòng giấy tờ").click()  # the script runs under the strict CSP
        expect(documents).to_have_count(count + 1)

        page.fill("#online_url", "dichvucong.gov.vn")
        page.get_by_role("button", name="Lưu").click()
        error = page.locator("#err-online_url")
        expect(error).to_be_visible()
        expect(error).to_contain_text("not a web link")
        expect(error).to_contain_text(re.compile(r"data/catalog/ho_tich\.yml:\d+"))
        expect(page.locator("#online_url")).to_have_value("dichvucong.gov.vn")
        expect(page.locator("#online_url")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#errors")).to_contain_text("không có gì bị ghi")
        assert "dichvucong.gov.vn\n" not in (catalog_dir / "ho_tich.yml").read_text(encoding="utf-8")

        page.fill("#online_url", GOOD_URL)
        page.get_by_role("button", name="Lưu").click()
        expect(page.locator("#saved")).to_contain_text("Đã lưu")
        expect(page.locator("#saved")).to_contain_text("không cần huấn luyện lại")
        assert f"url: {GOOD_URL}" in (catalog_dir / "ho_tich.yml").read_text(encoding="utf-8")

        page.get_by_role("link", name="Lịch sử sửa").click()
        change = page.locator('tr[data-field="online.url"]')
        expect(change).to_contain_text("Đường link nộp")
        expect(change.locator(".diff--new")).to_have_text(GOOD_URL)
        expect(page.locator(".catalog-change h2").first).to_contain_text("bt · sửa")
    finally:
        context.close()
    assert not problems, problems  # no script or CSP errors
