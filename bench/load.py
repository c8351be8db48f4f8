"""Simulated citizens: web chat sessions and Telegram chats that hold conversations with the real stack.

Each citizen is a coroutine that walks through :mod:`bench.citizens` flows: it sends one message, waits for the
bot's answer (web chat: the HTTP answer; Telegram: the first reply the fake Bot API receives for its chat), thinks,
and sends the next — a closed loop; with ``pace`` it also keeps a schedule (``pace`` seconds between its messages),
which turns a crowd of citizens into a steady offered rate. Failed calls are retried the way the clients do: the
web chat page with the same ``client_id`` (idempotent), Telegram by redelivering the same update.

Timing is attributed after the fact: a Telegram turn's replies are the messages the fake received for that chat
between this turn and the next one, so replies that arrive late are still counted for the right turn.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.citizens import Press, Say, Script, Share, Step, choose_button
from bench.stack import TELEGRAM_SECRET, Telegram
from tests.fakes.telegram import Call, callback_update, location_update, text_update

UNAVAILABLE = "tạm gián đoạn"  # the gateway's own answer when Rasa or the action server is down
REPLY_TIMEOUT = 30.0  # a citizen waits this long for an answer before giving up on its conversation
RETRY_FOR = 60.0  # a client retries a failed call for this long (Telegram redelivers for much longer)


@dataclass
class Turn:
    """One citizen message and what came back."""

    channel: str
    chat: str  # the Telegram chat id, or the web chat citizen's label
    flow: str
    kind: str
    text: str
    ref: str  # Telegram update id, or the web chat client_id
    sent: float  # monotonic, first attempt
    sent_wall: float
    attempts: int = 0
    acked: bool = False  # the gateway answered 200 (Telegram: stored; web chat: answered)
    error: str | None = None  # the last failure, when the call never succeeded
    first: float | None = None  # monotonic: first reply handed to the platform / returned to the page
    last: float | None = None
    replies: int = 0
    unavailable: bool = False
    texts: list[str] = field(default_factory=list)
    reply_ids: list[int] = field(default_factory=list)
    index: int = 0  # Telegram: how many replies the chat had received when this turn was sent

    @property
    def latency(self) -> float | None:
        return None if self.first is None else self.first - self.sent

    @property
    def latency_last(self) -> float | None:
        return None if self.last is None else self.last - self.sent


@dataclass
class Load:
    """What a step asks for: ``citizens`` in parallel for ``seconds``, thinking ``think`` s, optionally paced."""

    citizens: int
    seconds: float
    think: float = 1.0
    pace: float | None = None  # seconds between one citizen's messages (steady offered rate)
    seed: int = 0


class Crowd:
    """Runs a :class:`Load` against the stack through one channel and keeps every turn."""

    def __init__(self, url: str, telegram: Telegram, label: str, chat_base: int, update_ids: itertools.count[int]
                 ) -> None:
        self.url = url
        self.telegram = telegram
        self.label = label  # unique per step: web chat client ids and Telegram chats are never reused
        self.chat_base = chat_base
        self.update_ids = update_ids
        self.turns: list[Turn] = []
        self.stop_at = 0.0

    async def run(self, channel: str, load: Load) -> list[Turn]:
        limits = httpx.Limits(max_connections=load.citizens + 10, max_keepalive_connections=load.citizens + 10)
        async with httpx.AsyncClient(base_url=self.url, timeout=REPLY_TIMEOUT + 5, limits=limits) as client:
            started = time.monotonic()
            self.stop_at = started + load.seconds
            citizen = self._web if channel == "webchat" else self._telegram
            await asyncio.gather(*(citizen(client, i, load, started) for i in range(load.citizens)))
        return self.turns

    async def _wait_turn(self, n: int, load: Load, started: float, answered_at: float, phase: float) -> bool:
        """Sleep until the citizen's next message is due; ``False`` when the step is over."""
        due = answered_at + load.think
        if load.pace is not None:
            due = max(due, started + phase + n * load.pace)
        if due >= self.stop_at:
            return False
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        return True

    # --- web chat ------------------------------------------------------------------------------------------

    async def _retrying(self, call: Any, turn: Turn | None = None) -> httpx.Response | None:
        deadline = time.monotonic() + RETRY_FOR
        delay = 0.25
        while True:
            if turn is not None:
                turn.attempts += 1
            try:
                resp: httpx.Response = await call()
                if resp.status_code < 500 and resp.status_code != 429:
                    return resp
                reason = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            if turn is not None:
                turn.error = reason
            if time.monotonic() + delay > deadline:
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 4.0)

    async def _web(self, client: httpx.AsyncClient, i: int, load: Load, started: float) -> None:
        phase = (load.pace or 0.0) * i / max(load.citizens, 1)
        await asyncio.sleep(phase if load.pace else 0.02 * i)
        resp = await self._retrying(lambda: client.post("/api/webchat/sessions"))
        if resp is None or resp.status_code != 201:
            return
        auth = {"Authorization": f"Bearer {resp.json()['session']}"}
        script = Script(load.seed * 100_000 + i)
        buttons: list[dict[str, str]] = []
        for n in itertools.count():
            flow, step = script.next()
            body, shown = self._web_body(step, buttons)
            client_id = f"{self.label}-{i}-{n}"
            turn = Turn("webchat", f"{self.label}-{i}", flow.name, flow.kind, shown, client_id, time.monotonic(),
                        time.time())
            self.turns.append(turn)
            body["client_id"] = client_id
            resp = await self._retrying(lambda b=body: client.post("/api/webchat/messages", json=b, headers=auth),
                                        turn)
            now = time.monotonic()
            if resp is None or resp.status_code != 200:
                if resp is not None:
                    turn.error = f"HTTP {resp.status_code}"
                return  # the citizen gives up on this conversation
            turn.acked, turn.error = True, None
            messages = resp.json().get("messages") or []
            turn.first = turn.last = now
            turn.replies = len(messages)
            turn.texts = [str(m.get("text") or "") for m in messages]
            turn.reply_ids = [int(m["id"]) for m in messages if isinstance(m.get("id"), int)]
            turn.unavailable = any(UNAVAILABLE in t for t in turn.texts)
            with_buttons = [m for m in messages if m.get("buttons")]
            buttons = with_buttons[-1]["buttons"] if with_buttons else []
            if not await self._wait_turn(n + 1, load, started, now, phase):
                return

    @staticmethod
    def _web_body(step: Step, buttons: list[dict[str, str]]) -> tuple[dict[str, Any], str]:
        if isinstance(step, Share):
            return {"location": {"lat": step.lat, "lon": step.lon}}, "📍"
        if isinstance(step, Press):
            title = choose_button([b["title"] for b in buttons], step)
            if title is not None:
                payload = next(b["payload"] for b in buttons if b["title"] == title)
                return {"payload": payload, "text": title}, f"[{title}]"
            return {"text": step.fallback}, step.fallback
        assert isinstance(step, Say)
        return {"text": step.text}, step.text

    # --- Telegram ------------------------------------------------------------------------------------------

    async def _telegram(self, client: httpx.AsyncClient, i: int, load: Load, started: float) -> None:
        phase = (load.pace or 0.0) * i / max(load.citizens, 1)
        await asyncio.sleep(phase if load.pace else 0.02 * i)
        chat = self.chat_base + i
        script = Script(load.seed * 100_000 + i)
        headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
        for n in itertools.count():
            flow, step = script.next()
            received = self.telegram.sent(chat)
            update, shown = self._telegram_update(next(self.update_ids), chat, step, received)
            turn = Turn("telegram", str(chat), flow.name, flow.kind, shown, str(update["update_id"]),
                        time.monotonic(), time.time(), index=len(received))
            self.turns.append(turn)
            resp = await self._retrying(lambda u=update: client.post("/webhooks/telegram", json=u, headers=headers),
                                        turn)
            if resp is None or resp.status_code != 200:
                if resp is not None:
                    turn.error = f"HTTP {resp.status_code}"
                return
            turn.acked, turn.error = True, None
            deadline = turn.sent + REPLY_TIMEOUT
            while len(self.telegram.sent(chat)) <= turn.index:
                if time.monotonic() > deadline:
                    return  # no answer: this citizen stops (accounting finds out whether it came later)
                await asyncio.sleep(0.01)
            if not await self._wait_turn(n + 1, load, started, time.monotonic(), phase):
                return

    @staticmethod
    def _telegram_update(update_id: int, chat: int, step: Step, received: list[Call]) -> tuple[dict[str, Any], str]:
        if isinstance(step, Share):
            return location_update(update_id, chat, step.lat, step.lon), "📍"
        if isinstance(step, Press):
            with_buttons = [c for c in received if c.buttons]
            if with_buttons:
                last = with_buttons[-1]
                title = choose_button([b["text"] for b in last.buttons], step)
                if title is not None:
                    return callback_update(update_id, chat, last, title), f"[{title}]"
            return text_update(update_id, chat, step.fallback), step.fallback
        assert isinstance(step, Say)
        return text_update(update_id, chat, step.text), step.text


def attribute_telegram(turns: list[Turn], telegram: Telegram) -> None:
    """Give each Telegram turn the replies its chat received between it and the chat's next turn."""
    by_chat: dict[str, list[Turn]] = {}
    for turn in turns:
        if turn.channel == "telegram":
            by_chat.setdefault(turn.chat, []).append(turn)
    for chat, chat_turns in by_chat.items():
        calls = telegram.sent(int(chat))
        for k, turn in enumerate(chat_turns):
            end = chat_turns[k + 1].index if k + 1 < len(chat_turns) else len(calls)
            mine = calls[turn.index:end]
            turn.replies = len(mine)
            turn.texts = [c.text or "" for c in mine]
            turn.first = mine[0].at if mine else None
            turn.last = mine[-1].at if mine else None
            turn.unavailable = any(UNAVAILABLE in t for t in turn.texts)
