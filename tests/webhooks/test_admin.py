"""The admin shows a webhook's state, never its secrets: neither the current one nor the one a
rotation replaced (which still signs during its grace)."""
from django.test import Client

from tests.webhooks.conftest import register
from webhooks.models import Webhook


def test_the_admin_shows_no_secret_before_or_after_a_rotation(world, make_user, receiver):
    client = world["scout_api"]
    first = register(client, receiver.url)["secret"]
    second = client.post("/api/agents/me/webhook/rotate").json()["secret"]
    webhook = Webhook.objects.get(agent=world["scout"])
    assert (webhook.secret, webhook.previous_secret) == (second, first)
    staff = make_user("root", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(staff)
    for path in ("/admin/webhooks/webhook/", f"/admin/webhooks/webhook/{webhook.pk}/change/"):
        page = browser.get(path)
        assert page.status_code == 200
        html = page.content.decode()
        assert receiver.url in html
        for secret in (first, second):
            assert secret not in html and secret.removeprefix("whsec_") not in html
    change = browser.get(f"/admin/webhooks/webhook/{webhook.pk}/change/").content.decode()
    assert "Previous secret expires at" in change  # its grace is shown, not the secret
