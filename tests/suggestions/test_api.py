"""Suggestions over REST: an agent proposes, a person decides. Suggestions move with the text as
others edit and turn stale (kept, never applied) when their text is touched; accepting makes a new
revision by the person who accepted, linked to the suggestion; rejecting changes nothing but the
suggestion; who may do what; bad input refused with nothing changed."""
import pytest

from stories.documents import text_at
from stories.models import DocumentChange
from suggestions.models import Suggestion
from tests.annotating import main, ops, two_stories
from tests.conftest import error_code

pytestmark = pytest.mark.django_db


def url(story="tale", doc="main", *rest):
    return "/".join([f"/api/stories/{story}/documents/{doc}/suggestions", *map(str, rest)])


@pytest.fixture
def tale(make_user, make_story, make_agent):
    return two_stories(make_user, make_story, make_agent, "The lamp 🔥 burned low. Mara waited.")


def test_an_agent_suggests_and_a_person_accepts(tale, api):
    agent, owner = api(tale["scribe"]), api(tale["owner"])
    r = agent.post(url(), {"base_revision": 1, "find": "burned low", "replace": "guttered", "note": "Stronger verb"},
                   format="json")
    assert r.status_code == 201, r.json()
    s = r.json()
    assert (s["status"], s["author"], s["author_kind"], s["note"]) == ("open", "scribe", "agent", "Stronger verb")
    assert s["edits"] == [{"from": 11, "to": 21, "insert": "guttered"}]  # characters: the emoji counts one
    assert s["edits_utf16"] == [[12, 22, "guttered"]] and s["replaced"] == ["burned low"]
    assert main().text == "The lamp 🔥 burned low. Mara waited." and main().revision == 1  # nothing applied

    listed = owner.get(url()).json()
    assert [x["id"] for x in listed["results"]] == [s["id"]] and listed["revision"] == 1
    r = owner.post(url("tale", "main", s["id"], "accept"), {}, format="json")
    assert r.status_code == 200, r.json()
    done = r.json()
    assert (done["status"], done["decided_by"], done["accepted_revision"]) == ("accepted", "owner", 2)
    assert main().text == "The lamp 🔥 guttered. Mara waited."
    change = DocumentChange.objects.get(document=main(), revision=2)
    assert (change.author.username, change.via, change.client_id) == ("owner", "suggest", f"suggestion:{s['id']}")
    # Decided once: it cannot be decided again.
    again = owner.post(url("tale", "main", s["id"], "reject"), {}, format="json")
    assert again.status_code == 409 and error_code(again) == "conflict"


def test_a_suggestion_moves_with_the_text_and_turns_stale_when_its_text_is_touched(tale, api):
    agent, owner, editor = api(tale["scribe"]), api(tale["owner"]), api(tale["ed"])
    moving = agent.post(url(), {"base_revision": 1, "find": "Mara waited.", "replace": "Mara listened."},
                        format="json").json()
    doomed = agent.post(url(), {"base_revision": 1, "find": "The lamp", "replace": "The great lamp"},
                        format="json").json()
    # Someone types at the very start (touching `doomed`'s edge) and elsewhere.
    assert editor.post(ops(), {"base_revision": 1, "edits": [{"from": 0, "to": 0, "insert": "Night. "}]},
                       format="json").status_code == 200
    listed = {x["id"]: x for x in owner.get(url()).json()["results"]}
    assert listed[moving["id"]]["status"] == "open" and listed[moving["id"]]["revision"] == 2
    assert listed[moving["id"]]["edits"] == [{"from": 30, "to": 42, "insert": "Mara listened."}]
    assert listed[doomed["id"]]["status"] == "stale" and listed[doomed["id"]]["stale_revision"] == 2
    r = owner.post(url("tale", "main", doomed["id"], "accept"), {}, format="json")
    assert r.status_code == 409 and r.json()["error"]["details"]["status"] == "stale"
    assert owner.post(url("tale", "main", doomed["id"], "reject"), {}, format="json").json()["status"] == "rejected"
    # The moved one applies where its text now is.
    assert owner.post(url("tale", "main", moving["id"], "accept"), {}, format="json").status_code == 200
    assert main().text == "Night. The lamp 🔥 burned low. Mara listened."
    # The log is whole: the rejected suggestion is kept, the old text is still there.
    assert Suggestion.objects.get(pk=doomed["id"]).status == "rejected"
    assert text_at(main(), 1) == "The lamp 🔥 burned low. Mara waited."


def test_made_against_an_old_revision_it_is_moved_or_refused_like_an_edit(tale, api):
    agent, editor = api(tale["scribe"]), api(tale["ed"])
    editor.post(ops(), {"append": " The sea rose."}, format="json")
    s = agent.post(url(), {"base_revision": 1, "edits": [{"from": 0, "to": 3, "insert": "A"}]}, format="json").json()
    assert (s["revision"], s["edits"]) == (2, [{"from": 0, "to": 3, "insert": "A"}])
    editor.post(ops(), {"base_revision": 2, "edits": [{"from": 4, "to": 8, "insert": "light"}]}, format="json")
    r = agent.post(url(), {"base_revision": 2, "find": "lamp", "replace": "lantern"}, format="json")
    assert r.status_code == 409 and error_code(r) == "conflict"  # revision 3 changed that text


def test_people_decide_agents_do_not_and_outsiders_learn_nothing(tale, api):
    s = api(tale["scribe"]).post(url("hush"), {"base_revision": 1, "find": "Mara", "replace": "Elsa"},
                                 format="json").json()
    for who in ("owner", "ed", "vera", "scribe"):
        assert api(tale[who]).get(url("hush")).status_code == 200, who
    assert api(tale["olga"]).get(url("hush")).status_code == 404
    assert api(tale["olga"]).get(url("tale")).status_code == 200  # a public story: readable
    assert api(None).get(url("hush")).status_code == 401
    refusals = {"vera": 403, "olga": 404, "scribe": 403}
    for who, code in refusals.items():
        client = api(tale[who])
        for path in (url("hush", "main", s["id"], "accept"), url("hush", "main", s["id"], "reject")):
            assert client.post(path, {}, format="json").status_code == code, (who, path)
        assert client.post(url("hush", "main", "decide"), {"decision": "accept"}, format="json").status_code == code
    assert api(tale["vera"]).post(url("hush"), {"base_revision": 1, "find": "Mara", "replace": "X"},
                                  format="json").status_code == 403
    assert api(tale["olga"]).post(url("tale"), {"base_revision": 1, "find": "Mara", "replace": "X"},
                                  format="json").status_code == 403
    assert Suggestion.objects.get(pk=s["id"]).status == "open" and main("hush").revision == 1
    assert api(tale["ed"]).post(url("hush", "main", s["id"], "accept"), {}, format="json").status_code == 200


def test_bad_input_is_refused_with_nothing_changed(tale, api, settings):
    agent = api(tale["scribe"])
    bad = [{"base_revision": 1, "find": "Mara", "replace": "X", "note": "n" * 2001},
           {"base_revision": 1, "find": "Mara", "replace": "X", "note": 5},
           {"base_revision": 1, "find": "a", "replace": "X"},  # ambiguous: 409
           {"base_revision": 1, "edits": []},
           {"base_revision": 1, "edits": [{"from": 5, "to": 2, "insert": "x"}]},
           {"base_revision": 9, "find": "Mara", "replace": "X"},
           {"find": "Mara", "replace": "X"},
           {"base_revision": 1, "find": "Mara", "replace": "X", "client_id": "me"},
           {"base_revision": 1, "find": "Mara", "replace": "X", "surprise": 1},
           {"base_revision": 1, "edits": [{"from": 0, "to": 0, "insert": "\u0000"}]}]
    for body in bad:
        r = agent.post(url(), body, format="json")
        assert r.status_code in (400, 409), (body, r.status_code)
        assert error_code(r) in ("invalid", "conflict"), body
    assert agent.post(url(), "[1]", content_type="application/json").status_code == 400
    assert agent.post(url(), "{nope", content_type="application/json").status_code == 400
    owner = api(tale["owner"])
    assert owner.post(url("tale", "main", 999, "accept"), {}, format="json").status_code == 404
    assert owner.get(url("tale", "main") + "?status=maybe").status_code == 400
    assert owner.post(url("tale", "main", "decide"), {"decision": "maybe"}, format="json").status_code == 400
    assert not Suggestion.objects.exists() and main().revision == 1
    settings.MYTHLINE_DOC_MAX_SUGGESTIONS = 1
    assert agent.post(url(), {"base_revision": 1, "find": "Mara", "replace": "X"}, format="json").status_code == 201
    r = agent.post(url(), {"base_revision": 1, "find": "lamp", "replace": "Y"}, format="json")
    assert r.status_code == 409 and r.json()["error"]["details"]["max_suggestions"] == 1


def test_a_person_decides_all_of_one_authors_suggestions(tale, api, make_agent):
    from stories.models import Story
    other = make_agent("critic", stories=[Story.objects.get(slug="tale")])
    scribe, critic, owner = api(tale["scribe"]), api(other), api(tale["owner"])
    a = scribe.post(url(), {"base_revision": 1, "find": "lamp", "replace": "light"}, format="json").json()
    b = scribe.post(url(), {"base_revision": 1, "find": "waited", "replace": "wept"}, format="json").json()
    c = critic.post(url(), {"base_revision": 1, "find": "Mara", "replace": "Elsa"}, format="json").json()
    r = owner.post(url("tale", "main", "decide"), {"decision": "accept", "author": "scribe"}, format="json")
    assert r.status_code == 200 and r.json() == {"decision": "accept", "decided": [a["id"], b["id"]], "skipped": []}
    assert main().text == "The light 🔥 burned low. Mara wept."
    assert Suggestion.objects.get(pk=c["id"]).status == "open"
    r = owner.post(url("tale", "main", "decide"), {"decision": "reject"}, format="json")
    assert r.json()["decided"] == [c["id"]] and main().revision == 3


def test_where_agents_suggest_an_agents_edit_becomes_a_suggestion(tale, api):
    owner, agent, editor = api(tale["owner"]), api(tale["scribe"]), api(tale["ed"])
    assert api(tale["ed"]).patch("/api/stories/tale", {"agents_suggest": True}, format="json").status_code == 403
    r = owner.patch("/api/stories/tale", {"agents_suggest": True}, format="json")
    assert r.status_code == 200 and r.json()["agents_suggest"] is True
    body = {"base_revision": 1, "find": "waited", "replace": "wept"}
    r = agent.post(ops(), body, format="json", HTTP_IDEMPOTENCY_KEY="line-1")
    assert r.status_code == 202, r.json()
    made = r.json()
    assert made["revision"] is None and made["change"] is None and made["suggestion"]["status"] == "open"
    assert main().text == "The lamp 🔥 burned low. Mara waited." and main().revision == 1
    again = agent.post(ops(), body, format="json", HTTP_IDEMPOTENCY_KEY="line-1")  # a retry: the same one
    assert again.status_code == 202 and again.json()["suggestion"]["id"] == made["suggestion"]["id"]
    other = agent.post(ops(), {**body, "replace": "slept"}, format="json", HTTP_IDEMPOTENCY_KEY="line-1")
    assert other.status_code == 409 and Suggestion.objects.count() == 1
    # People still edit at once.
    assert editor.post(ops(), {"append": " Dawn."}, format="json").status_code == 200
    assert main().text.endswith("Dawn.")
    assert owner.post(url("tale", "main", made["suggestion"]["id"], "accept"), {}, format="json").status_code == 200
    assert main().text == "The lamp 🔥 burned low. Mara wept. Dawn."
