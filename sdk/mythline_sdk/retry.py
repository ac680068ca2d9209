"""Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff and Jitter").

Attempt n (0-based) waits a random time in [0, min(cap, base * 2**n)]: clients that failed
together spread out instead of coming back in lockstep. A server's `Retry-After` is a floor: the
client waits at least that long, plus a little jitter.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.2           # seconds: the first ceiling
    cap: float = 10.0           # no single wait longer than this (unless Retry-After says so)
    max_attempts: int | None = 8  # tries in all, the first included; None = forever
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try number `attempt + 1` (attempt 0 failed: first retry)."""
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 30)))
        wait = self.rng.uniform(0, ceiling)
        if retry_after is not None:
            # Honour the server: never earlier than it asked; a little jitter spreads a crowd.
            return retry_after + self.rng.uniform(0, min(self.base, ceiling))
        return wait

    def gives_up_after(self, attempt: int) -> bool:
        """True when try number `attempt + 1` was the last one allowed."""
        return self.max_attempts is not None and attempt + 1 >= self.max_attempts
