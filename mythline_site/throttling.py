"""Per-sender rate limits with GCRA (the generic cell rate algorithm).

One cache key per (scope, user) holding a single float, the "theoretical arrival time": cheap to
read and write, smooth (no window edges), with a burst allowance. Limits are settings
(MYTHLINE_RATES); over the limit the API answers 429 `rate_limited` with `Retry-After`.
"""
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from mythline_site.errors import RateLimited

_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(rate: str) -> float:
    """'10/s' -> seconds between two requests at the steady rate."""
    count, _, period = rate.partition("/")
    seconds = _PERIODS[period.strip()[:1].lower()] if period else 1.0
    return seconds / float(count)


def check_rate(scope: str, key: str, *, now: float | None = None) -> None:
    """Consume one unit of `scope` for `key`, or raise RateLimited with the delay to wait."""
    rate, burst = settings.MYTHLINE_RATES[scope]
    interval = parse_rate(rate)
    now = time.time() if now is None else now
    cache_key = f"{settings.MYTHLINE_RATE_KEY_PREFIX}:{scope}:{key}"
    tat = max(cache.get(cache_key) or now, now)
    allowance = interval * burst
    if tat - now > allowance:
        raise RateLimited(retry_after=tat - now - allowance + interval)
    cache.set(cache_key, tat + interval, timeout=int(allowance + interval) + 1)


class TokenBucket:
    """A local limit for one connection (frames per socket, typing per topic): a steady rate plus
    a burst, kept in memory (nothing to share between processes)."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> float:
        """0 when one more may pass (and counts it); else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class SenderRateThrottle(BaseThrottle):
    """DRF throttle: reads and writes are limited per authenticated sender (or per IP if anonymous)."""

    def allow_request(self, request, view):
        scope = getattr(view, "throttle_scope", None) or ("read" if request.method in ("GET", "HEAD", "OPTIONS") else "write")
        user = request.user
        key = f"u{user.pk}" if user and user.is_authenticated else f"ip{self.get_ident(request)}"
        check_rate(scope, key)
        return True
