"""Per-sender rate limits with GCRA (the generic cell rate algorithm).

One cache key per (scope, user) holding a single float, the "theoretical arrival time": cheap to
read and write, smooth (no window edges), with a burst allowance. Limits are settings
(MYTHLINE_RATES); over the limit the API answers 429 `rate_limited` with `Retry-After`.
"""
import threading
import time

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import BaseThrottle

from mythline_site.errors import RateLimited

_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(rate: str) -> float:
    """'10/s' -> seconds between two requests at the steady rate."""
    count, _, period = rate.partition("/")
    seconds = _PERIODS[period.strip()[:1].lower()] if period else 1.0
    return seconds / float(count)


def check_rate(scope: str, key: str, *, now: float | None = None, cost: int = 1) -> None:
    """Consume `cost` units of `scope` for `key`, or raise RateLimited with the delay to wait.

    A request is let through when one unit is free, whatever its cost (a batch larger than the
    burst can pass); its cost then counts against what follows, as that many single requests would.
    The read and the write of the key are one step (`_take`): requests racing each other, in one
    process or many, are each counted."""
    rate, burst = settings.MYTHLINE_RATES[scope]
    interval = parse_rate(rate)
    now = time.time() if now is None else now
    wait = _take(f"{settings.MYTHLINE_RATE_KEY_PREFIX}:{scope}:{key}", now=now, interval=interval,
                 allowance=interval * burst, cost=cost)
    if wait > 0:
        raise RateLimited(retry_after=wait)


# GCRA in one Redis step: KEYS[1] holds the theoretical arrival time (a plain number); ARGV: now,
# interval, allowance, cost. Answers 0 (taken) or the seconds to wait, as text (Redis would cut a
# Lua number to an integer).
_GCRA_SCRIPT = """
local now, interval, allowance, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
if tat - now > allowance then return tostring(tat - now - allowance + interval) end
local new = tat + interval * cost
redis.call('SET', KEYS[1], string.format('%.6f', new), 'PX', math.ceil((new - now) * 1000) + 1000)
return '0'
"""
_local_lock = threading.Lock()


def _take(cache_key: str, *, now: float, interval: float, allowance: float, cost: int) -> float:
    """One GCRA step on `cache_key`: 0 when the units were taken, else the seconds to wait."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        key = backend.make_and_validate_key(cache_key)
        client = backend._cache.get_client(key, write=True)
        return float(client.eval(_GCRA_SCRIPT, 1, key, repr(now), repr(interval), repr(allowance), cost))
    with _local_lock:  # the in-process cache: one process, whose threads take turns here
        tat = max(cache.get(cache_key) or now, now)
        if tat - now > allowance:
            return tat - now - allowance + interval
        cache.set(cache_key, tat + interval * cost, timeout=int(tat - now + interval * cost) + 1)
        return 0.0


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


class WindowCounter:
    """At most `limit` events per key within a window of `window` seconds that opens at the key's
    first event (sign-in failures, sign-ups: accounts/limits.py). Counted with the cache's atomic
    add and incr (Redis SET NX and INCR), so parallel requests cannot slip past the limit, under the
    same MYTHLINE_RATE_KEY_PREFIX as check_rate. Events while over the limit do not move the
    window: whatever happens, it ends `window` seconds after it opened."""

    def __init__(self, scope: str, limit: int, window: int):
        self.scope, self.limit, self.window = scope, int(limit), max(1, int(window))

    def _keys(self, key: str) -> tuple[str, str]:
        base = f"{settings.MYTHLINE_RATE_KEY_PREFIX}:{self.scope}:{key}"
        return f"{base}:n", f"{base}:t"

    def _wait(self, opened: float | None, now: float) -> float:
        """Seconds until the window that opened at `opened` ends (at least 1)."""
        if opened is None:  # the start stamp expired a moment before the count: nearly over
            return 1.0
        return max(1.0, opened + self.window - now)

    def retry_after(self, key: str, *, now: float | None = None) -> float:
        """0 while `key` is under its limit, else the seconds until its window ends."""
        if self.limit <= 0:
            return 0.0
        count_key, opened_key = self._keys(key)
        values = cache.get_many([count_key, opened_key])
        if (values.get(count_key) or 0) < self.limit:
            return 0.0
        return self._wait(values.get(opened_key), time.time() if now is None else now)

    def hit(self, key: str, *, now: float | None = None) -> float:
        """Count one event for `key`: 0 if it is within the limit, else the seconds to wait."""
        if self.limit <= 0:
            return 0.0
        now = time.time() if now is None else now
        count_key, opened_key = self._keys(key)
        for _ in range(3):
            cache.add(opened_key, now, timeout=self.window)
            cache.add(count_key, 0, timeout=self.window)
            try:
                count = cache.incr(count_key)
                break
            except ValueError:  # expired between add and incr: open a new window
                continue
        else:
            return 0.0
        if count <= self.limit:
            return 0.0
        return self._wait(cache.get(opened_key), now)

    def refund(self, key: str) -> None:
        """Take back one event counted in advance (a sign-in that turned out to succeed)."""
        if self.limit <= 0:
            return
        try:
            cache.decr(self._keys(key)[0])
        except ValueError:  # the window has ended meanwhile: nothing to take back
            pass
