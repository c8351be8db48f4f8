"""A circuit breaker: after repeated failures, stop calling a sick upstream for a while."""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    """Closed → (``failures`` consecutive failures) → open for ``reset_after`` s → half-open: one trial call.

    A success closes it; a failed trial opens it again. State is per process, which is enough to spare the
    upstream and the citizens' time; each action-server replica learns on its own.
    """

    def __init__(self, failures: int, reset_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = max(1, failures)
        self.reset_after = reset_after
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.reset_after else "open"

    def allow(self) -> bool:
        """Whether a call may go out now."""
        return self.state != "open"

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failure(self) -> None:
        self.failures += 1
        if self.state == "half-open" or self.failures >= self.threshold:
            self.opened_at = self.clock()
