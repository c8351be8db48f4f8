"""The local runner stops every process it started, grandchildren included."""

from __future__ import annotations

import os
import subprocess
import threading
import time

from dvcbot.supervisor import Service, Supervisor


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(state) and not state.startswith("Z")


def group_members(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True).stdout
    return [int(p) for p, g in (line.split() for line in out.splitlines()) if int(g) == pgid]


def test_stop_leaves_no_process_behind() -> None:
    env = dict(os.environ)
    sup = Supervisor([
        Service("one", ["bash", "-c", "sleep 300 & echo started; wait"], env),
        Service("two", ["bash", "-c", "trap '' TERM; sleep 300 & wait"], env),  # ignores SIGTERM
    ])
    sup.start()
    time.sleep(0.5)
    groups = [s.proc.pid for s in sup.svcs if s.proc]
    assert all(len(group_members(g)) >= 2 for g in groups)
    started = time.monotonic()
    sup.stop(timeout=2)
    assert time.monotonic() - started < 10
    assert [p for g in groups for p in group_members(g) if alive(p)] == []


def test_one_process_dying_stops_the_others() -> None:
    env = dict(os.environ)
    sup = Supervisor([
        Service("short", ["bash", "-c", "sleep 0.5; exit 3"], env),
        Service("long", ["sleep", "300"], env),
    ])
    sup.start()
    result: list[int] = []
    waiter = threading.Thread(target=lambda: result.append(sup.wait()))
    waiter.start()
    waiter.join(timeout=30)
    assert result == [1]
    assert all(s.proc and s.proc.poll() is not None for s in sup.svcs)
