"""The real stack for the benchmark and the fault tests, in the production profile, on loopback only.

A fresh PostgreSQL database (the catalog, the post offices and the demo dossier register loaded), Redis, the
trained Rasa model, and ``dvcbot.supervisor.replica_services`` (the code behind ``make run-prod``): 1 or N
gateways, Rasa servers and action servers, with HAProxy in front when N > 1. The gateway talks to the fake
Telegram Bot API of ``tests/fakes`` served by this process, which records every reply handed to it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpx
import psycopg
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from actions.catalog.directory import load_directory, read_directory
from actions.catalog.loader import load_catalog
from actions.catalog.schema import read_catalog
from actions.dossiers.importer import import_csv
from dvcbot import PROJECT_ROOT
from dvcbot.db import create_schema, make_engine
from dvcbot.settings import Settings
from dvcbot.supervisor import Service, Supervisor, replica_services
from dvcbot.training import current_model
from tests.fakes.telegram import SEND_METHODS, TOKEN, Call, FakeTelegram
from tests.servers import free_port, serve

PG_SERVER = os.environ.get("DVCBOT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("DVCBOT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/2")
DATABASE = "dvcbot_bench"
TELEGRAM_SECRET = "bench-webhook-secret"
RASA_TOKEN = "bench-rasa-token"


class _IndexedCalls(list[Call]):
    """``FakeTelegram.calls`` that also files every accepted send under its chat, for cheap waiting."""

    def __init__(self, index: dict[int, list[Call]]) -> None:
        super().__init__()
        self.by_chat = index

    def append(self, call: Call) -> None:
        super().append(call)
        if call.method in SEND_METHODS and call.accepted and call.chat_id is not None:
            self.by_chat[call.chat_id].append(call)


@dataclass
class Telegram:
    """The fake Bot API and, per chat, the messages it accepted (the moment a reply is handed to the platform)."""

    fake: FakeTelegram
    url: str
    by_chat: dict[int, list[Call]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        self.fake.calls = _IndexedCalls(self.by_chat)

    def sent(self, chat_id: int) -> list[Call]:
        return self.by_chat.get(chat_id, [])


@contextmanager
def fake_telegram() -> Iterator[Telegram]:
    fake = FakeTelegram()
    with serve(fake.app()) as url:
        yield Telegram(fake, url)


def recreate_database(name: str = DATABASE, server: str = PG_SERVER) -> str:
    """Drop and create ``name`` on the PostgreSQL server; its URL."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def load_content(engine: Engine) -> None:
    """The catalog, the post-office directory and the demo dossier register, as ``make content`` loads them."""
    create_schema(engine)
    catalog, errors = read_catalog(PROJECT_ROOT / "data" / "catalog", PROJECT_ROOT)
    offices, office_errors = read_directory(PROJECT_ROOT / "data" / "post_offices.yml", PROJECT_ROOT)
    if errors or office_errors:
        raise SystemExit(f"the catalog has errors: {[*errors, *office_errors][:3]}")
    with Session(engine) as session:
        load_catalog(session, catalog)
        load_directory(session, offices)
        import_csv(session, PROJECT_ROOT / "data" / "dossiers" / "demo_register.csv")


def clear_redis(url: str = REDIS_URL) -> None:
    """Remove what an earlier run left in the benchmark's Redis database (conversation and Rasa locks)."""
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter("dvcbot:*", count=1000):
        client.delete(key)
    client.close()


@dataclass
class Stack:
    """A running stack: its public URL (HAProxy's, or the single gateway's), settings, processes and database."""

    replicas: int
    settings: Settings
    supervisor: Supervisor
    engine: Engine
    workdir: Path
    ports: dict[str, list[int]]
    log: IO[str]
    startup: float = 0.0  # seconds until every replica answered

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_port}"

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.rasa_port}"

    def service(self, name: str) -> Service:
        return next(s for s in self.supervisor.svcs if s.name == name)

    def pids(self) -> dict[str, int]:
        return {s.name: s.proc.pid for s in self.supervisor.svcs if s.proc and s.proc.poll() is None}

    def kill(self, name: str) -> None:
        """``kill -9`` the service's whole process group, and wait until it is gone."""
        proc = self.service(name).proc
        assert proc is not None
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def restart(self, name: str) -> None:
        self.supervisor.restart(name)

    def replica_up(self, name: str) -> bool:
        """Whether one replica answers on its own port (``gateway-2``, ``rasa-1``, ``actions-1``, ``lb``)."""
        if name == "lb":
            return self.healthy()
        kind, _, number = name.partition("-")
        if kind not in self.ports:  # a singleton without a port (the dossier notifier): alive is up
            proc = self.service(name).proc
            return proc is not None and proc.poll() is None
        port = self.ports[kind][int(number) - 1]
        path = {"gateway": "/healthz", "rasa": "/", "actions": "/health"}[kind]
        try:
            return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_up(self, seconds: float = 300) -> float:
        """Wait until every replica answers; the seconds it took."""
        started = time.monotonic()
        names = [s.name for s in self.supervisor.svcs]
        while not all(self.replica_up(n) for n in names):
            dead = [s.name for s in self.supervisor.svcs if s.proc and s.proc.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited during start-up (log: {self.log.name})")
            if time.monotonic() - started > seconds:
                raise RuntimeError(f"the stack did not come up within {seconds:.0f} s (log: {self.log.name})")
            time.sleep(0.5)
        return time.monotonic() - started


@contextmanager
def running_stack(replicas: int, telegram: Telegram, workdir: Path, *, pg_server: str = PG_SERVER,
                  redis_url: str = REDIS_URL, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """Start the production profile with ``replicas`` of each service on a fresh database; stop it at the end."""
    model = current_model()
    if model is None:
        raise SystemExit("no trained Rasa model: run `make model` first")
    workdir.mkdir(parents=True, exist_ok=True)
    db_url = recreate_database(server=pg_server)
    engine = make_engine(db_url)
    load_content(engine)
    clear_redis(redis_url)
    public = {"gateway": free_port(), "rasa": free_port(), "actions": free_port()}
    ports = {kind: [free_port() for _ in range(replicas)] if replicas > 1 else [port]
             for kind, port in public.items()}
    settings = Settings(database_url=db_url, redis_url=redis_url, rasa_token=RASA_TOKEN,
                        gateway_port=public["gateway"], rasa_port=public["rasa"], actions_port=public["actions"],
                        telegram_token=TOKEN, telegram_secret=TELEGRAM_SECRET, telegram_api_base=telegram.url)
    svcs = replica_services(settings, model, RASA_TOKEN, replicas, ports=ports, workdir=workdir)
    for svc in svcs:  # the bench's own settings win over whatever the caller's environment holds
        for key in ("DVCBOT_ZALO_APP_ID", "DVCBOT_TELEGRAM_POLLING"):
            svc.env.pop(key, None)
        svc.env.update(extra_env or {})
    log = (workdir / f"stack-{replicas}.log").open("w", encoding="utf-8")
    sup = Supervisor(svcs, out=log)
    stack = Stack(replicas, settings, sup, engine, workdir, ports, log)
    sup.start()
    try:
        stack.startup = stack.wait_up()
        yield stack
    finally:
        sup.stop()
        log.close()
        engine.dispose()


def process_tree(root: int) -> list[int]:
    """``root`` and every process in its process group (Rasa and HAProxy start helpers)."""
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True).stdout
    return [int(p) for p, g in (line.split() for line in out.splitlines()) if int(g) == root]


def postgres_pids(database: str = DATABASE) -> list[int]:
    """The PostgreSQL backends serving ``database``."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines() if f" {database} " in line
            and "postgres:" in line]


def redis_pid(url: str = REDIS_URL) -> list[int]:
    port = urlsplit(url).port or 6379
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines() if "redis-server" in line
            and f":{port}" in line]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (from /proc; gone processes count 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


class CpuMeter:
    """CPU seconds per component of the stack over an interval (this process included, as ``bench``)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.start: dict[str, float] = {}

    def groups(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = defaultdict(list)
        for name, pid in self.stack.pids().items():
            groups[name.split("-")[0]].extend(process_tree(pid))
        groups["postgres"] = postgres_pids()
        groups["redis"] = redis_pid(self.stack.settings.redis_url or REDIS_URL)
        groups["bench"] = [os.getpid()]
        return groups

    def snapshot(self) -> dict[str, float]:
        values = {name: cpu_seconds(pids) for name, pids in self.groups().items()}
        values["machine busy"], values["machine total"] = machine_cpu()
        return values

    def begin(self) -> None:
        self.start = self.snapshot()

    def end(self) -> dict[str, float]:
        now = self.snapshot()
        return {name: max(0.0, value - self.start.get(name, 0.0)) for name, value in now.items()}


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the whole machine has been busy, and in total, over all cores (from /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / tick, sum(fields[:8]) / tick


def machine_load() -> str:
    """The load average and what else is busy, for the report's honesty about noise."""
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return "unknown"
    return " / ".join(load)


def start_thread(fn: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread
