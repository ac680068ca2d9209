"""One crew worker at a time: the lease (writers.services.lease_acquire)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from writers.models import WorkerLease
from writers.services import lease_acquire, lease_release

pytestmark = pytest.mark.django_db


def test_one_worker_holds_the_lease_until_it_lets_go_or_stops_renewing():
    assert lease_acquire(holder="a") is True
    assert lease_acquire(holder="b") is False  # a holds it
    assert lease_acquire(holder="a") is True  # renewed
    WorkerLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))  # a stopped renewing
    assert lease_acquire(holder="b") is True and lease_acquire(holder="a") is False
    lease_release(holder="a")  # not a's to release
    assert WorkerLease.objects.get().holder == "b"
    lease_release(holder="b")
    assert lease_acquire(holder="a") is True
