"""The story's JSON export (the owner's audit trail) keeps the suggestions (decided ones too), the
comment threads with every comment, and the writers' room."""
import json

import pytest

from comments.services import comment_reply, thread_create
from stories.documents import document_edit
from stories.models import Document
from suggestions.services import suggestion_create, suggestion_decide
from writers.services import crew_add

pytestmark = pytest.mark.django_db


def test_the_export_keeps_suggestions_comments_and_the_crew(make_user, make_story, make_agent, api):
    owner = make_user("owner")
    story = make_story(owner, slug="tale")
    scribe = make_agent("scribe", stories=[story])
    doc = Document.objects.get(story=story, name="main")
    document_edit(doc=doc, author=owner, body={"append": "The lamp burned low."})
    doc.refresh_from_db()
    kept = suggestion_create(doc=doc, author=scribe, body={"base_revision": 1, "find": "low", "replace": "out",
                                                           "note": "darker"})
    suggestion_decide(suggestion=kept, by=owner, decision="reject")
    thread = thread_create(doc=doc, author=scribe, body={"from": 4, "to": 8, "body": "Which lamp?"})
    comment_reply(thread=thread, author=owner, body={"body": "The tower's."})
    crew_add(story=story, by=owner, roles=[])
    r = api(owner).get("/api/stories/tale/export")
    export = json.loads(b"".join(r.streaming_content))
    [s] = export["suggestions"]
    assert (s["id"], s["status"], s["note"], s["replaced"], s["decided_by"]) == (kept.pk, "rejected", "darker",
                                                                                ["low"], "owner")
    [t] = export["comments"]
    assert t["quote"] == "lamp" and [c["body"] for c in t["comments"]] == ["Which lamp?", "The tower's."]
    assert export["crew"]["enabled"] and export["crew"]["roles"] == ["showrunner", "plot-planner", "narrator"]
