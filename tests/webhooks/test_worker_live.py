"""`manage.py run_webhooks` as a process on the test database, a receiver started by the test: a
message posted to an agent's inbox reaches the receiver signed (after a 500, retried), the log
says delivered, and SIGTERM stops the worker cleanly. On PostgreSQL, two workers' claims skip
each other's rows."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from tests import live
from tests.webhooks.conftest import post, register, verify
from webhooks.models import Delivery
from webhooks.worker import claim


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_the_worker_process_delivers_a_posted_inbox_message(world, receiver, tmp_path):
    hook = register(world["scout_api"], receiver.url)
    receiver.script = [500]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mythline_site.settings", "DATABASE_URL": live.test_database_url(),
           "SECRET_KEY": settings.SECRET_KEY, "PYTHONUNBUFFERED": "1", "DEBUG": "0",
           "MYTHLINE_WEBHOOK_ALLOW_INSECURE": "1", "MYTHLINE_WEBHOOK_ALLOW_PRIVATE": "1",
           "MYTHLINE_WEBHOOK_BACKOFF_SECONDS": "0.2", "MYTHLINE_WEBHOOK_POLL_SECONDS": "0.1"}
    env.pop("REDIS_URL", None)
    log = tmp_path / "worker.log"
    proc = subprocess.Popen([sys.executable, "manage.py", "run_webhooks"], cwd=live.ROOT, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        message = post(world["alice"], "inbox.scout", "Wake up: the lamp is out.")
        try:
            first, second = receiver.wait_for(2)
        except AssertionError:
            raise AssertionError(f"worker log:\n{log.read_text()[-3000:]}") from None
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(message.pk)
        assert verify(hook["secret"], second.headers, second.body)
        assert second.json["data"]["message"]["payload"] == {"text": "Wake up: the lamp is out."}
        deadline = time.monotonic() + 15
        while Delivery.objects.get().status != "delivered":
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        d = Delivery.objects.get()
        assert (d.attempts, d.last_status_code) == (2, 200)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()
        assert "stopped" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@pytest.mark.django_db(transaction=True)
def test_postgres_workers_skip_what_another_is_claiming(world, receiver):
    """While one worker's claim holds its rows, another's claim skips them at once (no waiting,
    no double send)."""
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite serializes write transactions (one worker)")
    register(world["scout_api"], receiver.url)
    post(world["alice"], "inbox.scout", "One of two.")
    post(world["alice"], "inbox.scout", "Two of two.")
    first = Delivery.objects.order_by("id").first()
    holding, release = threading.Event(), threading.Event()

    def other_worker():
        try:
            with transaction.atomic():
                list(Delivery.objects.select_for_update().filter(pk=first.pk))
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    t = threading.Thread(target=other_worker)
    t.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        taken = claim(timezone.now(), 10)
        assert time.monotonic() - started < 5
        assert [d.pk for d in taken] == [Delivery.objects.exclude(pk=first.pk).get().pk]
    finally:
        release.set()
        t.join(10)
