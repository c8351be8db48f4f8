"""The action server's own entry point (``python -m actions.server``) as a real process: the rasa-sdk routes still
answer, ``/metrics`` counts each action run by outcome, and its JSON log lines carry the sender id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dvcbot import PROJECT_ROOT
from tests.servers import free_port

SENDER = "telegram:7001"


@dataclass
class ActionServer:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()
                if line.startswith("{")]


@pytest.fixture
def action_server(tmp_path: Path) -> Iterator[ActionServer]:
    port = free_port()
    env = {**os.environ, "DVCBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'actions.db'}", "DVCBOT_LOG_FORMAT": "json",
           "SANIC_HOST": "127.0.0.1", "DVCBOT_METRICS_TOKEN": "scrape-me", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "actions.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "actions.server", "--port", str(port)], cwd=PROJECT_ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text(encoding="utf-8")[-3000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).json() == {"status": "ok"}:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the action server did not start"
            time.sleep(0.2)
        yield ActionServer(url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def call(action: str, tracker: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"next_action": action, "sender_id": SENDER, "version": "3.6.21", "domain": {},
            "tracker": tracker if tracker is not None else {
                "sender_id": SENDER, "slots": {}, "latest_message": {"intent": {"name": "complaint"}, "text": "x"},
                "events": [], "paused": False, "followup_action": None, "active_loop": {},
                "latest_action_name": "action_listen"}}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_actions_are_counted_and_logged_with_their_conversation(action_server: ActionServer) -> None:
    url = action_server.url
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/metrics").status_code == 401
        assert any(a["name"] == "action_request_handoff" for a in client.get("/actions").json())
        ok = client.post("/webhook", json=call("action_request_handoff"))
        assert ok.status_code == 200
        assert ok.json()["responses"][0]["custom"]["handoff"]["reason"] == "complaint"
        assert client.post("/webhook", json=call("action_request_handoff")).status_code == 200
        assert client.post("/webhook", json=call("action_no_such_thing")).status_code == 404
        assert client.post("/webhook", json=call("action_request_handoff", {"slots": {}})).status_code == 500
        resp = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert resp.status_code == 200
    found = samples(resp.text)

    def runs(action: str, outcome: str) -> float:
        return found.get(("dvcbot_action_runs_total", frozenset({"action": action, "outcome": outcome}.items())), 0)

    assert runs("action_request_handoff", "ok") == 2
    assert runs("action_request_handoff", "error") == 1
    assert runs("unknown", "not_found") == 1
    assert found[("dvcbot_action_seconds_count", frozenset({"action": "action_request_handoff"}.items()))] == 3
    assert "action_no_such_thing" not in resp.text  # names Rasa does not know never become labels

    deadline = time.monotonic() + 5
    while not any(line.get("level") == "ERROR" for line in action_server.json_lines()):
        assert time.monotonic() < deadline, action_server.log.read_text(encoding="utf-8")[-3000:]
        time.sleep(0.1)
    lines = action_server.json_lines()
    assert lines and all(line["role"] == "actions" for line in lines)
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert {e["conversation"] for e in errors} == {SENDER}
    assert any("action_no_such_thing" in e["message"] for e in errors)
    assert any("KeyError" in e.get("exception", "") for e in errors)  # the broken tracker, with its traceback
    started = [line for line in lines if "Registered function" in line["message"]]
    assert started and all(line["conversation"] is None for line in started)
