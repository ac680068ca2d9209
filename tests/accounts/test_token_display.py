"""A token issued in the admin (rotate, or an agent's new token) is shown once, in the page that
answers the action, and never stored in a cookie: Django's messages may travel in one."""
import re

import pytest
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.sessions.models import Session
from django.urls import reverse

from accounts.models import ApiToken, User
from accounts.services import token_issue
from agents.models import AgentProfile

RAW_TOKEN_RE = re.compile(r"myth_[A-Za-z0-9_-]{40,}")


@pytest.fixture
def boss(db, client):
    boss = User.objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    client.force_login(boss)
    return boss


def assert_nowhere_but_the_page(response, raw):
    """`raw` is in this page, in no Set-Cookie header (not even compressed inside the messages
    cookie), in no stored session, and in no message left for the next page."""
    for morsel in response.cookies.values():
        assert raw not in morsel.OutputString()
        if morsel.key == "messages" and morsel.value:
            decoded = CookieStorage(response.wsgi_request)._decode(morsel.value) or []
            assert all(raw not in str(message) for message in decoded), "the token is in the messages cookie"
    assert response.status_code == 200  # answered in place, not redirected to a page fed by a message
    assert raw in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    for session in Session.objects.all():
        assert raw not in str(session.get_decoded())


def test_a_rotated_token_is_shown_once_and_never_put_in_a_cookie(client, boss, make_user):
    alice = make_user("alice")
    old = token_issue(user=alice, label="laptop")
    token = ApiToken.objects.get(user=alice)
    response = client.post(reverse("admin:accounts_apitoken_changelist"),
                           {"action": "rotate_selected", "_selected_action": [str(token.pk)]})
    shown = RAW_TOKEN_RE.findall(response.content.decode())
    assert len(shown) == 1 and shown[0] != old
    assert "Copy each token now" in response.content.decode() and "laptop" in response.content.decode()
    assert_nowhere_but_the_page(response, shown[0])
    # The next page does not show it again.
    assert shown[0] not in client.get(reverse("admin:accounts_apitoken_changelist")).content.decode()


def test_rotating_a_revoked_token_says_so_without_a_token(client, boss, make_user):
    alice = make_user("alice")
    token_issue(user=alice)
    token = ApiToken.objects.get(user=alice)
    url = reverse("admin:accounts_apitoken_changelist")
    client.post(url, {"action": "rotate_selected", "_selected_action": [str(token.pk)]})
    response = client.post(url, {"action": "rotate_selected", "_selected_action": [str(token.pk)]}, follow=True)
    page = response.content.decode()
    assert "is revoked; it was not rotated." in page and "No active token was selected." in page
    assert not RAW_TOKEN_RE.findall(page)


def test_an_agent_token_issued_in_the_admin_is_never_put_in_a_cookie(client, boss, make_agent):
    scribe = make_agent("scribe")
    profile = AgentProfile.objects.get(user=scribe)
    response = client.post(reverse("admin:agents_agentprofile_changelist"),
                           {"action": "issue_token_action", "_selected_action": [str(profile.pk)]})
    shown = RAW_TOKEN_RE.findall(response.content.decode())
    assert len(shown) == 1 and ApiToken.objects.filter(user=scribe, revoked_at__isnull=True).exists()
    assert_nowhere_but_the_page(response, shown[0])
