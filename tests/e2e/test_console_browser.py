"""The handoff as people see it, in two real browsers (Debian's Chromium driven by Playwright) against the real
stack: a citizen in the web chat asks for a person; a staff member signs in to the console, claims the ticket,
replies, reads the citizen's answer without reloading, and ends it; the citizen rates it and the bot is back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from dvcbot import PROJECT_ROOT
from tests.e2e.conftest import Stack
from tests.e2e.test_browser import browser, desk, page  # noqa: F401  (Chromium, a phone and a desktop window)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
PASSWORD = "nhan-vien-2025"


def add_staff_account(stack: Stack, username: str, name: str) -> None:
    """``dvcbot staff add`` against the stack's database, the way an administrator does it."""
    env = {**os.environ, "DVCBOT_DATABASE_URL": stack.settings.database_url}
    result = subprocess.run(
        [sys.executable, "-m", "dvcbot.cli", "staff", "add", username, "--name", name, "--password-stdin"],
        input=PASSWORD + "\n", capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"Added {username}" in result.stdout


def test_staff_handle_a_web_chat_citizen_in_the_console(page: Page, desk: Page, stack: Stack,  # noqa: F811
                                                         tmp_path: Path) -> None:
    add_staff_account(stack, "e2e-lan", "Chị Lan")
    citizen, staff = page, desk  # the citizen's phone at the web chat, a staff member's desktop
    chat = citizen.locator("#log")
    greeting = chat.locator(".msg--bot").first
    expect(greeting).to_contain_text("Xin chào anh/chị!", timeout=30_000)
    greeting.get_by_role("button", name="Gặp nhân viên").click()
    queued = chat.locator(".msg--bot").last
    expect(queued).to_contain_text("phiếu số", timeout=30_000)
    match = re.search(r"phiếu số (\d+)", queued.inner_text())
    assert match, queued.inner_text()
    ticket = match.group(1)

    staff.goto(stack.url + "/console/")
    expect(staff).to_have_url(re.compile(r"/console/login"))
    staff.fill("#username", "e2e-lan")
    staff.fill("#password", PASSWORD)
    staff.get_by_role("button", name="Đăng nhập").click()
    row = staff.locator(f'#waiting tr[data-ticket="{ticket}"]')
    expect(row).to_be_visible(timeout=10_000)
    row.get_by_role("button", name="Nhận xử lý").click()
    expect(staff).to_have_url(re.compile(rf"/console/tickets/{ticket}$"))
    expect(citizen.locator(".msg--bot").last).to_contain_text("Chị Lan – nhân viên bưu điện đã tiếp nhận",
                                                             timeout=15_000)

    staff.fill("#text", "Chào anh/chị, em là Lan ở bưu điện. Anh/chị cần hỗ trợ thủ tục gì ạ?")
    staff.press("#text", "Enter")
    log = staff.locator("#log")
    expect(log.locator(".line--staff").last).to_contain_text("em là Lan", timeout=10_000)
    staff_line = citizen.locator(".msg--staff").last
    expect(staff_line).to_contain_text("em là Lan ở bưu điện", timeout=15_000)
    expect(staff_line).to_contain_text("Nhân viên bưu điện")

    citizen.fill("#text", "Tôi muốn làm lại căn cước bị mất")
    citizen.press("#text", "Enter")
    expect(log.locator(".line--citizen").last).to_have_text(
        re.compile("Tôi muốn làm lại căn cước bị mất"), timeout=15_000)  # no reload on the staff side

    staff.get_by_role("button", name="Kết thúc").click()
    expect(staff.locator(".notice")).to_contain_text(f"Đã kết thúc phiếu #{ticket}")
    rating = citizen.locator(".msg--bot").last
    expect(rating).to_contain_text("chấm điểm", timeout=15_000)
    rating.get_by_role("button", name="5 – Rất hài lòng").click()
    expect(citizen.locator(".msg--bot").last).to_contain_text("Cảm ơn anh/chị đã đánh giá", timeout=15_000)
    citizen.screenshot(path=str(tmp_path / "citizen.png"), full_page=True)
    staff.screenshot(path=str(tmp_path / "console.png"), full_page=True)

    # the bot answers again
    citizen.fill("#text", "làm giấy khai sinh cần giấy tờ gì")
    citizen.press("#text", "Enter")
    expect(citizen.locator(".msg--bot").last).to_contain_text("Hồ sơ đăng ký khai sinh gồm:", timeout=30_000)
