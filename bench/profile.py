"""Where the time of one message goes: a sequential probe of each hop, and py-spy samples under load.

- The probe sends the same messages, one at a time on an idle stack, to Rasa's NLU alone (``/model/parse``), to
  Rasa's REST channel (NLU + dialogue policies + the action server) and through the gateway's web chat API
  (intake, router, database, Rasa): the differences are the cost of each hop.
- py-spy (from PyPI; ``make bench`` installs it) samples the gateway, a Rasa server and an action server while
  the citizens talk, and the samples are summed by the package of the innermost Python frame (self time).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.citizens import FLOWS, Say
from bench.stack import Stack

PY_SPY = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "py-spy"


@dataclass
class Probe:
    nlu: list[float]
    rasa: list[float]
    gateway: list[float]


def probe(stack: Stack, rounds: int = 2) -> Probe:
    """Time each hop for the first message of every flow, sequentially (``rounds`` times)."""
    texts = [s.text for f in FLOWS for s in f.steps[:1] if isinstance(s, Say)]
    out = Probe([], [], [])
    with httpx.Client(timeout=30) as client:
        token = client.post(f"{stack.url}/api/webchat/sessions").json()["session"]
        auth = {"Authorization": f"Bearer {token}"}
        for r in range(rounds):
            for i, text in enumerate(texts):
                started = time.perf_counter()
                client.post(f"{stack.rasa_url}/model/parse", params={"token": stack.settings.rasa_token
                                                                     .get_secret_value()  # type: ignore[union-attr]
                                                                     }, json={"text": text})
                out.nlu.append(time.perf_counter() - started)
                started = time.perf_counter()
                client.post(f"{stack.rasa_url}/webhooks/rest/webhook",
                            json={"sender": f"probe-{r}-{i}", "message": text})
                out.rasa.append(time.perf_counter() - started)
                started = time.perf_counter()
                client.post(f"{stack.url}/api/webchat/messages", json={"text": text}, headers=auth)
                out.gateway.append(time.perf_counter() - started)
    return out


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000 if values else float("nan")


class Sampler:
    """py-spy record on some processes of the stack, in the background."""

    def __init__(self, stack: Stack, names: list[str], seconds: int, workdir: Path) -> None:
        self.procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        self.error: str | None = None
        spy = str(PY_SPY) if PY_SPY.exists() else shutil.which("py-spy")
        if spy is None:
            self.error = "py-spy is not installed (make bench installs it from PyPI)"
            return
        pids = stack.pids()
        for name in names:
            out = workdir / f"py-spy-{name}.txt"
            cmd = [spy, "record", "--nonblocking", "--nolineno", "-r", "50", "-d", str(seconds), "-f", "raw",
                   "-o", str(out), "-p", str(pids[name])]
            self.procs[name] = (subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), out)

    def collect(self) -> dict[str, Counter[str]]:
        """Wait for py-spy; samples per package of the innermost frame, per process."""
        result: dict[str, Counter[str]] = {}
        for name, (proc, out) in self.procs.items():
            _, err = proc.communicate(timeout=120)
            if proc.returncode != 0 or not out.exists():
                self.error = f"py-spy on {name} failed: {err.decode(errors='replace').strip()[-300:]}"
                continue
            result[name] = by_package(out.read_text(encoding="utf-8", errors="replace"))
        return result


# innermost frames that wait rather than compute (py-spy without --idle still samples some of them)
WAITS = {
    "serve (sanic/server/runners.py)": "[idle: event loop]",
    "Runner.run (asyncio/runners.py)": "[idle: event loop]",
    "run_forever (asyncio/base_events.py)": "[idle: event loop]",
    "BaseEventLoop.run_forever (asyncio/base_events.py)": "[idle: event loop]",
    "Condition.wait (threading.py)": "[idle: worker threads]",
    "wait (threading.py)": "[idle: worker threads]",
    "Connection.wait (psycopg/connection.py)": "[waiting for PostgreSQL]",
    "BaseCursor._execute_send (psycopg/_cursor_base.py)": "[waiting for PostgreSQL]",
    "_read_from_socket (redis/connection.py)": "[waiting for Redis]",
}


def package_of(frame: str) -> str:
    """``function (path)`` → the package the frame belongs to (project folders, site-packages, stdlib)."""
    if frame in WAITS:
        return WAITS[frame]
    path = frame.rsplit("(", 1)[-1].rstrip(")")
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for project in ("bot/", "actions/", "nlu/", "dvcbot/"):
        if path.startswith(project) or f"/{project}" in path:
            return project.rstrip("/") + " (project)"
    if ".py" not in path:
        return "other (C code, generated)"
    parts = path.split("/")
    if len(parts) > 1 and parts[-2].startswith("python3"):
        return "stdlib:" + parts[-1].removesuffix(".py")
    if len(parts) > 2 and parts[-3].startswith("python3"):
        return "stdlib:" + parts[-2]
    return parts[0].removesuffix(".py") if parts[0] else path


def by_package(raw: str) -> Counter[str]:
    """Sum py-spy's raw (collapsed) samples by the package of their innermost frame."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        frames = stack.split(";")
        counts[package_of(frames[-1])] += int(number)
    return counts
