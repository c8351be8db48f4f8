"""``make faults``: faults under a steady load; lost and duplicated messages, recovery times → reports/faults.md.

    .venv/bin/python -m bench.faults [--only NAME,...] [--shared] [--out reports/faults.md]

The production profile with 2 replicas of each service (HAProxy in front) runs on a private PostgreSQL cluster and
a private Redis server (started here from the machine's own binaries, so that restarting them disturbs nothing
else; ``--shared`` uses the machine's servers and the commands of ``.ci/run``). Telegram citizens (through the
fake Bot API) and web chat citizens keep writing at a steady rate while, one scenario at a time:

- ``gateway``: one gateway replica is killed with SIGKILL and restarted 5 s later;
- ``rasa``: one Rasa server is killed with SIGKILL and restarted;
- ``actions``: one action server is killed with SIGKILL and restarted;
- ``actions-all``: every action server is killed for 10 s (the polite "unavailable" answer is expected);
- ``postgres``: PostgreSQL is restarted (fast shutdown, every connection dropped);
- ``redis``: Redis is stopped for 10 s, then started again (and checked to be running afterwards);
- ``telegram-429`` / ``telegram-500``: the fake Bot API refuses every send for 10 s.

After each scenario the stack is drained (bounded) and every message is accounted for: lost, duplicated, answered
politely as unavailable, and the recovery time — from the fault until every message sent from then on is answered
within 2 s again — and until the last delayed answer arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.accounting import Tally, account_telegram, account_webchat, conversation_keys, drain
from bench.load import Crowd, Load, Turn, attribute_telegram
from bench.run import CHAT_BASES, UPDATE_IDS
from bench.services import PrivatePostgres, PrivateRedis, private_postgres, private_redis
from bench.stack import PG_SERVER, REDIS_URL, Stack, Telegram, fake_telegram, machine_load, running_stack
from dvcbot import PROJECT_ROOT
from tests.fakes.telegram import Failure

FAULT_AT = 8.0  # seconds of normal load before the fault
LOAD_SECONDS = 75.0  # the scenario's sending time: long enough to see service back after a Rasa restart (~35 s)
NORMAL = 2.0  # an answer within this many seconds counts as normal service
DRAIN = 150.0  # longest wait for the backlog after the load stops (a dead holder's locks and leases: 15 s)


@dataclass
class Outcome:
    name: str
    what: str
    fault_at: float = 0.0
    restored_at: float | None = None
    back_up: float | None = None  # seconds from the fault until the restarted part answered again
    telegram: Tally = field(default_factory=Tally)
    webchat: Tally = field(default_factory=Tally)
    turns: list[Turn] = field(default_factory=list)
    drained: float = 0.0
    error: str | None = None

    def recovery(self) -> float | None:
        """Seconds from the fault until every message sent from then on was answered normally (``None``: never)."""
        after = sorted((t for t in self.turns if t.sent >= self.fault_at), key=lambda t: t.sent)
        if not after:
            return None
        bad = [t for t in after if t.latency is None or t.latency > NORMAL or t.unavailable]
        if not bad:
            return 0.0
        later = [t for t in after if t.sent > bad[-1].sent]
        return (later[0].sent - self.fault_at) if later else None

    def backlog_cleared(self) -> float | None:
        """Seconds from the fault until the last late answer arrived."""
        late = [t.first for t in self.turns if t.first is not None and t.latency is not None and t.latency > NORMAL
                and t.sent >= self.fault_at - 30]
        return max(late) - self.fault_at if late else 0.0


@dataclass
class Env:
    stack: Stack
    telegram: Telegram
    postgres: PrivatePostgres | None
    redis: PrivateRedis | None


async def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.5)
    return False


async def kill_and_restart(env: Env, names: list[str], down: float, out: Outcome) -> None:
    for name in names:
        env.stack.kill(name)
    await asyncio.sleep(down)
    out.restored_at = time.monotonic()
    for name in names:
        env.stack.restart(name)
    ok = await wait_for(lambda: all(env.stack.replica_up(n) for n in names), 180)
    out.back_up = time.monotonic() - out.fault_at if ok else None


def shared_pg_restart() -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True)


def shared_redis(action: str) -> None:
    if action == "stop":
        subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"], check=False)
    else:
        Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
        Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
                        "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile",
                        "/var/log/redis/ci.log"], check=True)


async def postgres_restart(env: Env, out: Outcome) -> None:
    await asyncio.to_thread(env.postgres.restart if env.postgres else shared_pg_restart)
    out.restored_at = time.monotonic()
    out.back_up = out.restored_at - out.fault_at


async def redis_outage(env: Env, out: Outcome) -> None:
    if env.redis:
        await asyncio.to_thread(env.redis.stop)
    else:
        await asyncio.to_thread(shared_redis, "stop")
    await asyncio.sleep(10)
    if env.redis:
        await asyncio.to_thread(env.redis.start)
    else:
        await asyncio.to_thread(shared_redis, "start")
    out.restored_at = time.monotonic()
    ok = await wait_for(env.redis.ready if env.redis else lambda: subprocess.run(
        ["redis-cli", "ping"], capture_output=True).returncode == 0, 30)
    out.back_up = time.monotonic() - out.fault_at if ok else None


async def telegram_refuses(env: Env, failure: Failure, out: Outcome) -> None:
    env.telegram.fake.fail = lambda method, params: failure
    await asyncio.sleep(10)
    env.telegram.fake.fail = None
    out.restored_at = time.monotonic()
    out.back_up = out.restored_at - out.fault_at


MECHANISMS = [
    "## How each fault is absorbed (the design, against which the figures above are read)", "",
    "- **Gateway killed**: HAProxy stops sending to it within 2 s (health check every second, down after 2 "
    "failures); webhooks it had acknowledged are already stored and are picked up by the other replica's sweep. A "
    "conversation whose message was being processed by the dead replica waits for that replica's Redis conversation "
    "lock to expire, and a reply it was sending waits for its outbox lease to expire — 15 s each (`LEASE_SECONDS` "
    "in `bot/locks.py`, `bot/outbox.py`; live holders renew them every 5 s), then up to 5 s for the intake's "
    "sweep: that is the *backlog* figure. Nothing is lost; the delay is the price.",
    "- **Rasa server or one action server killed**: HAProxy sends new calls to the other replica; a call that was "
    "in flight fails, and the gateway answers that one message with the polite \"temporarily unavailable\" text "
    "(with \"Gặp nhân viên\" and \"Thử lại\" buttons) rather than silence.",
    "- **Every action server down**: each message in the outage gets the polite answer; service is back once one "
    "action server is up again.",
    "- **PostgreSQL restarted**: webhooks that cannot be stored get a 5xx and are redelivered (the clients' retries "
    "column); stored ones are retried by the intake; the outbox records the outcome of a send again after a failure.",
    "- **Redis down**: the conversation locks cannot be taken, so stored updates wait for the intake's sweep (every "
    "5 s, for updates pending over 10 s) once Redis is back; Rasa's lock store fails its calls the same way.",
    "- **Telegram 429 / 500**: the outbox keeps every reply, waits the advised `retry_after` after a 429 and backs "
    "off exponentially (1, 2, 4, 8 … s) after a 5xx, so the backlog clears some seconds after the platform recovers.",
]


Scenario = Callable[[Env, Outcome], Awaitable[None]]
SCENARIOS: dict[str, tuple[str, Scenario]] = {
    "gateway": ("kill -9 gateway-1 (of 2), restart it 5 s later",
                lambda env, out: kill_and_restart(env, ["gateway-1"], 5, out)),
    "rasa": ("kill -9 rasa-1 (of 2), restart it 5 s later",
             lambda env, out: kill_and_restart(env, ["rasa-1"], 5, out)),
    "actions": ("kill -9 actions-1 (of 2), restart it 5 s later",
                lambda env, out: kill_and_restart(env, ["actions-1"], 5, out)),
    "actions-all": ("kill -9 both action servers, restart them 10 s later",
                    lambda env, out: kill_and_restart(env, ["actions-1", "actions-2"], 10, out)),
    "postgres": ("restart PostgreSQL (fast shutdown: every connection dropped)", postgres_restart),
    "redis": ("stop Redis for 10 s, then start it again", redis_outage),
    "telegram-429": ("the Bot API answers 429 (retry_after 3) to every send for 10 s",
                     lambda env, out: telegram_refuses(env, Failure(429, retry_after=3), out)),
    "telegram-500": ("the Bot API answers 500 to every send for 10 s",
                     lambda env, out: telegram_refuses(env, Failure(500), out)),
}


async def scenario(env: Env, name: str) -> Outcome:
    what, fault = SCENARIOS[name]
    out = Outcome(name, what)
    started = time.monotonic()
    telegram = Crowd(env.stack.url, env.telegram, f"f-{name}-t-{int(time.time())}", next(CHAT_BASES), UPDATE_IDS)
    web = Crowd(env.stack.url, env.telegram, f"f-{name}-w-{int(time.time())}", 0, UPDATE_IDS)

    async def inject() -> None:
        await asyncio.sleep(FAULT_AT)
        out.fault_at = time.monotonic()
        try:
            await fault(env, out)
        except Exception as exc:  # recorded in the report; the next scenario checks the stack first
            out.error = f"{type(exc).__name__}: {exc}"

    # steady load: 10 Telegram citizens and 6 web chat citizens, each writing every 2 s (8 messages/s)
    await asyncio.gather(telegram.run("telegram", Load(10, LOAD_SECONDS, think=0.0, pace=2.0, seed=11)),
                         web.run("webchat", Load(6, LOAD_SECONDS, think=0.0, pace=2.0, seed=12)), inject())
    out.turns = telegram.turns + web.turns
    keys = conversation_keys(out.turns, env.stack.engine)
    out.drained = await drain(env.stack.engine, keys, DRAIN)
    attribute_telegram(telegram.turns, env.telegram)
    out.telegram = account_telegram(telegram.turns, env.stack.engine, env.telegram)
    out.webchat = account_webchat(web.turns, env.stack.engine)
    print(f"[faults] {name}: {time.monotonic() - started:.0f} s, lost {out.telegram.lost + out.webchat.lost}, "
          f"duplicated {out.telegram.duplicated + out.webchat.duplicated}, recovery {out.recovery()}", flush=True)
    return out


async def healthy_again(env: Env) -> str | None:
    """Bring back whatever a scenario left down; a sentence when the stack cannot be made whole."""
    for svc in env.stack.supervisor.svcs:
        if svc.proc and svc.proc.poll() is not None:
            env.stack.restart(svc.name)
    if env.redis and not env.redis.ready():
        env.redis.start()
    if env.postgres and not env.postgres.ready():
        env.postgres.start()
    names = [s.name for s in env.stack.supervisor.svcs]
    if not await wait_for(lambda: all(env.stack.replica_up(n) for n in names) and env.stack.healthy(), 180):
        return "the stack did not become healthy again"
    return None


def render(outcomes: list[Outcome], started: str, elapsed: float, shared: bool, load: tuple[str, str]) -> str:
    lines = ["# Faults under load", "",
             f"Run {started} with `make faults` ({elapsed / 60:.1f} min); load average before {load[0]}, after "
             f"{load[1]}. The production profile with 2 replicas of each service behind HAProxy, on "
             + ("the machine's PostgreSQL and Redis" if shared else "a private PostgreSQL cluster and Redis server")
             + ". Steady load during each scenario: 10 Telegram citizens (fake Bot API) and 6 web chat citizens, "
             f"each writing every 2 s (8 messages/s) for {LOAD_SECONDS:.0f} s; the fault starts after "
             f"{FAULT_AT:.0f} s. Clients retry as the real ones do: Telegram redelivers an update that did not get "
             "its 200, the web chat page repeats a failed call with the same `client_id`.", "",
             f"*Recovery*: from the fault until every message sent from then on was answered within {NORMAL:.0f} s "
             "(and not with the \"temporarily unavailable\" text). *Backlog*: until the last late answer arrived. "
             "*Part back*: until the restarted process answered (or the outage was undone). *not seen*: not within "
             f"the {LOAD_SECONDS - FAULT_AT:.0f} s of load after the fault.", "",
             "| fault | sent | lost | duplicated | \"unavailable\" answers | answered after > 30 s | client retries "
             "| refused after retries | part back s | recovery s | backlog s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for o in outcomes:
        t = Tally()
        t.add(o.telegram)
        t.add(o.webchat)

        def s(v: float | None) -> str:
            return "not seen" if v is None else f"{v:.0f}"

        slow = sum(1 for turn in o.turns if turn.latency is not None and turn.latency > 30)
        lines.append(f"| {o.what} | {t.sent} | {t.lost} | {t.duplicated} | {t.unavailable} | {slow} | {t.retried} "
                     f"| {t.refused} | {s(o.back_up)} | {s(o.recovery())} | {s(o.backlog_cleared())} |")
    total_lost = sum(o.telegram.lost + o.webchat.lost for o in outcomes)
    total_dup = sum(o.telegram.duplicated + o.webchat.duplicated for o in outcomes)
    lines += ["", f"Expected: zero lost and zero duplicated. Measured: **{total_lost} lost, {total_dup} duplicated** "
              "over every scenario.", "", *MECHANISMS, ""]
    for o in outcomes:
        notes = o.telegram.notes + o.webchat.notes + ([f"scenario error: {o.error}"] if o.error else [])
        if notes:
            lines += [f"### {o.name}", ""] + [f"- {n}" for n in notes[:12]]
            if len(notes) > 12:
                lines.append(f"- … and {len(notes) - 12} more")
            lines.append("")
    return "\n".join(lines)


async def run_all(names: list[str], shared: bool, workdir: Path) -> list[Outcome]:
    outcomes: list[Outcome] = []
    with ExitStack() as stack:
        pg = None if shared else stack.enter_context(private_postgres(workdir / "services"))
        redis = None if shared else stack.enter_context(private_redis(workdir / "services"))
        telegram = stack.enter_context(fake_telegram())
        running = stack.enter_context(running_stack(
            2, telegram, workdir / "stack", pg_server=pg.url if pg else PG_SERVER,
            redis_url=redis.url if redis else REDIS_URL))
        env = Env(running, telegram, pg, redis)
        print(f"[faults] stack up in {running.startup:.0f} s (log: {running.log.name})", flush=True)
        crowd = Crowd(running.url, telegram, f"f-warm-{int(time.time())}", next(CHAT_BASES), UPDATE_IDS)
        await crowd.run("webchat", Load(3, 4, think=0.2, seed=99))
        for name in names:
            problem = await healthy_again(env)
            if problem:
                outcomes.append(Outcome(name, SCENARIOS[name][0], error=problem))
                break
            outcomes.append(await scenario(env, name))
    if shared:  # whatever happened, leave the machine's Redis running
        ensure_shared_redis()
    return outcomes


def ensure_shared_redis() -> None:
    if subprocess.run(["redis-cli", "ping"], capture_output=True).returncode != 0:
        shared_redis("start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help=f"comma-separated scenarios of: {', '.join(SCENARIOS)}")
    parser.add_argument("--shared", action="store_true",
                        help="fault the machine's PostgreSQL and Redis instead of private ones")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "reports" / "faults.md")
    args = parser.parse_args(argv)
    names = [n for n in (args.only.split(",") if args.only else SCENARIOS) if n]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    started, clock, before = time.strftime("%Y-%m-%d %H:%M %Z"), time.monotonic(), machine_load()
    with tempfile.TemporaryDirectory(prefix="dvcbot-faults-") as tmp:
        Path(tmp).chmod(0o755)  # the private PostgreSQL runs as the postgres user and lives below it
        outcomes = asyncio.run(run_all(names, args.shared, Path(tmp)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(outcomes, started, time.monotonic() - clock, args.shared, (before, machine_load())),
                        encoding="utf-8")
    print(f"[faults] wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
