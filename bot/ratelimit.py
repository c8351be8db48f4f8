"""Sliding-window rate limits: at most ``limit`` events in any ``period`` seconds, waiters served in order."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable


class Window:
    """At most ``limit`` acquisitions in any window of ``period`` seconds."""

    def __init__(self, limit: int, period: float, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a window needs limit >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self.clock = clock
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()  # FIFO: the first to wait is the first served

    def _expire(self, now: float) -> None:
        while self._stamps and self._stamps[0] <= now - self.period:
            self._stamps.popleft()

    @property
    def idle(self) -> bool:
        """No acquisition inside the current window (the window may be forgotten)."""
        self._expire(self.clock())
        return not self._stamps and not self._lock.locked()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self.clock()
                self._expire(now)
                if len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return
                await asyncio.sleep(self._stamps[0] + self.period - now)


class Windows:
    """One :class:`Window` per key (per chat, per group), forgetting idle ones."""

    def __init__(self, limit: int, period: float, prune_every: int = 1000) -> None:
        self.limit = limit
        self.period = period
        self.prune_every = prune_every
        self._windows: dict[Hashable, Window] = {}
        self._calls = 0

    async def acquire(self, key: Hashable) -> None:
        self._calls += 1
        if self._calls % self.prune_every == 0:
            for k in [k for k, w in self._windows.items() if w.idle]:
                del self._windows[k]
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = Window(self.limit, self.period)
        await window.acquire()

    def __len__(self) -> int:
        return len(self._windows)
