"""``make bench``: simulated citizens against the real stack, 1 and 2 replicas of each service → reports/bench.md.

    .venv/bin/python -m bench [--replicas 1,2] [--levels 1,5,10,20,40] [--seconds 15] [--rate 30]
                              [--rate-seconds 30] [--channels webchat,telegram] [--quick] [--no-profile]

For each replica count: the production profile starts on a fresh PostgreSQL database (``dvcbot_bench``) and
Redis (database 2), then for each channel citizens talk at rising concurrency (closed loop, 1 s thinking time),
then a steady-rate step offers ``--rate`` messages/s; the single-replica run also profiles the message path.
Everything is on loopback, every loop is bounded in count and time, and each step lasts at most about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.load import Load
from bench.profile import Sampler, probe
from bench.report import TARGET_RATE, Run, render
from bench.run import step
from bench.stack import fake_telegram, machine_load, running_stack
from dvcbot import PROJECT_ROOT
from dvcbot.training import current_model


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", default="1,2", help="replica counts to run (default 1,2)")
    parser.add_argument("--levels", default="1,5,10,20,40", help="citizens per closed-loop step")
    parser.add_argument("--seconds", type=float, default=15, help="sending time of a closed-loop step")
    parser.add_argument("--think", type=float, default=1.0, help="citizens' thinking time between messages")
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="messages/s of the steady-rate step")
    parser.add_argument("--rate-seconds", type=float, default=30, help="sending time of the steady-rate step")
    parser.add_argument("--channels", default="webchat,telegram")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (levels 1,5; 5 s steps)")
    parser.add_argument("--no-profile", action="store_true", help="skip the probe and py-spy")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "reports" / "bench.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.levels, args.seconds, args.rate_seconds = "1,5", 5.0, 8.0
    return args


def say(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", flush=True)


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


async def one_config(replicas: int, args: argparse.Namespace, run: Run, workdir: Path) -> None:
    levels = [int(n) for n in args.levels.split(",") if n]
    channels = [c for c in args.channels.split(",") if c]
    with fake_telegram() as telegram, running_stack(replicas, telegram, workdir / f"r{replicas}") as stack:
        run.startup[replicas] = stack.startup
        say(f"{replicas} replica(s) up; warming up")
        for channel in channels:
            await step(stack, telegram, channel, Load(3, 4, think=0.2, seed=99), "warmup")
        for channel in channels:
            for n in levels:
                result = await step(stack, telegram, channel, Load(n, args.seconds, think=args.think, seed=n),
                                    f"r{replicas}-{channel}-c{n}")
                run.steps.append(result)
                say(f"{replicas}x {channel} {n:>3} citizens: {result.rate:5.1f} msg/s, p95 "
                    f"{(result.latency(95) or 0) * 1000:5.0f} ms, lost {result.tally.lost}, "
                    f"dup {result.tally.duplicated}")
            citizens = max(1, round(args.rate * 2))  # each citizen writes every 2 s
            result = await step(stack, telegram, channel,
                                Load(citizens, args.rate_seconds, think=0.0, pace=citizens / args.rate, seed=7),
                                f"r{replicas}-{channel}-rate")
            run.steps.append(result)
            say(f"{replicas}x {channel} steady {args.rate:g}/s: {result.rate:5.1f} msg/s, p95 "
                f"{(result.latency(95) or 0) * 1000:5.0f} ms, lost {result.tally.lost}, "
                f"dup {result.tally.duplicated}")
        run.log_problems[replicas] = log_problems(stack.log.name)
        if replicas == 1 and not args.no_profile:
            say("profiling: one message at a time, then py-spy under load")
            run.probe = await asyncio.to_thread(probe, stack)
            seconds = int(min(args.seconds, 15))
            spy_dir = PROJECT_ROOT / "var" / "bench"
            spy_dir.mkdir(parents=True, exist_ok=True)
            sampler = Sampler(stack, ["gateway-1", "rasa-1", "actions-1"], seconds, spy_dir)
            run.spy_step = await step(stack, telegram, "webchat", Load(20, seconds, think=args.think, seed=5),
                                      "profile")
            run.spy = await asyncio.to_thread(sampler.collect)
            run.spy_error = sampler.error


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    model = current_model()
    if model is None:
        print("No trained Rasa model: run `make model` first.", file=sys.stderr)
        return 1
    started = time.monotonic()
    (PROJECT_ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    run = Run(command="make bench" if argv is None and len(sys.argv) == 1 else "python -m bench " + " ".join(
        sys.argv[1:]), started=time.strftime("%Y-%m-%d %H:%M %Z"), machine=machine(), model=model.name,
        commit=commit(), load_before=machine_load())
    workdir = PROJECT_ROOT / "var" / "bench" / "last-run"  # the stacks' logs, kept until the next run
    shutil.rmtree(workdir, ignore_errors=True)
    for replicas in [int(r) for r in args.replicas.split(",") if r]:
        say(f"starting {replicas} replica(s) of each service (logs: {workdir}/r{replicas})")
        try:
            asyncio.run(one_config(replicas, args, run, workdir))
        except RuntimeError as exc:
            say(f"{replicas} replica(s): {exc}")
            log = workdir / f"r{replicas}" / f"stack-{replicas}.log"
            if log.exists():
                print("\n".join(log.read_text(errors="replace").splitlines()[-40:]), file=sys.stderr)
            return 1
    run.elapsed = time.monotonic() - started
    run.load_after = machine_load()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(run), encoding="utf-8")
    raw = PROJECT_ROOT / "var" / "bench" / "turns.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps([{"step": s.name, **t.__dict__} for s in run.steps for t in s.turns],
                              ensure_ascii=False, default=str))
    say(f"wrote {args.out} in {run.elapsed / 60:.1f} min (every turn: {raw})")
    return 0


NOISE = ("DeprecationWarning", "UserWarning", "warnings.warn", "FutureWarning", " is UP,", "Connection refused")
PROBLEM = re.compile(r"\b(ERROR|CRITICAL|WARNING|ALERT|Traceback|Exception|unavailable)\b")


def log_problems(path: str) -> dict[str, int]:
    """Warnings and errors the stack logged during the load steps (digits folded, so alike lines count together)."""
    counts: dict[str, int] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return counts
    for line in lines:
        if PROBLEM.search(line) and not any(n in line for n in NOISE):
            key = re.sub(r"\d+", "N", line.strip())[:200]
            counts[key] = counts.get(key, 0) + 1
    return counts


def machine() -> str:
    try:
        cores = len([line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("processor")])
        memory = int(Path("/proc/meminfo").read_text().split()[1]) // (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return "unknown"
    return f"{cores} cores, {memory} GiB"


if __name__ == "__main__":
    sys.exit(main())
