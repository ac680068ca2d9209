"""Comments over REST: a thread anchored to a passage follows the text as others edit (grows when
typed inside, stays put for text at its edges, shrinks when part is deleted, orphaned when all of it
is); who may read, comment and resolve; bad input refused with nothing stored; the caps."""
import pytest

from comments.models import Comment, CommentThread
from tests.annotating import main, ops, two_stories
from tests.conftest import error_code

pytestmark = pytest.mark.django_db

TEXT = "The lamp 🔥 burned low. Mara waited."


def url(story="tale", doc="main", *rest):
    return "/".join([f"/api/stories/{story}/documents/{doc}/comments", *map(str, rest)])


@pytest.fixture
def tale(make_user, make_story, make_agent):
    return two_stories(make_user, make_story, make_agent, TEXT)


def comment(client, start, end, body="Look here", **extra):
    r = client.post(url(), {"from": start, "to": end, "body": body, **extra}, format="json")
    assert r.status_code == 201, r.json()
    return r.json()


def edit(client, base, start, end, insert=""):
    r = client.post(ops(), {"base_revision": base, "edits": [{"from": start, "to": end, "insert": insert}]},
                    format="json")
    assert r.status_code == 200, r.json()


def anchors(client):
    return {t["quote"]: t for t in client.get(url()).json()["results"]}


def passage(t):
    return main().text[t["anchor"]["from"]:t["anchor"]["to"]]


def test_an_agent_comments_on_a_passage_and_people_reply_and_resolve(tale, api):
    agent, owner, viewer = api(tale["scribe"]), api(tale["owner"]), api(tale["vera"])
    t = comment(agent, 11, 21, "Is 'low' the right word?")  # "burned low", after the emoji
    assert (t["quote"], t["created_by"], t["created_by_kind"], t["orphaned"], t["resolved"]) == (
        "burned low", "scribe", "agent", False, False)
    assert t["anchor"] == {"from": 11, "to": 21} and t["anchor_utf16"] == {"from": 12, "to": 22}
    assert t["revision"] == 1 and [c["body"] for c in t["comments"]] == ["Is 'low' the right word?"]

    r = owner.post(url("tale", "main", t["id"], "replies"), {"body": "  Keep it.  "}, format="json")
    assert r.status_code == 201, r.json()
    assert (r.json()["author"], r.json()["body"], r.json()["thread"]) == ("owner", "Keep it.", t["id"])
    r = owner.post(url("tale", "main", t["id"], "resolve"), {"resolved": True}, format="json")
    assert r.status_code == 200, r.json()
    done = r.json()
    assert (done["resolved"], done["resolved_by"], done["version"]) == (True, "owner", 2)
    assert done["resolved_at"] and done["comment_count"] == 2

    # A reader sees it all; the list shows the opening comment, the thread every comment.
    listed = viewer.get(url()).json()
    assert listed["revision"] == 1 and [x["id"] for x in listed["results"]] == [t["id"]]
    assert listed["results"][0]["first_comment"]["body"] == "Is 'low' the right word?"
    assert [x["id"] for x in viewer.get(url() + "?resolved=false").json()["results"]] == []
    detail = viewer.get(url("tale", "main", t["id"])).json()
    assert [(c["author"], c["body"]) for c in detail["comments"]] == [
        ("scribe", "Is 'low' the right word?"), ("owner", "Keep it.")]
    # Reopened; asking for what it already is changes nothing.
    assert owner.post(url("tale", "main", t["id"], "resolve"), {"resolved": False},
                      format="json").json()["version"] == 3
    same = owner.post(url("tale", "main", t["id"], "resolve"), {"resolved": False}, format="json").json()
    assert (same["resolved"], same["resolved_by"], same["version"]) == (False, None, 3)
    assert main().text == TEXT  # comments never change the text


def test_anchors_follow_concurrent_edits(tale, api):
    owner, editor = api(tale["owner"]), api(tale["ed"])
    inside = comment(owner, 11, 21)          # "burned low"
    before_edge = comment(owner, 4, 8)       # "lamp"
    shrink = comment(owner, 23, 27)          # "Mara"
    doomed = comment(owner, 28, 34)          # "waited"
    # An emoji typed at the very start (before every anchor), counted in characters (one each).
    edit(editor, 1, 0, 0, "🌙 ")
    got = anchors(owner)
    assert got["burned low"]["anchor"] == {"from": 13, "to": 23} and passage(got["burned low"]) == "burned low"
    assert got["burned low"]["anchor_utf16"] == {"from": 15, "to": 25} and got["burned low"]["revision"] == 2
    # Typed inside grows it; typed at either edge stays outside.
    edit(editor, 2, 20, 20, "very ")                      # "burned very low"
    edit(editor, 3, 6, 6, "old ")                         # at the start of "lamp"
    edit(editor, 4, 14, 14, "!")                          # at the end of "lamp"
    got = anchors(owner)
    assert passage(got["burned low"]) == "burned very low"
    assert passage(got["lamp"]) == "lamp" and main().text.startswith("🌙 The old lamp! 🔥")
    # Part deleted shrinks it; all deleted orphans it (kept, collapsed where the text was).
    at = main().text.index("Mara")
    edit(editor, 5, at + 2, at + 4)                        # "Ma"
    at = main().text.index("waited")
    edit(editor, 6, at - 1, at + 6)                        # " waited"
    got = anchors(owner)
    assert passage(got["Mara"]) == "Ma" and not got["Mara"]["orphaned"]
    gone = got["waited"]
    assert gone["orphaned"] and gone["anchor"]["from"] == gone["anchor"]["to"] == at - 1
    assert gone["version"] == 2 and gone["quote"] == "waited"
    assert {t["id"] for t in got.values()} == {inside["id"], before_edge["id"], shrink["id"], doomed["id"]}
    # Stored re-anchored at the current revision.
    stored = CommentThread.objects.get(pk=inside["id"])
    assert stored.revision == main().revision == 7
    # Text typed where an orphan sits does not bring it back.
    edit(editor, 7, at - 1, at - 1, " again")
    assert anchors(owner)["waited"]["orphaned"]


def test_a_comment_at_an_older_revision_is_moved_to_the_current_text(tale, api):
    owner, agent = api(tale["owner"]), api(tale["scribe"])
    edit(owner, 1, 0, 0, "🌙 ")
    t = comment(agent, 11, 21, revision=1)  # "burned low" as the agent read it at revision 1
    assert t["revision"] == 2 and t["quote"] == "burned low" and passage(t) == "burned low"
    edit(owner, 2, 0, len(main().text))  # everything deleted
    r = agent.post(url(), {"from": 0, "to": 3, "body": "The", "revision": 2}, format="json")
    assert r.status_code == 409 and error_code(r) == "conflict"
    # A point (from == to) is allowed and never orphaned.
    point = comment(agent, 0, 0, "Start here", revision=3)
    assert point["anchor"] == {"from": 0, "to": 0} and point["quote"] == ""


def test_who_may_read_comment_and_resolve(tale, api):
    owner = api(tale["owner"])
    t = comment(owner, 0, 3)
    for who in ("owner", "ed", "vera", "scribe", "olga"):
        assert api(tale[who]).get(url()).status_code == 200, who
        assert api(tale[who]).get(url("tale", "main", t["id"])).status_code == 200, who
    assert api(None).get(url()).status_code in (401, 403)
    for who in ("ed", "scribe"):
        assert api(tale[who]).post(url("tale", "main", t["id"], "replies"), {"body": who},
                                   format="json").status_code == 201
    assert api(tale["scribe"]).post(url("tale", "main", t["id"], "resolve"), {"resolved": True},
                                    format="json").status_code == 200
    for who in ("vera", "olga"):
        client = api(tale[who])
        for r in (client.post(url(), {"from": 0, "to": 3, "body": "no"}, format="json"),
                  client.post(url("tale", "main", t["id"], "replies"), {"body": "no"}, format="json"),
                  client.post(url("tale", "main", t["id"], "resolve"), {"resolved": False}, format="json")):
            assert r.status_code == 403 and error_code(r) == "forbidden", (who, r.json())
    # A private story is 404 for outsiders; its readers read.
    r = api(tale["ed"]).post(url("hush"), {"from": 0, "to": 3, "body": "x"}, format="json")
    assert r.status_code == 201
    for path in (url("hush"), url("hush", "main", r.json()["id"])):
        assert api(tale["olga"]).get(path).status_code == 404
        assert api(tale["vera"]).get(path).status_code == 200
    assert api(tale["olga"]).post(url("hush", "main", r.json()["id"], "replies"), {"body": "x"},
                                  format="json").status_code == 404
    # A thread of another document or story is not found here.
    assert owner.get(url("tale", "main", r.json()["id"])).status_code == 404
    assert owner.get(url("tale", "nope")).status_code == 404
    assert Comment.objects.filter(thread_id=t["id"]).count() == 3


@pytest.mark.parametrize("body, field", [
    ({"from": "1", "to": 3, "body": "x"}, "from"),
    ({"from": 1, "to": 3.5, "body": "x"}, "to"),
    ({"from": True, "to": 3, "body": "x"}, "from"),
    ({"from": -1, "to": 3, "body": "x"}, "from"),
    ({"from": 5, "to": 3, "body": "x"}, "from"),
    ({"from": 0, "to": 36, "body": "x"}, "to"),          # the text has 35 characters
    ({"from": 0, "to": 3, "body": ""}, "body"),
    ({"from": 0, "to": 3, "body": "   "}, "body"),
    ({"from": 0, "to": 3, "body": "a\x00b"}, "body"),
    ({"from": 0, "to": 3, "body": "x" * 5001}, "body"),
    ({"from": 0, "to": 3, "body": 7}, "body"),
    ({"from": 0, "to": 3}, "body"),
    ({"to": 3, "body": "x"}, "from"),
    ({"from": 0, "to": 3, "body": "x", "revision": 9}, "revision"),
    ({"from": 0, "to": 3, "body": "x", "revision": "1"}, "revision"),
    ({"from": 0, "to": 3, "body": "x", "color": "red"}, "color"),
])
def test_bad_input_is_refused_with_nothing_stored(tale, api, body, field):
    r = api(tale["owner"]).post(url(), body, format="json")
    assert r.status_code == 400 and error_code(r) == "invalid", r.json()
    assert field in r.json()["error"]["details"], r.json()
    assert not CommentThread.objects.exists() and not Comment.objects.exists()


def test_bad_replies_and_resolutions_change_nothing(tale, api):
    owner = api(tale["owner"])
    t = comment(owner, 0, 3)
    assert owner.post(url(), ["not", "an", "object"], format="json").status_code == 400
    for body in ({}, {"body": ""}, {"body": 3}, {"body": "x", "extra": 1}):
        r = owner.post(url("tale", "main", t["id"], "replies"), body, format="json")
        assert r.status_code == 400 and error_code(r) == "invalid", body
    for body in ({}, {"resolved": "yes"}, {"resolved": 1}, {"resolved": True, "extra": 1},
                 {"resolved": True, "version": "1"}):
        r = owner.post(url("tale", "main", t["id"], "resolve"), body, format="json")
        assert r.status_code == 400 and error_code(r) == "invalid", body
    r = owner.post(url("tale", "main", t["id"], "resolve"), {"resolved": True, "version": 5}, format="json")
    assert r.status_code == 409 and r.json()["error"]["details"]["version"] == 1
    assert owner.get(url() + "?resolved=maybe").status_code == 400
    assert owner.post(url("tale", "main", 999999, "replies"), {"body": "x"}, format="json").status_code == 404
    stored = CommentThread.objects.get(pk=t["id"])
    assert (stored.resolved, stored.version, stored.comments.count()) == (False, 1, 1)


def test_a_revision_too_far_behind_is_refused(tale, api, settings):
    owner = api(tale["owner"])
    settings.MYTHLINE_DOC_MAX_LAG = 1
    edit(owner, 1, 0, 0, "A")
    edit(owner, 2, 0, 0, "B")
    r = owner.post(url(), {"from": 0, "to": 3, "body": "x", "revision": 1}, format="json")
    assert r.status_code == 409 and r.json()["error"]["details"]["max_lag"] == 1
    assert not CommentThread.objects.exists()


def test_the_caps(tale, api, settings):
    owner = api(tale["owner"])
    settings.MYTHLINE_DOC_MAX_COMMENT_THREADS, settings.MYTHLINE_COMMENT_MAX_PER_THREAD = 2, 2
    first = comment(owner, 0, 3)
    comment(owner, 4, 8)
    r = owner.post(url(), {"from": 0, "to": 3, "body": "third"}, format="json")
    assert r.status_code == 409 and r.json()["error"]["details"]["max_threads"] == 2
    assert owner.post(url("tale", "main", first["id"], "replies"), {"body": "2"}, format="json").status_code == 201
    r = owner.post(url("tale", "main", first["id"], "replies"), {"body": "3"}, format="json")
    assert r.status_code == 409 and r.json()["error"]["details"]["max_comments"] == 2
    assert CommentThread.objects.count() == 2 and Comment.objects.count() == 3


def test_a_long_quote_is_cut_to_500_characters(tale, api):
    owner = api(tale["owner"])
    edit(owner, 1, 0, 0, "x" * 700)
    t = comment(owner, 0, 700)
    assert t["quote"] == "x" * 500 and t["anchor"] == {"from": 0, "to": 700}
