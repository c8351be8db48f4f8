"""python-telegram-bot's HTTP requests on lanes (:mod:`bot.http_lanes`): one kept connection per lane.

PTB's own :class:`~telegram.request.HTTPXRequest` shares one httpx pool among all calls, and httpx's pool looks
at every connection it holds whenever a call starts or ends: 4 % of the gateway's CPU under load. Here every lane
is an ``HTTPXRequest`` of one connection, and a call takes a free lane, waiting at most ``pool_timeout`` for one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from telegram.error import TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData

from bot.http_lanes import Lanes

if TYPE_CHECKING:
    from telegram._utils.types import ODVInput  # the type of PTB's own signature (a private module)


class LanesRequest(BaseRequest):
    """``lanes`` ``HTTPXRequest`` objects of one connection each; ``kwargs`` (timeouts) go to every one."""

    def __init__(self, lanes: int, pool_timeout: float | None = 10.0, **kwargs: Any) -> None:
        self.pool_timeout = pool_timeout
        self.lanes = Lanes([HTTPXRequest(connection_pool_size=1, pool_timeout=pool_timeout, **kwargs)
                            for _ in range(lanes)])

    @property
    def read_timeout(self) -> float | None:
        return self.lanes.items[0].read_timeout

    async def initialize(self) -> None:
        await asyncio.gather(*(request.initialize() for request in self.lanes.items))

    async def shutdown(self) -> None:
        await asyncio.gather(*(request.shutdown() for request in self.lanes.items))

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        wait = self.pool_timeout if pool_timeout is BaseRequest.DEFAULT_NONE else pool_timeout
        try:
            async with asyncio.timeout(wait):  # type: ignore[arg-type]  # a float or None here
                request = await self.lanes.acquire()
        except TimeoutError as exc:
            raise TimedOut(f"Pool timeout: no free connection to the Bot API within {wait} s") from exc
        try:
            return await request.do_request(url, method, request_data, read_timeout, write_timeout,
                                            connect_timeout, pool_timeout)
        finally:
            self.lanes.release(request)
