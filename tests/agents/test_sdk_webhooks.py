"""The SDK's webhook helpers against a live server, and `verify` on real deliveries (issue 17).

An agent registers a webhook with `set_webhook` (the secret comes back once), a message routed to
its inbox is sent by the webhook worker (`deliver_due`, run here in the test's process on the
same database) to an HTTP receiver started by the test, which checks it with
`mythline_sdk.webhooks.verify`; `webhook_deliveries` shows it delivered; after
`rotate_webhook_secret` the old secret still verifies for the grace, and not after a rotation
without one; `delete_webhook` removes it; a human
is refused.
"""

import pytest

from accounts.services import token_issue
from mythline_sdk import Forbidden, InvalidRequest, MythlineClient, Webhook, WebhookDelivery
from mythline_sdk.webhooks import WebhookVerificationError, verify
from tests.live import LiveServer
from tests.webhooks.conftest import Receiver
from webhooks.worker import deliver_due

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]
ALLOW = {"MYTHLINE_WEBHOOK_ALLOW_INSECURE": "1", "MYTHLINE_WEBHOOK_ALLOW_PRIVATE": "1"}


@pytest.fixture(scope="module")
def server(django_db_setup):
    with LiveServer(env={"MYTHLINE_LOOP_WINDOW_SECONDS": "0", **ALLOW}) as live:  # stopped, its log removed, after the module
        yield live


@pytest.fixture
def receiver(settings):
    # The worker runs in this process: let it send to 127.0.0.1 over http, as the server allows.
    settings.MYTHLINE_WEBHOOK_ALLOW_INSECURE = settings.MYTHLINE_WEBHOOK_ALLOW_PRIVATE = True
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def tale(make_user, make_story, make_agent):
    alice = make_user("alice")
    story = make_story(alice, slug="tale")
    echo = make_agent("echo", capabilities=["query"], stories=[story])
    return {"alice": token_issue(user=alice), "echo": token_issue(user=echo)}


def test_register_receive_verify_rotate_and_remove(server, tale, receiver):
    with MythlineClient(server.base, tale["echo"]) as echo, MythlineClient(server.base, tale["alice"]) as alice:
        assert echo.webhook() is None
        hook = echo.set_webhook(receiver.url)
        assert isinstance(hook, Webhook) and hook.created and hook.status == "active"
        assert hook.url == receiver.url and hook.secret.startswith("whsec_")
        assert hook.secret not in repr(hook)  # a Webhook printed or logged never shows its secret
        assert echo.webhook().secret is None  # shown once
        changed = echo.set_webhook(receiver.url + "?v=2")
        assert changed.created is False and changed.secret is None and changed.url.endswith("?v=2")

        routed = alice.route("tale", "query", {"text": "Who keeps the lamp?"})
        [attempt] = deliver_due()
        assert attempt.ok
        [got] = receiver.requests
        event = verify(hook.secret, got.headers, got.body)  # what a receiver does
        assert got.headers["webhook-id"] == routed.results[0].id
        assert event["type"] == "message.created" and event["data"]["channel"] == "inbox.echo"
        assert event["data"]["message"]["id"] == routed.results[0].id
        with pytest.raises(WebhookVerificationError):
            verify(hook.secret, got.headers, got.body.replace(b"lamp", b"lump"))

        [delivery] = echo.webhook_deliveries(limit=5)
        assert isinstance(delivery, WebhookDelivery) and delivery.status == "delivered"
        assert delivery.message_id == routed.results[0].id and delivery.attempts == 1
        assert delivery.last_status_code == 200 and delivery.delivered_at

        # A rotation: for its grace (a day by default) the old secret still verifies, as a second
        # signature; rotated with no grace, only the newest does.
        new_secret = echo.rotate_webhook_secret()
        assert new_secret.startswith("whsec_") and new_secret != hook.secret
        assert echo.webhook().previous_secret_expires_at
        again = alice.route("tale", "query", {"text": "Who trims the wick?"})
        deliver_due()
        latest = receiver.wait_for(2)[-1]
        assert verify(new_secret, latest.headers, latest.body)["data"]["message"]["id"] == again.results[0].id
        assert verify(hook.secret, latest.headers, latest.body)["data"]["message"]["id"] == again.results[0].id
        newest = echo.rotate_webhook_secret(grace_seconds=0)
        assert echo.webhook().previous_secret_expires_at is None
        third = alice.route("tale", "query", {"text": "Who sweeps the gallery?"})
        deliver_due()
        latest = receiver.wait_for(3)[-1]
        assert verify(newest, latest.headers, latest.body)["data"]["message"]["id"] == third.results[0].id
        for old in (hook.secret, new_secret):
            with pytest.raises(WebhookVerificationError) as caught:
                verify(old, latest.headers, latest.body)
            assert caught.value.reason == "signature"

        with pytest.raises(Forbidden):
            alice.set_webhook(receiver.url)  # agents only
        with pytest.raises(InvalidRequest):
            echo.set_webhook("ftp://example.com/hook")
        echo.delete_webhook()
        assert echo.webhook() is None
