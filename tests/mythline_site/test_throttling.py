"""The rate limits' GCRA step (mythline_site/throttling.py) on the configured cache: the in-process
cache here, Redis when REDIS_URL is set (CI's second pass), where the step is one Lua script."""
import threading
import uuid

import pytest

from mythline_site.errors import RateLimited
from mythline_site.throttling import check_rate

NOW = 1_800_000_000.0


@pytest.fixture
def one_a_minute(settings):
    settings.MYTHLINE_RATES = {**settings.MYTHLINE_RATES, "post": ("1/m", 3)}  # four at once, then one a minute
    return f"u-{uuid.uuid4().hex}"


def test_requests_racing_each_other_are_each_counted(one_a_minute):
    """Sixteen threads at the same instant: the burst admits exactly four, whoever wins the races."""
    n = 16
    barrier, outcomes = threading.Barrier(n, timeout=10), []

    def take():
        barrier.wait()
        try:
            check_rate("post", one_a_minute, now=NOW)
            outcomes.append("ok")
        except RateLimited:
            outcomes.append("limited")

    threads = [threading.Thread(target=take) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(outcomes) == ["limited"] * 12 + ["ok"] * 4


def test_a_costly_request_passes_when_one_unit_is_free_and_what_follows_waits_for_it(one_a_minute):
    check_rate("post", one_a_minute, now=NOW, cost=10)  # a batch of ten: one unit was free
    with pytest.raises(RateLimited) as limited:
        check_rate("post", one_a_minute, now=NOW + 1)
    # Ten units are 600 s ahead; the burst allows 180 of them: 420 s left, plus one interval.
    assert limited.value.retry_after == pytest.approx(600 - 1 - 180 + 60, abs=0.01)
    check_rate("post", one_a_minute, now=NOW + 420)  # one unit is free again
