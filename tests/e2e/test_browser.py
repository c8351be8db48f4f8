"""The web chat page in a real browser (Debian's Chromium driven by Playwright) against the real stack."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() or not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (make test installs it)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 800}, locale="vi-VN")  # a phone screen
    pg = context.new_page()
    pg.goto(stack.url + "/")
    yield pg
    context.close()


@pytest.fixture
def desk(browser: Browser) -> Iterator[Page]:
    """A desktop window beside the citizen's phone: the console of a staff member or an editor."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="vi-VN")
    yield context.new_page()
    context.close()


def test_greeting_question_and_button(page: Page, tmp_path: Path) -> None:
    log = page.locator("#log")
    expect(log.locator(".msg--bot").first).to_contain_text("Xin chào anh/chị!", timeout=30_000)
    page.fill("#text", "làm giấy khai sinh cần giấy tờ gì")
    page.press("#text", "Enter")
    expect(log.locator(".msg--me").last).to_have_text("làm giấy khai sinh cần giấy tờ gì")
    answer = log.locator(".msg--bot").last
    expect(answer).to_contain_text("Hồ sơ đăng ký khai sinh gồm:", timeout=30_000)
    expect(answer).to_contain_text("Nguồn:")

    answer.get_by_role("button", name="Lệ phí").click()
    expect(log.locator(".msg--me").last).to_have_text("Lệ phí")
    expect(log.locator(".msg--bot").last).to_contain_text("khai sinh", timeout=30_000)
    page.screenshot(path=str(tmp_path / "webchat.png"), full_page=True)

    # the page fits a phone: no horizontal scrolling
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_sharing_a_location_finds_post_offices(browser: Browser, stack: Stack) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 800}, locale="vi-VN",
                                  geolocation={"latitude": 21.0250, "longitude": 105.8525},
                                  permissions=["geolocation"])
    page = context.new_page()
    page.goto(stack.url + "/")
    log = page.locator("#log")
    expect(log.locator(".msg--bot").first).to_contain_text("Xin chào anh/chị!", timeout=30_000)
    page.click("#locate")
    expect(log.locator(".msg--me").last).to_have_text("📍 Vị trí của tôi")
    answer = log.locator(".msg--bot").last
    expect(answer).to_contain_text("Các bưu điện gần anh/chị nhất:", timeout=30_000)
    expect(answer).to_contain_text("1. Bưu điện Trung tâm Hoàn Kiếm (Bưu điện Hà Nội) – cách khoảng 0,1 km")
    context.close()


def test_reload_keeps_the_conversation(page: Page) -> None:
    log = page.locator("#log")
    expect(log.locator(".msg--bot").first).to_contain_text("Xin chào anh/chị!", timeout=30_000)
    page.fill("#text", "cảm ơn")
    page.click("#send")
    expect(log.locator(".msg--bot")).to_have_count(2, timeout=30_000)
    page.reload()
    expect(log.locator(".msg--bot")).to_have_count(2, timeout=30_000)
