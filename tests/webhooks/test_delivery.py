"""Deliveries against a real HTTP receiver started by the test (tests/webhooks/conftest.py): signed
bodies, retries after 500s with a growing backoff (time driven by `now`, nothing sleeps), the same
webhook-id on every attempt, nothing for a message the agent may not read, disabled after repeated
failures with a notice, re-enabled by a PUT."""
import json
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from messaging.policies import access_channel
from messaging.services import message_post
from mythline_sdk.webhooks import verify as sdk_verify
from notifications.models import Notification
from stories.services import participant_remove
from tests.webhooks.conftest import post, register, verify
from webhooks.models import Delivery, Webhook
from webhooks.worker import deliver_due

INBOX = "inbox.scout"


def test_a_message_in_the_inbox_is_delivered_signed(world, receiver):
    hook = register(world["scout_api"], receiver.url)
    message = post(world["alice"], INBOX, "Find the lighthouse keeper.")
    assert receiver.requests == []  # enqueued by the post, sent only by the worker
    before = int(time.time())
    [attempt] = deliver_due()
    assert attempt.ok
    [got] = receiver.requests
    assert got.path == "/hooks/mythline"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == str(message.pk)
    assert before <= int(got.headers["webhook-timestamp"]) <= int(time.time())
    assert verify(hook["secret"], got.headers, got.body)
    assert not verify(hook["secret"], got.headers, got.body + b" ")  # the check is a real one
    assert sdk_verify(hook["secret"], got.headers, got.body)["data"]["message"]["id"] == str(message.pk)  # the SDK's
    body = got.json
    assert body["type"] == "message.created" and body["timestamp"] == body["data"]["message"]["created_at"]
    assert body["data"]["story"] == "tale" and body["data"]["channel"] == INBOX
    sent = body["data"]["message"]
    assert (sent["id"], sent["seq"], sent["payload"], sent["sender"]["username"]) == (
        str(message.pk), message.seq, {"text": "Find the lighthouse keeper."}, "alice")
    # As a read shows it (the REST read of the same message, by the agent).
    read = world["scout_api"].get(f"/api/messages/{message.pk}").json()
    assert {k: v for k, v in read.items() if k in sent} == sent
    d = Delivery.objects.get()
    assert (d.status, d.attempts, d.last_status_code) == ("delivered", 1, 200) and d.delivered_at
    assert deliver_due() == []  # nothing more to do


def test_retries_after_500s_with_growing_backoff_and_the_same_id(world, receiver, settings):
    settings.MYTHLINE_WEBHOOK_BACKOFF_SECONDS = 10
    hook = register(world["scout_api"], receiver.url)
    message = post(world["alice"], INBOX, "Answer when you can.")
    receiver.script = [500, 500, 503]
    now = timezone.now()
    delays = []
    for _ in range(3):
        [attempt] = deliver_due(now=now)
        assert not attempt.ok and attempt.status_code in (500, 503)
        d = Delivery.objects.get()
        assert d.status == "failed" and d.last_error.startswith(f"HTTP {attempt.status_code}")
        delays.append((d.next_attempt_at - now).total_seconds())
        assert deliver_due(now=now + timedelta(seconds=delays[-1] - 1)) == []  # not due before its time
        now = d.next_attempt_at
    assert delays[0] < delays[1] < delays[2]  # exponential: ~10, ~20, ~40 s (+-20% jitter)
    assert 8 <= delays[0] <= 12 and 32 <= delays[2] <= 48
    [attempt] = deliver_due(now=now)
    assert attempt.ok
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert len(receiver.requests) == 4 and ids == {str(message.pk)}  # the receiver dedups on it
    assert all(verify(hook["secret"], r.headers, r.body) for r in receiver.requests)
    assert len({r.body for r in receiver.requests}) == 1  # the same body every time
    d = Delivery.objects.get()
    assert (d.status, d.attempts, d.last_status_code) == ("delivered", 4, 200)
    assert Webhook.objects.get().failures == 0  # a success forgets the failures


def test_a_delivery_is_dead_after_the_last_attempt(world, receiver, settings):
    settings.MYTHLINE_WEBHOOK_MAX_ATTEMPTS = 3
    register(world["scout_api"], receiver.url)
    post(world["alice"], INBOX, "Nobody home.")
    receiver.script = [500] * 5
    now = timezone.now()
    for _ in range(3):
        deliver_due(now=now)
        now += timedelta(hours=2)
    d = Delivery.objects.get()
    assert (d.status, d.attempts) == ("dead", 3)
    assert deliver_due(now=now + timedelta(days=1)) == [] and len(receiver.requests) == 3


def test_nothing_for_what_the_agent_may_not_read(world, receiver):
    register(world["scout_api"], receiver.url)
    alice, scout = world["alice"], world["scout"]
    post(alice, INBOX, "Only for people.", audience="humans")  # the audience leaves the agent out
    post(alice, INBOX, "For bob only.", audience=["bob"])
    post(alice, "general", "A public line.")  # not an inbox
    post(scout, INBOX, "A note to myself.")  # the agent's own post
    assert Delivery.objects.count() == 0
    post(alice, INBOX, "For agents.", audience="agents")
    post(alice, INBOX, "For scout.", audience=["scout"])
    deliver_due()
    # (sent in parallel: no order between them; the receiver orders by the message's seq)
    assert sorted(r.json["data"]["message"]["payload"]["text"] for r in receiver.requests) == ["For agents.", "For scout."]


def test_no_longer_readable_when_sent_is_not_sent(world, receiver, make_user, make_story):
    """A private story the agent leaves after the post: checked again at send time."""
    owner = make_user("olga")
    story = make_story(owner, slug="hush", visibility="private", editors=[world["scout"]])
    register(world["scout_api"], receiver.url)
    post(owner, INBOX, "A secret.", story="hush")
    assert Delivery.objects.count() == 1
    participant_remove(story=story, user=world["scout"])
    assert deliver_due() == []
    assert receiver.requests == []
    d = Delivery.objects.get()
    assert d.status == "dead" and "may no longer read" in d.last_error


def test_a_message_deleted_before_it_is_sent_is_not_sent(world, receiver):
    """A deletion wins over a delivery still waiting: the text is not sent and its stored body is
    emptied; the deletion itself (a message of the inbox too) is what the agent gets."""
    register(world["scout_api"], receiver.url)
    first = post(world["alice"], INBOX, "Forget I said the code is 4711.")
    access = access_channel(world["alice"], "tale", INBOX, for_write=True)
    message_post(sender=world["alice"], access=access,
                 data={"msg_type": "delete", "payload": {}, "relates_to": str(first.pk)})
    deliver_due()
    [sent] = receiver.requests
    assert sent.json["data"]["message"]["msg_type"] == "delete"
    assert "4711" not in sent.body.decode()
    dead = Delivery.objects.get(message_id=first.pk)
    assert dead.status == "dead" and "deleted" in dead.last_error and dead.body == ""


def test_disabled_after_repeated_failures_with_a_notice_then_re_enabled(world, receiver, settings):
    settings.MYTHLINE_WEBHOOK_DISABLE_AFTER_FAILURES = 4
    settings.MYTHLINE_WEBHOOK_DISABLE_AFTER_SECONDS = 60
    client = world["scout_api"]
    register(client, receiver.url)
    receiver.script = [500] * 10
    for i in range(5):
        post(world["alice"], INBOX, f"Message {i} to a broken endpoint.")
    now = timezone.now()
    assert len(deliver_due(now=now)) == 5  # 5 failures in a row, all within a second: not yet disabled (a burst)
    assert Webhook.objects.get().status == "active"
    later = now + timedelta(minutes=5)
    deliver_due(now=later)  # the streak is now minutes old: disabled
    webhook = Webhook.objects.get()
    assert webhook.status == "disabled" and webhook.failures >= 6
    assert "failed deliveries in a row" in webhook.disabled_reason and "HTTP 500" in webhook.disabled_reason
    [notice] = Notification.objects.filter(user=world["scout"], kind="webhook.disabled")
    assert "HTTP 500" in notice.excerpt
    got = client.get("/api/agents/me/webhook").json()
    assert (got["status"], got["disabled_reason"]) == ("disabled", webhook.disabled_reason)

    # Disabled: nothing is sent, nothing new is enqueued.
    sent = len(receiver.requests)
    post(world["alice"], INBOX, "While disabled.")
    assert deliver_due(now=later + timedelta(days=1)) == [] and len(receiver.requests) == sent
    assert Delivery.objects.count() == 5

    # PUT again: active, failures forgotten, what waited is tried at once.
    receiver.script = []
    again = client.put("/api/agents/me/webhook", {"url": receiver.url}, format="json")
    assert again.status_code == 200 and "secret" not in again.json()
    assert (again.json()["status"], again.json()["failures"], again.json()["disabled_reason"]) == ("active", 0, None)
    done = deliver_due()
    assert len(done) == 5 and all(a.ok for a in done)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}
    assert Notification.objects.filter(kind="webhook.disabled").count() == 1


def test_the_admin_shows_the_log_read_only_and_re_enables(world, receiver, settings, client, django_user_model):
    settings.MYTHLINE_WEBHOOK_DISABLE_AFTER_FAILURES = 1
    settings.MYTHLINE_WEBHOOK_DISABLE_AFTER_SECONDS = 0
    register(world["scout_api"], receiver.url)
    receiver.script = [500]
    post(world["alice"], INBOX, "Fails once.")
    deliver_due()
    webhook = Webhook.objects.get()
    assert webhook.status == "disabled"
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    client.force_login(boss)
    for url in ("/admin/webhooks/webhook/", f"/admin/webhooks/webhook/{webhook.pk}/change/",
                "/admin/webhooks/delivery/", "/admin/webhooks/delivery/?status__exact=failed",
                f"/admin/webhooks/delivery/{Delivery.objects.get().pk}/change/"):
        r = client.get(url)
        assert r.status_code == 200, url
        assert webhook.secret not in r.content.decode()  # the secret never reaches a page
    r = client.post("/admin/webhooks/webhook/", {"action": "re_enable", "_selected_action": [webhook.pk]})
    assert r.status_code == 302
    webhook.refresh_from_db()
    assert (webhook.status, webhook.failures, webhook.disabled_reason) == ("active", 0, "")
    assert client.get("/admin/webhooks/delivery/add/").status_code == 403  # the log is read-only
    [attempt] = deliver_due()
    assert attempt.ok


def test_enqueue_is_once_per_message(world, receiver):
    from webhooks.services import on_posted

    register(world["scout_api"], receiver.url)
    message = post(world["alice"], INBOX, "Once.")
    on_posted(message, message.channel)  # a second enqueue of the same message: nothing new
    assert Delivery.objects.count() == 1


def test_a_redirect_is_not_followed(world, receiver):
    register(world["scout_api"], receiver.url)
    post(world["alice"], INBOX, "Go elsewhere?")
    receiver.script = [302]
    [attempt] = deliver_due()
    assert not attempt.ok and "redirects are not followed" in attempt.error
    assert len(receiver.requests) == 1


def test_private_addresses_are_refused_when_sent(world, receiver, settings):
    """Registered while allowed, then the setting is off: the check at send time refuses
    (a name that resolves elsewhere later is caught the same way: DNS rebinding)."""
    register(world["scout_api"], f"http://localhost:{receiver.port}/hooks/mythline")
    post(world["alice"], INBOX, "To localhost.")
    settings.MYTHLINE_WEBHOOK_ALLOW_PRIVATE = False
    [attempt] = deliver_due()
    assert not attempt.ok and attempt.error.startswith("refused:") and "loopback" in attempt.error
    assert receiver.requests == []
    settings.MYTHLINE_WEBHOOK_ALLOW_PRIVATE = True
    [attempt] = deliver_due(now=timezone.now() + timedelta(hours=1))
    assert attempt.ok
    [got] = receiver.requests
    assert got.headers["host"] == f"localhost:{receiver.port}"  # sent to the checked address, named as registered


def test_a_mention_copy_in_the_inbox_is_delivered(world, receiver):
    """The notifications app stores a mention copy in a mentioned agent's inbox: it is delivered too."""
    register(world["scout_api"], receiver.url)
    post(world["bob"], "general", "@scout what do you see?")
    deliver_due()
    kinds = [r.json["data"]["message"]["msg_type"] for r in receiver.requests]
    assert kinds == ["mention"], kinds
    assert json.loads(receiver.requests[0].body)["data"]["channel"] == INBOX


def test_an_inbox_post_without_a_webhook_costs_one_query_and_others_none(world):
    """Posts are the hot path: the hook costs nothing outside inboxes, one indexed query in one."""
    from webhooks.services import on_posted

    message = post(world["alice"], INBOX, "No webhook here.")
    with CaptureQueriesContext(connection) as ctx:
        on_posted(message, message.channel)
    assert len(ctx) == 1
    general = post(world["alice"], "general", "Not an inbox.")
    with CaptureQueriesContext(connection) as ctx:
        on_posted(general, general.channel)
    assert len(ctx) == 0


def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_ends(world, receiver, settings):
    """Two workers never take the same delivery at once (PostgreSQL: SKIP LOCKED while claiming; then
    the claim's lease); a worker that died mid-attempt leaves it to be taken again (at least once)."""
    from webhooks.worker import claim

    register(world["scout_api"], receiver.url)
    post(world["alice"], INBOX, "Claimed once.")
    now = timezone.now()
    [taken] = claim(now, 10)
    assert taken.attempts == 1
    assert claim(now, 10) == []  # another worker, meanwhile: nothing
    lease = settings.MYTHLINE_WEBHOOK_TIMEOUT_SECONDS * 3 + 60
    assert claim(now + timedelta(seconds=lease - 1), 10) == []
    [again] = claim(now + timedelta(seconds=lease + 1), 10)  # the first worker died: taken again
    assert again.pk == taken.pk and again.attempts == 2


def _tls_receiver(receiver, tmp_path):
    """Turn the receiver into an HTTPS one with a certificate for `localhost` only; answer the
    CA bundle to trust it and the list of SNI names the server was asked for."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    names = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    return str(cert), names


def test_https_goes_to_the_checked_address_with_the_name_in_sni_and_the_certificate_check(
        world, receiver, settings, tmp_path):
    settings.MYTHLINE_WEBHOOK_CA_BUNDLE, names = _tls_receiver(receiver, tmp_path)
    register(world["scout_api"], f"https://localhost:{receiver.port}/hooks/mythline")
    post(world["alice"], INBOX, "Over TLS.")
    [attempt] = deliver_due()
    assert attempt.ok, attempt.error
    [got] = receiver.requests
    assert got.headers["host"] == f"localhost:{receiver.port}" and names == ["localhost"]
    # The same receiver by address: its certificate does not name 127.0.0.1, and the check is on.
    register(world["scout_api"], f"https://127.0.0.1:{receiver.port}/hooks/mythline")
    post(world["alice"], INBOX, "Over TLS, by address.")
    [attempt] = deliver_due()
    assert not attempt.ok and "certificate" in attempt.error.lower(), attempt.error
    assert len(receiver.requests) == 1


def test_a_receiver_that_never_answers_times_out(world, settings):
    import socket

    settings.MYTHLINE_WEBHOOK_TIMEOUT_SECONDS = 0.3
    with socket.socket() as silent:  # listens, never answers (the kernel accepts the connection)
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        register(world["scout_api"], f"http://127.0.0.1:{silent.getsockname()[1]}/hook")
        post(world["alice"], INBOX, "Anyone?")
        started = time.monotonic()
        [attempt] = deliver_due()
        assert time.monotonic() - started < 5
    assert not attempt.ok and attempt.error == "timed out after 0.3 s"
    d = Delivery.objects.get()
    assert (d.status, d.last_status_code, d.last_error) == ("failed", None, "timed out after 0.3 s")


def test_finished_deliveries_are_pruned_after_the_keep_days(world, receiver, settings):
    from webhooks.worker import prune

    settings.MYTHLINE_WEBHOOK_KEEP_DAYS = 7
    register(world["scout_api"], receiver.url)
    post(world["alice"], INBOX, "Delivered long ago.")
    deliver_due()
    receiver.script = [500]
    post(world["alice"], INBOX, "Still waiting.")
    deliver_due()
    assert prune(timezone.now() + timedelta(days=6)) == 0
    assert prune(timezone.now() + timedelta(days=8)) == 1  # the delivered one; the failed one waits on
    assert list(Delivery.objects.values_list("status", flat=True)) == ["failed"]
    settings.MYTHLINE_WEBHOOK_KEEP_DAYS = 0
    assert prune(timezone.now() + timedelta(days=800)) == 0
