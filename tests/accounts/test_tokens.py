"""Tokens: random, stored only as a hash, shown once, revocable; the SPEC's commands print them last."""
import io

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiToken, hash_token
from accounts.services import token_issue, token_revoke, token_rotate
from agents.models import AgentProfile
from messaging.models import Channel
from tests.conftest import error_code

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue().strip().splitlines()[-1]


def test_token_is_random_hashed_and_authenticates(make_user, api):
    alice = make_user("alice")
    raw = token_issue(user=alice)
    assert len(raw) >= 43 and raw != token_issue(user=alice)
    stored = ApiToken.objects.filter(user=alice).first()
    assert raw not in {stored.key_hash, stored.prefix} and ApiToken.objects.filter(key_hash=hash_token(raw)).exists()
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/stories").status_code == 200


def test_revoked_and_unknown_tokens_get_401(make_user, api):
    alice = make_user("alice")
    raw = token_issue(user=alice)
    token_revoke(token=ApiToken.objects.get(key_hash=hash_token(raw)))
    client = api(None)
    for header in (f"Bearer {raw}", "Bearer nope", "Token abc", "Bearer"):
        client.credentials(HTTP_AUTHORIZATION=header)
        r = client.get("/api/stories")
        assert r.status_code == 401 and error_code(r) == "unauthenticated", header


def test_rotate_revokes_the_old_token(make_user, api):
    alice = make_user("alice")
    raw = token_issue(user=alice, label="ci")
    new = token_rotate(token=ApiToken.objects.get(key_hash=hash_token(raw)))
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/stories").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {new}")
    assert client.get("/api/stories").status_code == 200


def test_issue_token_command_prints_token_last(make_user, api):
    make_user("alice")
    token = run("issue_token", "alice")
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/stories").status_code == 200
    with pytest.raises(CommandError, match="No user"):
        run("issue_token", "nobody")


def test_issue_token_replace_revokes_same_label_only(make_user):
    alice = make_user("alice")
    run("issue_token", "alice", "--label", "make run")
    run("issue_token", "alice", "--label", "other")
    run("issue_token", "alice", "--label", "make run", "--replace")
    active = ApiToken.objects.filter(user=alice, revoked_at__isnull=True)
    assert sorted(active.values_list("label", flat=True)) == ["make run", "other"]


def test_create_agent_joins_stories_with_inbox(make_user, make_story, api):
    owner = make_user("owner")
    make_story(owner, slug="one")
    make_story(owner, slug="two")
    token = run("create_agent", "scribe", "--story", "one", "--story", "two", "--capabilities", "narration, dialogue",
                "--display-name", "The Scribe")
    profile = AgentProfile.objects.get(user__username="scribe")
    assert profile.capabilities == ["narration", "dialogue"] and profile.user.display_name == "The Scribe"
    assert profile.user.is_agent and not profile.user.has_usable_password()
    assert set(Channel.objects.filter(name="inbox.scribe").values_list("story__slug", flat=True)) == {"one", "two"}
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    r = client.post("/api/stories/one/channels/general/messages", {"msg_type": "narration", "payload": {"text": "x"}},
                    format="json")
    assert r.status_code == 201 and r.json()["sender"]["kind"] == "agent"
    with pytest.raises(CommandError, match="already exists"):
        run("create_agent", "scribe")
    with pytest.raises(CommandError, match="No story"):
        run("create_agent", "other", "--story", "missing")
    with pytest.raises(CommandError):
        run("create_agent", "Bad Name")


def test_token_lookup_loads_the_same_token_and_user_as_the_orm(make_user):
    from accounts.authentication import _token_with_user

    alice = make_user("alice", display_name="Alice A.")
    raw = token_issue(user=alice, label="laptop")
    token = _token_with_user(hash_token(raw))
    expected = ApiToken.objects.select_related("user").get(key_hash=hash_token(raw))
    fields = lambda obj: {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}  # noqa: E731
    assert fields(token) == fields(expected) and fields(token.user) == fields(expected.user)
    assert token.created_at.tzinfo is not None and token.user.is_active is True
    token_revoke(token=expected)
    assert _token_with_user(hash_token(raw)) is None and _token_with_user(hash_token("nope")) is None


def test_create_agent_again_fails_and_says_how_to_get_a_token(make_user):
    """A second `create_agent scribe` issues nothing, prints nothing on stdout (scripts take its last
    line as the token) and says how to get a new token; following that advice works."""
    first = run("create_agent", "scribe")
    out = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("create_agent", "scribe", stdout=out, stderr=io.StringIO())
    assert out.getvalue() == ""
    message = str(raised.value)
    assert "Agent 'scribe' already exists" in message
    assert "manage.py issue_token scribe --label create_agent --replace" in message
    assert ApiToken.objects.filter(user__username="scribe").count() == 1
    token = run(*message.split("`")[1].split()[1:])  # the advised command, as given
    assert token != first
    active = ApiToken.objects.filter(user__username="scribe", revoked_at__isnull=True)
    assert list(active.values_list("label", flat=True)) == ["create_agent"] and active.count() == 1
    make_user("hugo")
    with pytest.raises(CommandError, match="human account named 'hugo'"):
        run("create_agent", "hugo")
