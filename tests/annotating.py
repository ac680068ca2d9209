"""Set-up shared by the tests of what people lay on a document's text (tests/suggestions and
tests/comments, each conftest.py takes the fixtures from here): stories whose `main` holds a text, and a
live server. Each test module keeps its own `tale` fixture, one line calling a builder with its text."""
import pytest

from accounts.services import token_issue
from stories.documents import document_edit
from stories.models import Document
from stories.services import participant_add
from stories.changesets import index_to_utf16
from tests.live import LiveServer
from tests.messaging.test_consumers import Client


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


# The socket frames on a document (tests/suggestions/test_frames.py, tests/comments/test_frames.py).
FRAMES_TEXT = "🌊 The lamp burned low."
FRAMES_TOPIC = "doc:tale/main"


def frames_world(make_user, make_story, make_agent) -> dict:
    """`tale` (public): alice owns it, bob edits, vera views, the agent `narrator` edits; `vault`
    (private) is olga's. `main` of tale holds FRAMES_TEXT at revision 1."""
    alice, bob, vera, olga = (make_user(n) for n in ("alice", "bob", "vera", "olga"))
    story = make_story(alice, slug="tale", editors=[bob], viewers=[vera])
    make_story(olga, slug="vault", visibility="private")
    narrator = make_agent("narrator", stories=[story])
    doc = Document.objects.get(story=story, name="main")
    document_edit(doc=doc, author=alice, body={"append": FRAMES_TEXT})
    for user in (alice, bob, vera, olga, narrator):
        user.test_token = token_issue(user=user)
    return {"story": story, "doc": doc, "alice": alice, "bob": bob, "vera": vera, "olga": olga,
            "narrator": narrator}


def units(text: str, sub: str) -> tuple[int, int]:
    """Where `sub` is in `text`, in UTF-16 units."""
    at = text.index(sub)
    return index_to_utf16(text, at), index_to_utf16(text, at + len(sub))


def replace(text: str, sub: str, by: str) -> list:
    """A CodeMirror change set (JSON) replacing `sub` in `text` with `by`."""
    start, end = units(text, sub)
    total = index_to_utf16(text, len(text))
    return [start, [end - start, by], total - end]


async def opened(user, *topics):
    client = Client(user)
    await client.__aenter__()
    assert (await client.recv())["type"] == "welcome"
    for topic in topics:
        reply = await client.request(type="subscribe", topic=topic)
        assert reply["type"] == "subscribed", reply
    return client


async def events(client, name, count=1):
    """The next `count` story events called `name`, then no other such event (exactly once)."""
    got = []
    while len(got) < count:
        frame = await client.until("event")
        if frame["event"] == name:
            got.append(frame)
    await client.nothing()
    return got
