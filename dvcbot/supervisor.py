"""Run the Rasa server, the action server and the gateway together (``make run``).

Each process's output is prefixed with its name; Ctrl-C (or SIGTERM) stops all of them, and so does
the death of any one. Children die with the supervisor even if it is killed (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import unquote, urlsplit

import httpx
from pydantic import SecretStr

from dvcbot import PROJECT_ROOT
from dvcbot.settings import Settings
from dvcbot.training import RASA_PY, rasa_env

COLORS = {"rasa": "35", "actions": "36", "gateway": "32", "notify": "34", "run": "33"}
PR_SET_PDEATHSIG = 1
# the Rasa API token of a `make run` without DVCBOT_RASA_TOKEN, for `dvcbot deploy` (mode 0600)
TOKEN_FILE = PROJECT_ROOT / "var" / "rasa-token"
# the Rasa replicas of a running `make run-prod`, one URL a line, for `dvcbot deploy` (removed when it stops)
RASA_URLS_FILE = PROJECT_ROOT / "var" / "rasa-urls"
_PRINT_LOCK = threading.Lock()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Service:
    name: str
    cmd: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    pump: threading.Thread | None = field(default=None, repr=False)


def _printer(name: str, out: TextIO | None = None) -> Callable[[str], None]:
    stream = out or sys.stdout
    color = COLORS.get(name, "37") if stream.isatty() else ""
    prefix = f"\033[{color}m{name:>8} |\033[0m " if color else f"{name:>8} | "

    def emit(line: str) -> None:
        with _PRINT_LOCK:
            stream.write(prefix + line.rstrip("\n") + "\n")
            stream.flush()

    return emit



CHANNEL_SETTINGS = ("telegram_token", "telegram_secret", "telegram_api_base", "telegram_polling", "zalo_app_id",
                    "zalo_app_secret", "zalo_oa_secret_key", "zalo_access_token", "zalo_refresh_token",
                    "zalo_api_base", "zalo_oauth_base")


def channel_env(settings: Settings) -> dict[str, str]:
    """The Telegram and Zalo settings that are set, as the gateway reads them from its environment."""
    env = {}
    for name in CHANNEL_SETTINGS:
        value = getattr(settings, name)
        if value is not None:
            value = value.get_secret_value() if isinstance(value, SecretStr) else value
            env[f"DVCBOT_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def services(settings: Settings, model: Path, token: str) -> list[Service]:
    """The three processes of a local deployment."""
    venv_bin = PROJECT_ROOT / ".venv" / "bin"
    base = dict(os.environ)
    # the children read the same settings from their environment
    base.update({
        "DVCBOT_RASA_TOKEN": token,
        "DVCBOT_DATABASE_URL": settings.database_url,
        "DVCBOT_GATEWAY_HOST": settings.gateway_host,
        "DVCBOT_GATEWAY_PORT": str(settings.gateway_port),
        "DVCBOT_RASA_HOST": settings.rasa_host,
        "DVCBOT_RASA_PORT": str(settings.rasa_port),
        "DVCBOT_ACTIONS_HOST": settings.actions_host,
        "DVCBOT_ACTIONS_PORT": str(settings.actions_port),
        "DVCBOT_ACTIONS_WEBHOOK_URL": f"{settings.actions_url}/webhook",
        "DVCBOT_RASA_TRACKER_URL": settings.tracker_store_url,
        "DVCBOT_RASA_TRACKER_DIALECT": settings.tracker_store_url.split(":", 1)[0].split("+", 1)[0],
        # the action server stores messages below it in the editors' inbox; Rasa calls it only for those
        "DVCBOT_INBOX_LOW_CONFIDENCE": str(settings.inbox_low_confidence),
        "PYTHONUNBUFFERED": "1",
    })
    base.update(channel_env(settings))
    rasa = rasa_env()
    rasa.update(base)
    rasa.update(lock_store_env(settings.redis_url))  # endpoints.yml: in-memory lock store, Redis's with Redis
    actions = {**base, "SANIC_HOST": settings.actions_host}
    return [
        # rasa-sdk's app with /metrics and our logging (actions/server.py); the host comes from SANIC_HOST
        Service("actions", [str(venv_bin / "python"), "-m", "actions.server", "--port", str(settings.actions_port)],
                actions),
        # `rasa run` through nlu/server.py: Rasa's action-answer check compiled once (about 40 ms per action saved)
        Service("rasa", [str(RASA_PY), "-m", "nlu.server", "run", "--enable-api", "--auth-token", token,
                         "--interface", settings.rasa_host, "--port", str(settings.rasa_port),
                         "--model", str(model), "--endpoints", "endpoints.yml",
                         "--credentials", "credentials.yml"], rasa),
        Service("gateway", [str(venv_bin / "python"), "-m", "uvicorn", "bot.app:gateway_app", "--factory",
                            "--host", settings.gateway_host, "--port", str(settings.gateway_port)], base),
        # notices dossier status changes for citizens who asked to be told (the gateway relays the notices)
        Service("notify", [str(venv_bin / "dvcbot"), "dossiers", "notify", "--every", "15"], base),
    ]



# --- the production profile: N replicas of each service behind HAProxy (``make run-prod``, ``make bench``) -------

HAPROXY = "haproxy"
# what HAProxy asks each kind of replica to decide whether it takes traffic (``/healthz`` would take every gateway
# out when Rasa is down, and the gateway answers that case politely itself)
HEALTH_PATHS = {"gateway": "/", "rasa": "/", "actions": "/health"}


def lock_store_env(redis_url: str | None) -> dict[str, str]:
    """The ``DVCBOT_RASA_LOCK_*`` variables of endpoints.yml: Rasa's RedisLockStore on ``redis_url``, else its
    in-memory lock store (one Rasa server)."""
    if not redis_url:
        return {"DVCBOT_RASA_LOCK_STORE": "in_memory", "DVCBOT_RASA_LOCK_HOST": "", "DVCBOT_RASA_LOCK_PORT": "6379",
                "DVCBOT_RASA_LOCK_DB": "0", "DVCBOT_RASA_LOCK_PASSWORD": ""}
    url = urlsplit(redis_url)
    return {"DVCBOT_RASA_LOCK_STORE": "redis", "DVCBOT_RASA_LOCK_HOST": url.hostname or "127.0.0.1",
            "DVCBOT_RASA_LOCK_PORT": str(url.port or 6379), "DVCBOT_RASA_LOCK_DB": url.path.strip("/") or "0",
            "DVCBOT_RASA_LOCK_PASSWORD": unquote(url.password or "")}


def _with_option(cmd: list[str], option: str, value: str) -> list[str]:
    at = cmd.index(option)
    return [*cmd[:at + 1], value, *cmd[at + 2:]]


def haproxy_config(frontends: dict[str, tuple[str, int, list[int]]]) -> str:
    """HAProxy's configuration: for each kind, ``(host, public port, replica ports on 127.0.0.1)``."""
    lines = ["global", "    maxconn 4000", "", "defaults", "    mode http", "    timeout connect 2s",
             "    timeout client 120s", "    timeout server 120s", "    timeout http-keep-alive 10s",
             "    retries 2", "    option redispatch",
             # a dead replica refuses connections and is out after 3 s; a busy one may answer its check slowly
             # (Rasa serves it from the same event loop as the conversations) and must stay in
             "    timeout check 10s", "    default-server inter 1s fall 3 rise 2", ""]
    for kind, (host, port, replicas) in frontends.items():
        lines += [f"frontend {kind}", f"    bind {host}:{port}", f"    default_backend {kind}_replicas", "",
                  f"backend {kind}_replicas", f"    balance {'roundrobin' if kind == 'gateway' else 'leastconn'}",
                  f"    option httpchk GET {HEALTH_PATHS[kind]}",
                  *(f"    server {kind}-{i} 127.0.0.1:{p} check" for i, p in enumerate(replicas, 1)), ""]
    return "\n".join(lines)


def replica_services(settings: Settings, model: Path, token: str, replicas: int = 2, *,
                     ports: dict[str, list[int]] | None = None,
                     workdir: Path = PROJECT_ROOT / "var" / "prod") -> list[Service]:
    """The production profile: ``replicas`` action servers, Rasa servers and gateways (``<kind>-<n>``), and one of
    each other process of :func:`services` (the dossier notifier).

    Rasa reads endpoints.yml: the SQL tracker store and, with ``settings.redis_url``, the Redis lock store; the
    gateways share ``settings.redis_url`` for per-conversation order. With more than one replica, HAProxy (service
    ``lb``) listens on the settings' public ports and spreads the calls over the replicas, which listen on
    127.0.0.1 at ``ports`` (default: the public port + 1, + 2, ...); with one, it listens there itself.
    """
    templates = {svc.name: svc for svc in services(settings, model, token)}
    for template in templates.values():  # production logs are JSON lines, unless DVCBOT_LOG_FORMAT says otherwise
        template.env.setdefault("DVCBOT_LOG_FORMAT", "json")
    public = {"gateway": settings.gateway_port, "rasa": settings.rasa_port, "actions": settings.actions_port}
    if ports is None:
        ports = {kind: [port] if replicas == 1 else [port + i for i in range(1, replicas + 1)]
                 for kind, port in public.items()}
    out: list[Service] = []
    rasa_urls = ",".join(f"http://{settings.rasa_host}:{port}" for port in ports["rasa"][:replicas])
    for kind in ("actions", "rasa", "gateway"):
        template = templates[kind]
        for i, port in enumerate(ports[kind][:replicas], 1):
            cmd, env = _with_option(template.cmd, "--port", str(port)), dict(template.env)
            env["DVCBOT_RASA_URLS"] = rasa_urls  # each replica, for model deploys (dvcbot.deploy)
            if kind == "gateway":
                env["DVCBOT_GATEWAY_PORT"] = str(port)
                env["DVCBOT_GATEWAY_REPLICAS"] = str(replicas)  # they share the bot's Telegram budget
                if replicas > 1:  # only HAProxy listens on the public address
                    cmd = _with_option(cmd, "--host", "127.0.0.1")
                    env["DVCBOT_GATEWAY_HOST"] = "127.0.0.1"
            if settings.redis_url:
                env["DVCBOT_REDIS_URL"] = settings.redis_url
            out.append(Service(f"{kind}-{i}", cmd, env))
    for name, template in templates.items():  # singletons (the dossier notifier): once, whatever the replicas
        if name not in public:
            out.append(Service(name, template.cmd, {**template.env, **(
                {"DVCBOT_REDIS_URL": settings.redis_url} if settings.redis_url else {})}))
    if replicas > 1:
        hosts = {"gateway": settings.gateway_host, "rasa": settings.rasa_host, "actions": settings.actions_host}
        config = haproxy_config({kind: (hosts[kind], public[kind], ports[kind][:replicas]) for kind in public})
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "haproxy.cfg"
        path.write_text(config, encoding="utf-8")
        out.append(Service("lb", [HAPROXY, "-db", "-f", str(path)], dict(os.environ)))
    return out


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database named in ``url`` if it is missing; ``True`` when it was created."""
    if not url.startswith(("postgresql://", "postgresql+psycopg://")):
        return False
    import psycopg  # only the production profile needs it here

    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://", 1))
    name = parts.path.strip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(f'CREATE DATABASE "{name.replace(chr(34), "")}"')
        return True


class Supervisor:
    def __init__(self, svcs: list[Service], out: TextIO | None = None) -> None:
        self.svcs = svcs
        self.out = out
        self.stopping = threading.Event()
        self.say = _printer("run", out)

    def start(self) -> None:
        for svc in self.svcs:
            self._spawn(svc)

    def _spawn(self, svc: Service) -> None:
        svc.proc = subprocess.Popen(
            svc.cmd, cwd=PROJECT_ROOT, env=svc.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
        )
        svc.pump = threading.Thread(target=self._pump, args=(svc,), daemon=True)
        svc.pump.start()
        self.say(f"started {svc.name} (pid {svc.proc.pid})")

    def restart(self, name: str) -> None:
        """Start a service again once it has died (tests use it after killing one)."""
        svc = next(s for s in self.svcs if s.name == name)
        if svc.proc and svc.proc.poll() is None:
            raise RuntimeError(f"{name} is still running")
        if svc.proc:
            try:
                os.killpg(svc.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._spawn(svc)

    def _pump(self, svc: Service) -> None:
        emit = _printer(svc.name, self.out)
        assert svc.proc and svc.proc.stdout
        for raw in iter(svc.proc.stdout.readline, b""):
            emit(raw.decode("utf-8", "replace"))

    def stop(self, timeout: float = 15.0) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        running = [s for s in self.svcs if s.proc and s.proc.poll() is None]
        for svc in running:
            assert svc.proc
            self.say(f"stopping {svc.name}")
            try:
                os.killpg(svc.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        for svc in running:
            assert svc.proc
            try:
                svc.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{svc.name} did not stop in time; killing it")
            try:  # whatever is left of the group (for example Rasa's worker processes)
                os.killpg(svc.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            svc.proc.wait()
        for svc in running:
            if svc.pump:
                svc.pump.join(timeout=2)
        self.say("all processes stopped")

    def wait(self) -> int:
        """Block until a signal or a child's exit; return the exit code for ``make run``."""
        while not self.stopping.is_set():
            for svc in self.svcs:
                if svc.proc and svc.proc.poll() is not None:
                    self.say(f"{svc.name} exited with code {svc.proc.returncode}; stopping the others")
                    self.stop()
                    return 1
            time.sleep(0.3)
        return 0


def announce_when_ready(settings: Settings, stop: threading.Event, say: Callable[[str], None]) -> None:
    """Print the web chat address once the gateway reports every part up."""
    url = f"http://{settings.gateway_host}:{settings.gateway_port}"
    started = time.monotonic()
    while not stop.is_set():
        try:
            resp = httpx.get(f"{url}/healthz", timeout=3.0)
            if resp.status_code == 200:
                say(f"ready after {time.monotonic() - started:.0f} s. Web chat: {url}/  (Ctrl-C stops everything)")
                return
        except httpx.HTTPError:
            pass
        stop.wait(1.0)


def write_token_file(token: str, path: Path = TOKEN_FILE) -> None:
    """Leave the generated Rasa token where ``dvcbot deploy`` finds it, readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file already existed with a wider mode
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")


def remove_token_file(token: str, path: Path = TOKEN_FILE) -> None:
    """Remove the token file if it still holds this run's token (another run may have replaced it)."""
    try:
        if path.read_text(encoding="utf-8").strip() == token:
            path.unlink()
    except FileNotFoundError:
        pass


def run(settings: Settings, model: Path) -> int:
    generated = settings.rasa_token is None
    token = secrets.token_urlsafe(24) if settings.rasa_token is None else settings.rasa_token.get_secret_value()
    if generated:
        write_token_file(token)
    RASA_URLS_FILE.unlink(missing_ok=True)  # left by a `make run-prod` that was killed: one Rasa server now
    try:
        return _run(settings, model, token)
    finally:
        if generated:
            remove_token_file(token)


def _run(settings: Settings, model: Path, token: str) -> int:
    sup = Supervisor(services(settings, model, token))

    def on_signal(signum: int, _frame: object) -> None:
        sup.say(f"received {signal.Signals(signum).name}")
        threading.Thread(target=sup.stop, daemon=True).start()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sup.start()
    threading.Thread(target=announce_when_ready, args=(settings, sup.stopping, sup.say), daemon=True).start()
    code = sup.wait()
    while any(s.proc and s.proc.poll() is None for s in sup.svcs):
        time.sleep(0.2)
    return code


def run_prod(settings: Settings, model: Path, replicas: int = 2) -> int:
    """``make run-prod``: :func:`replica_services` until Ctrl-C or the death of any process."""
    if replicas > 1 and not settings.redis_url:
        print("The production profile needs Redis: set DVCBOT_REDIS_URL (e.g. redis://127.0.0.1:6379/0).",
              file=sys.stderr)
        return 1
    generated = settings.rasa_token is None
    token = secrets.token_urlsafe(24) if settings.rasa_token is None else settings.rasa_token.get_secret_value()
    if generated:
        write_token_file(token)
    svcs = replica_services(settings, model, token, replicas)
    RASA_URLS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RASA_URLS_FILE.write_text(svcs[0].env["DVCBOT_RASA_URLS"].replace(",", "\n") + "\n", encoding="utf-8")
    sup = Supervisor(svcs)

    def on_signal(signum: int, _frame: object) -> None:
        sup.say(f"received {signal.Signals(signum).name}")
        threading.Thread(target=sup.stop, daemon=True).start()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sup.start()
        threading.Thread(target=announce_when_ready, args=(settings, sup.stopping, sup.say), daemon=True).start()
        code = sup.wait()
        while any(s.proc and s.proc.poll() is None for s in sup.svcs):
            time.sleep(0.2)
        return code
    finally:
        RASA_URLS_FILE.unlink(missing_ok=True)
        if generated:
            remove_token_file(token)
