"""The editors' inbox and "Thử câu" against the real stack: real messages through the web chat reach the inbox
(fallback and low confidence, masked), and the console reads a sentence with the live model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from actions.editor.models import InboxItem
from dvcbot import PROJECT_ROOT
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e
PASSWORD = "bien-tap-2025"
# Sentences the live model may read with low confidence; the test uses the first one it really does.
LOW_CANDIDATES = ["ừ", "hmm", "ok ad", "vậy à", "thế à", "alo", "bot ơi", "ồ", "ra vậy", "à há", "đúng rồi đó",
                  "chán quá", "hihi", "haha", "ủa"]


def add_account(stack: Stack, username: str, role: str) -> None:
    """``dvcbot staff add`` against the stack's database, the way an administrator does it."""
    env = {**os.environ, "DVCBOT_DATABASE_URL": stack.settings.database_url}
    result = subprocess.run(
        [sys.executable, "-m", "dvcbot.cli", "staff", "add", username, "--name", username, "--role", role,
         "--password-stdin"], input=PASSWORD + "\n", capture_output=True, text=True, cwd=PROJECT_ROOT, env=env,
        timeout=60)
    assert result.returncode == 0, result.stderr


def parse(stack: Stack, text: str) -> dict[str, Any]:
    resp = httpx.post(f"{stack.settings.rasa_url}/model/parse", params={"token": "e2e-token"}, json={"text": text},
                      timeout=30)
    resp.raise_for_status()
    data: dict[str, Any] = resp.json()
    return data


def say(stack: Stack, *texts: str) -> None:
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        token = client.post("/api/webchat/sessions").json()["session"]
        for text in texts:
            resp = client.post("/api/webchat/messages", json={"text": text},
                               headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == 200 and resp.json()["messages"], resp.text


def inbox_rows(engine: Engine, pattern: str) -> list[InboxItem]:
    with Session(engine) as session:
        return list(session.scalars(select(InboxItem).where(InboxItem.text.like(pattern)).order_by(InboxItem.id)))


def wait_rows(engine: Engine, pattern: str, count: int) -> list[InboxItem]:
    deadline = time.monotonic() + 30
    while True:
        rows = inbox_rows(engine, pattern)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def test_real_messages_reach_the_inbox(stack: Stack, stack_engine: Engine) -> None:
    low = next((t for t in LOW_CANDIDATES
                if (p := parse(stack, t))["intent"]["name"] != "nlu_fallback" and p["intent"]["confidence"] < 0.6),
               None)
    assert low is not None, "none of the candidates is read with low confidence by this model: add one"
    assert parse(stack, "qzx vrrt plonkk 0912345678")["intent"]["name"] == "nlu_fallback"
    say(stack, "qzx vrrt plonkk 0912345678", low)
    [fell] = wait_rows(stack_engine, "qzx vrrt plonkk%", 1)
    assert fell.text == "qzx vrrt plonkk *******678" and fell.reason == "fallback" and fell.channel == "webchat"
    assert fell.message_id and fell.ranking and fell.intent == fell.ranking[0]["name"]
    noted = [r for r in wait_rows(stack_engine, low, 1) if r.reason == "low_confidence"]
    assert noted and noted[-1].confidence is not None and noted[-1].confidence < 0.6
    # a verification reply is never stored, whatever it is read as
    say(stack, "4821")
    time.sleep(1)
    assert inbox_rows(stack_engine, "%4821%") == []


def test_try_it_with_the_live_model(stack: Stack) -> None:
    add_account(stack, "e2e-try", "editor")
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        page = client.get("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        resp = client.post("/console/login", data={"username": "e2e-try", "password": PASSWORD, "csrf": csrf,
                                                   "next": "/console/try"})
        assert resp.status_code == 303
        page = client.get("/console/try")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        shown = client.post("/console/try", data={"csrf": csrf, "text": "lam cccd can giay to gi v ad"})
    assert shown.status_code == 200, shown.text
    # what the model saw: the tokenizer's normalised text, teencode expanded
    normalized = re.search(r'<dd id="normalized">([^<]+)</dd>', shown.text)
    assert normalized and normalized.group(1) == parse(stack, "lam cccd can giay to gi v ad")["normalized_text"]
    assert normalized.group(1) == "lam căn cước công dân can giay to gi vậy anh/chị"
    intent = re.search(r'<dd id="intent">([^<]+)</dd>', shown.text)
    assert intent and intent.group(1) == "procedure_documents"
    assert "<meter" in shown.text and "trả lời theo ý định" in shown.text
    assert re.search(r"<td>procedure</td><td>can_cuoc[a-z_]*</td><td>[^<]*cccd</td>", shown.text), shown.text
