"""Presence tests start from an empty presence store.

The store is a process-wide singleton (`get_presence_store` is cached): without a reset, entries
left by one test (say, of a socket a failing test never closed) would show up in the next test's
room, whose database id may well be the same. With REDIS_URL set, the Redis store gets a key
prefix of its own per test, and its keys are deleted afterwards.
"""
import uuid

import pytest

from presence.store import get_presence_store


@pytest.fixture(autouse=True)
def _fresh_presence_store(settings):
    prefix = None
    if settings.REDIS_URLS:
        prefix = f"mythline-test-{uuid.uuid4().hex[:12]}"
        settings.MYTHLINE_REDIS_PREFIX = prefix
    get_presence_store.cache_clear()
    yield
    get_presence_store.cache_clear()
    if prefix:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URLS[0])
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
