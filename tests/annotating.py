"""Set-up shared by the tests of what people lay on a document's text (tests/suggestions and
tests/comments, each conftest.py takes the fixtures from here): stories whose `main` holds a text, and a
live server. Each test module keeps its own `tale` fixture, one line calling a builder with its text."""
import pytest

from accounts.services import token_issue
from stories.documents import document_edit
from stories.models import Document
from stories.services import participant_add
from tests.live import LiveServer


def main(story="tale") -> Document:
    """The story's `main`, as it is now in the database."""
    return Document.objects.get(story__slug=story, name="main")


def ops(story="tale", doc="main") -> str:
    return f"/api/stories/{story}/documents/{doc}/ops"


def two_stories(make_user, make_story, make_agent, text: str) -> dict:
    """'tale' (public) and 'hush' (private), each `main` holding `text` (revision 1, by the owner):
    the users 'owner', 'ed' (an editor), 'vera' (a viewer), 'olga' (an outsider) and the agent
    'scribe' (an editor of both)."""
    owner, editor, viewer, outsider = (make_user(n) for n in ("owner", "ed", "vera", "olga"))
    public = make_story(owner, slug="tale", editors=[editor], viewers=[viewer])
    private = make_story(owner, slug="hush", visibility="private", editors=[editor], viewers=[viewer])
    agent = make_agent("scribe", stories=[public, private])
    for story in (public, private):
        document_edit(doc=Document.objects.get(story=story, name="main"), author=owner, body={"append": text})
    return {"owner": owner, "ed": editor, "vera": viewer, "olga": outsider, "scribe": agent}


def live_story_tokens(make_user, make_story, make_agent, text: str) -> dict:
    """'tale' (public), its `main` holding `text` (revision 1): the tokens of 'owner', 'vera' (a
    viewer), 'scribe' (an agent editor) and 'watcher' (an agent viewer), for a live server."""
    owner, viewer = make_user("owner"), make_user("vera")
    story = make_story(owner, slug="tale", viewers=[viewer])
    document_edit(doc=Document.objects.get(story=story, name="main"), author=owner, body={"append": text})
    scribe = make_agent("scribe", stories=[story])
    watcher = make_agent("watcher")
    participant_add(story=story, user=watcher, role="viewer")
    return {name: token_issue(user=user) for name, user in
            (("owner", owner), ("vera", viewer), ("scribe", scribe), ("watcher", watcher))}


@pytest.fixture
def server():
    """A real server (Daphne) on the test database; the test must be django_db(transaction=True)."""
    with LiveServer() as live:
        yield live
