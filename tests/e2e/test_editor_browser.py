"""The editor's pages in a real browser (Debian's Chromium driven by Playwright) against the real stack: messages
a citizen types in the web chat that the bot does not understand appear in the console's inbox; the editor labels
the group and it leaves; "Thử câu" shows how the live model reads a sentence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Stack
from tests.e2e.test_browser import browser, desk, page  # noqa: F401  (Chromium, a phone and a desktop window)
from tests.e2e.test_inbox_e2e import PASSWORD, add_account

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
NONSENSE = ["brrm zqxv plinkk", "brrm zqxv plinkk plonk"]


def test_editor_labels_what_the_bot_did_not_understand(page: Page, desk: Page, stack: Stack,  # noqa: F811
                                                       tmp_path: Path) -> None:
    add_account(stack, "e2e-bt", "editor")
    citizen, editor = page, desk  # the citizen's phone at the web chat, an editor's desktop
    chat = citizen.locator("#log")
    expect(chat.locator(".msg--bot").first).to_contain_text("Xin chào anh/chị!", timeout=30_000)
    for n, text in enumerate(NONSENSE):
        citizen.fill("#text", text)
        citizen.press("#text", "Enter")
        expect(chat.locator(".msg--bot")).to_have_count(n + 2, timeout=30_000)  # the bot asked again

    editor.goto(stack.url + "/console/inbox")
    expect(editor).to_have_url(re.compile(r"/console/login"))
    editor.fill("#username", "e2e-bt")
    editor.fill("#password", PASSWORD)
    editor.get_by_role("button", name="Đăng nhập").click()
    expect(editor).to_have_url(re.compile(r"/console/inbox$"))
    group = editor.locator(".inbox-group").filter(has=editor.locator(f'input[value="{NONSENSE[0]}"]'))
    expect(group).to_have_count(1)
    expect(group.locator(f'input[value="{NONSENSE[1]}"]')).to_have_count(1)  # the two are one group
    group.locator("select.inbox-intent").select_option("out_of_scope")
    group.get_by_role("button", name="Gán nhãn và lưu").click()
    expect(editor.locator(".notice")).to_contain_text("Đã gán nhãn", timeout=60_000)
    expect(editor.locator(f'input[value="{NONSENSE[0]}"]')).to_have_count(0)
    editor.screenshot(path=str(tmp_path / "inbox.png"), full_page=True)
    written = (stack.editor_data / "nlu" / "inbox.yml").read_text(encoding="utf-8")
    assert f"- {NONSENSE[0]}\n" in written and "- intent: out_of_scope" in written

    editor.get_by_role("link", name="Thử câu").click()
    editor.fill("#text", "lam cccd can giay to gi v ad")
    editor.get_by_role("button", name="Thử").click()
    expect(editor.locator("#ranking")).to_contain_text("procedure_documents", timeout=30_000)
    expect(editor.locator("#normalized")).to_have_text("lam căn cước công dân can giay to gi vậy anh/chị")
    expect(editor.locator("#ranking meter").first).to_be_visible()
    editor.screenshot(path=str(tmp_path / "try.png"), full_page=True)
