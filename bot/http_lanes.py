"""HTTP "lanes": several httpx clients of one kept-alive connection each, one request per lane at a time.

httpcore's connection pool looks at every connection it holds whenever a request starts or ends (is it closed,
has it expired — a ``select`` on its socket — is it idle), and counts the idle ones once for each idle one. With
16 connections kept to Rasa that bookkeeping was 7 % of the gateway's CPU under load, and 4 % more in
python-telegram-bot's pool. A lane's pool holds a single connection, so each request looks at one; a request that
finds no free lane waits, which also caps the requests in flight. The lane used last is handed out first, so a
quiet gateway keeps using one warm connection and the others' connections expire.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import httpx

T = TypeVar("T")


class Lanes(Generic[T]):
    """A set of ``items`` (clients of one connection each), handed out one request at a time."""

    def __init__(self, items: Sequence[T]) -> None:
        if not items:
            raise ValueError("at least one lane")
        self.items = list(items)
        self._free: list[T] = list(reversed(self.items))  # a stack: the one used last on top
        self._turns = asyncio.Semaphore(len(self.items))  # first come, first served

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def busy(self) -> int:
        """Lanes with a request on them."""
        return len(self.items) - len(self._free)

    async def acquire(self) -> T:
        """A free lane for one request; waits for one while all are busy (wrap it in a timeout)."""
        await self._turns.acquire()
        return self._free.pop()

    def release(self, item: T) -> None:
        self._free.append(item)
        self._turns.release()

    @asynccontextmanager
    async def lane(self) -> AsyncIterator[T]:
        """:meth:`acquire`, then :meth:`release` when the block ends."""
        item = await self.acquire()
        try:
            yield item
        finally:
            self.release(item)


class HttpLanes(Lanes[httpx.AsyncClient]):
    """``count`` httpx clients of one kept connection each (``client_kwargs`` go to every client)."""

    def __init__(self, count: int, **client_kwargs: Any) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        super().__init__([httpx.AsyncClient(limits=limits, **client_kwargs) for _ in range(count)])

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self.items))

    async def __aenter__(self) -> HttpLanes:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
