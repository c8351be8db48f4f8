"""The real stack of ``make run``: Rasa and the action server reachable from this machine only, Rasa's HTTP API
closed without its token, and dossier verification that cannot be brute-forced from many conversations."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import RASA_TOKEN, RealStack

pytestmark = pytest.mark.e2e

LOOPBACK = {"127.0.0.1", "::1"}
CODE = "000.00.07.H26-261118-0005"  # demo register: Đăng ký kết hôn, phone ends 2333
ASK_DIGITS = "4 chữ số cuối của số điện thoại"
FAILED = "chưa xác minh được hồ sơ"
LOCKED = "tạm khoá việc tra cứu hồ sơ"


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))  # /proc/net/tcp6: four little-endian words
    return socket.inet_ntop(socket.AF_INET6, words)


def listening_sockets() -> dict[str, tuple[str, int]]:
    """Every listening TCP socket of the machine: inode → (address, port), from /proc/net/tcp and tcp6."""
    found: dict[str, tuple[str, int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                address, port = fields[1].split(":")
                found[fields[9]] = (_address(address), int(port, 16))
    return found


def group_pids(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True).stdout
    return [int(p) for p, g in (line.split() for line in out.splitlines()) if int(g) == pgid]


def sockets_of(pids: list[int]) -> set[str]:
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return inodes


def test_every_port_of_the_stack_listens_on_loopback_only(real_stack: RealStack) -> None:
    listening = listening_sockets()
    bound: dict[str, list[tuple[str, int]]] = {}
    for name, pid in real_stack.pids().items():
        bound[name] = [listening[i] for i in sockets_of(group_pids(pid)) if i in listening]
    settings = real_stack.settings
    assert (("127.0.0.1", settings.rasa_port) in bound["rasa"]), bound
    assert (("127.0.0.1", settings.actions_port) in bound["actions"]), bound
    exposed = {name: [a for a in addresses if a[0] not in LOOPBACK] for name, addresses in bound.items()}
    assert exposed == {name: [] for name in bound}, f"listening beyond loopback: {exposed}"
    # and the wildcard addresses are not reachable by other means either: nothing listens on 0.0.0.0 / ::
    for port in (settings.rasa_port, settings.actions_port):
        assert ("0.0.0.0", port) not in listening.values() and ("::", port) not in listening.values()


@pytest.mark.parametrize("method,path", [
    ("GET", "/status"), ("GET", "/version/../status"), ("GET", "/domain"),
    ("GET", "/conversations/webchat:someone/tracker"), ("POST", "/conversations/webchat:someone/messages"),
    ("POST", "/conversations/webchat:someone/trigger_intent"), ("POST", "/model/parse"), ("PUT", "/model"),
    ("DELETE", "/model"), ("POST", "/model/train"),
])
def test_rasa_http_api_refuses_requests_without_the_token(real_stack: RealStack, method: str, path: str) -> None:
    url = f"http://127.0.0.1:{real_stack.settings.rasa_port}{path}"
    body = {"text": "xin chào", "sender": "user", "name": "greet"}
    for params in ({}, {"token": ""}, {"token": "wrong"}, {"token": RASA_TOKEN.upper()}):
        resp = httpx.request(method, url, params=params, json=body, timeout=10)
        assert resp.status_code in (401, 403, 404), (method, path, params, resp.status_code, resp.text[:200])
        assert resp.status_code != 404 or "/../" in path
    # with a bearer header that is not the token either
    resp = httpx.request(method, url, json=body, headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert resp.status_code in (401, 403, 404)


def test_rasa_http_api_answers_with_the_token(real_stack: RealStack) -> None:
    resp = httpx.get(f"http://127.0.0.1:{real_stack.settings.rasa_port}/status", params={"token": RASA_TOKEN},
                     timeout=10)
    assert resp.status_code == 200 and resp.json()["model_file"]


def _chat(stack: RealStack) -> tuple[httpx.Client, dict[str, str]]:
    client = httpx.Client(base_url=stack.url, timeout=30)
    return client, {"Authorization": f"Bearer {client.post('/api/webchat/sessions').json()['session']}"}


def _say(client: httpx.Client, auth: dict[str, str], text: str) -> str:
    resp = client.post("/api/webchat/messages", json={"text": text}, headers=auth)
    assert resp.status_code == 200, resp.text
    return "\n".join(str(m["text"]) for m in resp.json()["messages"])


def test_guessing_one_dossier_from_many_conversations_locks_it(real_stack: RealStack) -> None:
    """An attacker opens a new web chat for every guess: the limit per dossier code still stops them."""
    for guess in ("0000", "1111", "1234", "9999", "2332"):
        client, auth = _chat(real_stack)
        _say(client, auth, "tra cứu hồ sơ")
        assert ASK_DIGITS in _say(client, auth, CODE)
        answer = _say(client, auth, guess)
        assert FAILED in answer or LOCKED in answer
        assert "kết hôn" not in answer and CODE not in answer
    # the owner's right digits, from yet another conversation, are refused for the window too
    client, auth = _chat(real_stack)
    _say(client, auth, "tra cứu hồ sơ")
    answer = _say(client, auth, CODE) + _say(client, auth, "2333")
    assert LOCKED in answer and "kết hôn" not in answer
