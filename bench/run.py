"""Steps of the benchmark: one load through one channel, then drain, account and measure."""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass, field

from bench.accounting import Tally, account_telegram, account_webchat, conversation_keys, drain, stage_times
from bench.load import Crowd, Load, Turn, attribute_telegram
from bench.stack import CpuMeter, Stack, Telegram

CLOCK_OFFSET = time.time() - time.monotonic()
CHAT_BASES = itertools.count(700_000_000, 10_000)  # Telegram chat ids: fresh per step
UPDATE_IDS = itertools.count(int(time.time()) % 100_000 * 10_000)  # Telegram update ids: fresh per run


@dataclass
class StepResult:
    name: str
    channel: str
    replicas: int
    load: Load
    turns: list[Turn]
    tally: Tally
    seconds: float  # from the first message to the last answer of the messages sent in the window
    drain: float
    cpu: dict[str, float] = field(default_factory=dict)
    stages: dict[str, list[float]] = field(default_factory=dict)

    @property
    def answered(self) -> list[Turn]:
        return [t for t in self.turns if t.latency is not None]

    @property
    def rate(self) -> float:
        return len(self.answered) / self.seconds if self.seconds > 0 else 0.0

    @property
    def kept_rate(self) -> float:
        """Messages answered per second of sending: the rate the stack kept up with while the load ran.

        ``rate`` also counts the time until the last answer came back, so a step offering 30/s for 30 s shows
        29.9 msg/s even when every answer was quick. A citizen of a paced step waits for the previous answer before
        the next message, so a stack that falls behind stretches the sending time and lowers this rate too."""
        sent = sorted(t.sent for t in self.turns)
        if len(sent) < 2 or sent[-1] <= sent[0]:
            return self.rate
        span = (sent[-1] - sent[0]) * len(sent) / (len(sent) - 1)  # n sends, evenly spaced, cover n intervals
        return len(self.answered) / span

    def latency(self, q: float, last: bool = False) -> float | None:
        values = sorted((t.latency_last if last else t.latency) or 0.0 for t in self.answered)
        return percentile(values, q)

    @property
    def mode(self) -> str:
        if self.load.pace is not None:
            return f"paced {self.load.citizens / self.load.pace:.0f}/s"
        return f"closed, think {self.load.think:g} s"


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) of sorted ``values``, nearest rank."""
    if not values:
        return None
    rank = max(1, min(len(values), round(q / 100 * len(values) + 0.5)))
    return values[rank - 1]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


async def step(stack: Stack, telegram: Telegram, channel: str, load: Load, name: str) -> StepResult:
    """Run ``load`` through ``channel``, wait for the stack to finish, count and measure."""
    label = f"{name}-{int(time.time() * 1000) % 10**9}"
    crowd = Crowd(stack.url, telegram, label, next(CHAT_BASES), UPDATE_IDS)
    meter = CpuMeter(stack)
    meter.begin()
    started = time.monotonic()
    turns = await crowd.run(channel, load)
    keys = conversation_keys(turns, stack.engine)
    waited = await drain(stack.engine, keys)
    cpu = meter.end()
    if channel == "telegram":
        attribute_telegram(turns, telegram)
        tally = account_telegram(turns, stack.engine, telegram)
    else:
        tally = account_webchat(turns, stack.engine)
    answered = [t for t in turns if t.first is not None]
    seconds = (max(t.first for t in answered if t.first is not None) - started) if answered else load.seconds
    result = StepResult(name, channel, stack.replicas, load, turns, tally, seconds, waited, cpu)
    result.stages = stage_times(turns, stack.engine, CLOCK_OFFSET)
    return result
