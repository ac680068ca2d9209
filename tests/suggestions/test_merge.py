"""A fork merged back into its parent as suggestions: one per passage the fork changed, made against
the fork's revision of the parent and moved through what the parent did since; a passage the parent
changed meanwhile is left out and listed; accepting them all brings the fork's work into the parent
without undoing the parent's own."""
import pytest

from stories.documents import document_create, document_edit
from stories.models import Document
from suggestions.models import Suggestion
from tests.conftest import error_code

pytestmark = pytest.mark.django_db

TEXT = "The lamp burned low.\n\nMara waited by the glass.\n\nThe sea rose.\n"


@pytest.fixture
def tale(make_user, make_story):
    owner, viewer = make_user("owner"), make_user("vera")
    story = make_story(owner, slug="tale", viewers=[viewer])
    main = Document.objects.get(story=story, name="main")
    document_edit(doc=main, author=owner, body={"append": TEXT})
    main.refresh_from_db()
    fork = document_create(story=story, creator=owner, name="idea", fork_of=main)
    return {"owner": owner, "vera": viewer, "main": main, "fork": fork}


def edit(doc, author, find, replace):
    doc.refresh_from_db()
    document_edit(doc=doc, author=author, body={"base_revision": doc.revision, "find": find, "replace": replace})


def merge(client, doc="idea", **body):
    return client.post(f"/api/stories/tale/documents/{doc}/merge", body, format="json")


def test_the_forks_passages_become_suggestions_and_accepting_them_keeps_both_sides(tale, api):
    owner = tale["owner"]
    edit(tale["fork"], owner, "burned low", "guttered")
    edit(tale["fork"], owner, "The sea rose.", "The sea rose, and rose.")
    edit(tale["main"], owner, "Mara waited", "Mara stood")  # the parent moves on meanwhile
    r = merge(api(owner), note="Try the fork's version")
    assert r.status_code == 201, r.json()
    result = r.json()
    assert (result["into"], result["from"], result["base_revision"], result["conflicts"]) == ("main", "idea", 1, [])
    assert len(result["suggestions"]) == 2 and {s["note"] for s in result["suggestions"]} == {"Try the fork's version"}
    tale["main"].refresh_from_db()
    assert "Mara stood" in tale["main"].text and "guttered" not in tale["main"].text  # nothing applied yet
    again = merge(api(owner), note="Try the fork's version").json()  # the same merge: the same suggestions
    assert [s["id"] for s in again["suggestions"]] == [s["id"] for s in result["suggestions"]]
    decided = api(owner).post("/api/stories/tale/documents/main/suggestions/decide", {"decision": "accept"},
                              format="json").json()
    assert len(decided["decided"]) == 2
    tale["main"].refresh_from_db()
    assert tale["main"].text == "The lamp guttered.\n\nMara stood by the glass.\n\nThe sea rose, and rose.\n"


def test_a_passage_the_parent_changed_too_is_left_to_a_person(tale, api):
    owner = tale["owner"]
    edit(tale["fork"], owner, "burned low", "guttered")
    edit(tale["fork"], owner, "by the glass", "by the furnace")
    edit(tale["main"], owner, "by the glass", "by the window")
    result = merge(api(owner)).json()
    assert [s["edits"][0]["insert"] for s in result["suggestions"]] == ["guttered"]
    assert len(result["conflicts"]) == 1 and result["conflicts"][0]["insert"] == "furnace"
    assert Suggestion.objects.count() == 1


def test_only_a_fork_merges_and_only_writers_merge(tale, api):
    r = merge(api(tale["owner"]), doc="main")
    assert r.status_code == 400 and error_code(r) == "invalid"
    edit(tale["fork"], tale["owner"], "burned low", "guttered")
    assert merge(api(tale["vera"])).status_code == 403
    assert merge(api(None)).status_code == 401
    assert merge(api(tale["owner"]), extra=1).status_code == 400
    assert not Suggestion.objects.exists()
    tale["main"].refresh_from_db()
    unchanged = document_create(story=tale["main"].story, creator=tale["owner"], name="same", fork_of=tale["main"])
    r = merge(api(tale["owner"]), doc=unchanged.name)
    assert r.status_code == 201 and r.json()["suggestions"] == [] and r.json()["conflicts"] == []
