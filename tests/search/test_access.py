"""Search never returns a message the caller may not read: every role (owner, editor, viewer,
agent, another agent, a signed-in outsider, anonymous) against a public story, a private story, a
private channel, the inbox of another agent and messages whose audience leaves the caller out.

Who reads what is written out here (not derived from the code under test). The same tests run on
SQLite (FTS5) and on PostgreSQL (tsvector) when DATABASE_URL points there."""
import pytest

from messaging.models import Channel
from messaging.services import member_remove
from tests.conftest import error_code
from tests.search.conftest import MESSAGES, STORIES, word

pytestmark = pytest.mark.django_db

# What each caller reads in either story it takes part in.
READS = {
    "alice": set(MESSAGES),  # the story owner reads everything
    "bob": {"general", "cabal", "tobob", "humans"},
    "vera": {"general", "humans", "bartvera"},
    "ada": {"general", "inboxada", "agents"},
    "bart": {"general", "cabal", "inboxbart", "agents", "bartvera"},
    "otto": set(),  # in neither story: nothing without ?story=
}
# otto reads the public story when he names it: its public channel, messages for all and for humans.
OUTSIDER_IN_AGORA = {"general", "humans"}


def found(response) -> set:
    assert response.status_code == 200, response.content[:300]
    names = {f"w{s}{n}": (s, n) for s in STORIES for n in MESSAGES}
    hits = set()
    for result in response.json()["results"]:
        words = [w for w in result["message"]["payload"]["text"].split() if w in names]
        assert len(words) == 1, result
        assert result["story"] == names[words[0]][0] == result["message"]["story"]
        hits.add(names[words[0]])
    return hits


def expected(caller, story=None) -> set:
    stories = [story] if story else list(STORIES)
    out = set()
    for s in stories:
        names = READS[caller]
        if caller == "otto" and story == "agora":
            names = OUTSIDER_IN_AGORA
        out |= {(s, n) for n in names}
    return out


@pytest.mark.parametrize("caller", sorted(READS))
def test_a_common_word_finds_exactly_what_the_caller_reads(cast, api, caller):
    client = api(cast["users"][caller])
    assert found(client.get("/api/search", {"q": "common", "limit": 100})) == expected(caller)
    assert found(client.get("/api/search", {"q": "common", "story": "agora", "limit": 100})) == \
        expected(caller, "agora")
    vault = client.get("/api/search", {"q": "common", "story": "vault", "limit": 100})
    if caller == "otto":  # a private story one is not in is not known of, as on every read
        assert vault.status_code == 404 and error_code(vault) == "not_found"
    else:
        assert found(vault) == expected(caller, "vault")


@pytest.mark.parametrize("caller", sorted(READS))
def test_each_unique_word_is_found_only_by_its_readers(cast, api, caller):
    client = api(cast["users"][caller])
    for story in STORIES:
        for name in MESSAGES:
            hits = found(client.get("/api/search", {"q": word(story, name)}))
            assert hits == ({(story, name)} & expected(caller)), (caller, story, name)
            if story == "agora":  # naming the public story: the outsider's view of it
                hits = found(client.get("/api/search", {"q": word(story, name), "story": story}))
                assert hits == ({(story, name)} & expected(caller, story)), (caller, story, name)


def test_anonymous_is_401(cast, api):
    response = api(None).get("/api/search", {"q": "common"})
    assert response.status_code == 401
    assert error_code(response) == "unauthenticated"


@pytest.mark.parametrize(("caller", "status"), [("alice", 200), ("bob", 200), ("bart", 200), ("vera", 404),
                                                ("ada", 404), ("otto", 404)])
def test_a_private_channel_named_is_found_only_by_its_readers(cast, api, caller, status):
    for story in STORIES:
        response = api(cast["users"][caller]).get("/api/search", {"q": "common", "story": story, "channel": "cabal"})
        if caller == "otto" and story == "agora":
            assert response.status_code == 404
            continue
        assert response.status_code == status, (story, response.content[:200])
        if status == 200:
            assert found(response) == {(story, "cabal")}
        else:
            assert error_code(response) == "not_found"
            assert word(story, "cabal") not in response.content.decode()


@pytest.mark.parametrize(("caller", "status"), [("alice", 200), ("bart", 200), ("bob", 403), ("vera", 403),
                                                ("ada", 403)])
def test_an_inbox_named_is_searched_by_its_agent_and_the_owner_only(cast, api, caller, status):
    """As on every read of an inbox: participants know it (they post to it) but read it not (403)."""
    response = api(cast["users"][caller]).get("/api/search", {"q": "common", "story": "vault",
                                                             "channel": "inbox.bart"})
    assert response.status_code == status
    if status == 200:
        assert found(response) == {("vault", "inboxbart")}
    else:
        assert error_code(response) == "forbidden"
        assert word("vault", "inboxbart") not in response.content.decode()


def test_access_is_checked_at_search_time(cast, api):
    """Removed from the private channel, bart finds its messages no more (nothing is cached)."""
    client = api(cast["users"]["bart"])
    assert ("agora", "cabal") in found(client.get("/api/search", {"q": "common", "story": "agora"}))
    cabal = Channel.objects.get(story=cast["stories"]["agora"], name="cabal")
    member_remove(channel=cabal, user=cast["users"]["bart"], by=cast["users"]["bob"])
    assert ("agora", "cabal") not in found(client.get("/api/search", {"q": "common", "story": "agora"}))
    assert found(client.get("/api/search", {"q": word("agora", "cabal")})) == set()


def test_results_on_pages_never_leak_either(cast, api):
    """Small pages, followed to the end: the union is exactly what the caller reads, no repeats."""
    for caller in ("bob", "ada", "vera"):
        client = api(cast["users"][caller])
        seen, offset = [], 0
        while offset is not None:
            body = client.get("/api/search", {"q": "common", "limit": 2, "offset": offset}).json()
            seen += [r["message"]["id"] for r in body["results"]]
            offset = body["next_offset"]
        assert len(seen) == len(set(seen))
        ids = {cast["ids"][key] for key in expected(caller)}
        assert set(seen) == ids, caller
