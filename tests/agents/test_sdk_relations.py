"""The SDK's edits, deletions, reactions and search against a live server (issue 17).

- `edit`, `delete`, `react`, `unreact` post relation messages; their answers carry `target`, the
  message after the change; reads give the aggregated view typed (`edited_at`, `deleted`,
  `reactions` with `me`), and a deleted message's payload is None (its `text` '').
- A listener skips messages deleted by the time they arrive (a replay), but hands over the
  relation messages; `skip_deleted=False` hands over the deleted message too, payload None.
- `search` answers typed results, filters, pages with `next_offset`, and never shows what the
  caller may not read; bad input is `InvalidRequest`, an unknown story `NotFound`.
"""
import asyncio
import datetime as dt

import httpx
import pytest

from accounts.services import token_issue
from mythline_sdk import (AsyncMythlineClient, Forbidden, InvalidRequest, Message, MythlineClient, NotFound,
                          Reaction, SearchPage, SearchResult)
from tests.live import LiveServer, until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture(scope="module")
def server(django_db_setup):
    with LiveServer(env={"MYTHLINE_LOOP_WINDOW_SECONDS": "0"}) as live:  # stopped, its log removed, after the module
        yield live


@pytest.fixture
def tale(make_user, make_story, make_agent):
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tale", editors=[bob])
    echo = make_agent("echo", capabilities=["query"], stories=[story])
    return {"alice": token_issue(user=alice), "bob": token_issue(user=bob), "echo": token_issue(user=echo)}




def test_edit_delete_react_and_unreact(server, tale):
    with MythlineClient(server.base, tale["alice"]) as alice, MythlineClient(server.base, tale["bob"]) as bob:
        original = alice.post_message("tale", "general", "narration", {"text": "The lamp guttered."})
        assert original.payload == {"text": "The lamp guttered."} and not original.deleted
        assert original.reactions == [] and original.edited_at is None and original.relates_to is None

        edit = alice.edit(original, {"text": "The lamp went out."})
        assert (edit.msg_type, edit.rel_type, edit.relates_to, edit.created) == ("edit", "replace", original.id, True)
        assert isinstance(edit.target, Message) and edit.target.id == original.id
        assert edit.target.payload == {"text": "The lamp went out."} and edit.target.edited
        # By id too: the client looks the message up.
        again = alice.edit(original.id, {"text": "The lamp went out at last."})
        assert again.target.text == "The lamp went out at last."
        assert alice.get_message(original.id).payload == {"text": "The lamp went out at last."}
        with pytest.raises(Forbidden):
            bob.edit(original.id, {"text": "Not yours."})

        reaction = bob.react(original, "👍")
        assert (reaction.msg_type, reaction.rel_type, reaction.created) == ("reaction", "annotate", True)
        assert reaction.target.reactions[0].key == "👍" and reaction.target.reactions[0].count == 1
        assert bob.react(original, "👍").id == reaction.id and bob.react(original, "👍").created is False
        alice.react(original, "🔥")
        seen_by_bob = bob.get_message(original.id)
        assert seen_by_bob.reactions == [Reaction("👍", 1, True), Reaction("🔥", 1, False)]
        assert seen_by_bob.reaction("👍").me and alice.get_message(original.id).reaction("👍").me is False

        taken_back = bob.unreact(original, "👍")
        assert (taken_back.msg_type, taken_back.relates_to) == ("delete", reaction.id)
        assert bob.get_message(original.id).reactions == [Reaction("🔥", 1, False)]
        assert bob.unreact(original, "👍") is None  # nothing left to take back
        assert bob.get_message(reaction.id).deleted  # the reaction message itself is deleted
        anew = bob.react(original.id, "👍")  # reacting after taking it back is a new reaction
        assert anew.created and anew.id != reaction.id

        with pytest.raises(Forbidden):
            bob.delete(original)
        deletion = alice.delete(original, reason="posted by mistake")
        assert (deletion.msg_type, deletion.rel_type, deletion.payload) == ("delete", "redact",
                                                                             {"reason": "posted by mistake"})
        assert deletion.target.deleted and deletion.target.payload is None
        assert alice.delete(original.id).id == deletion.id  # deleting again answers the first deletion
        gone = bob.get_message(original.id)
        assert gone.deleted and gone.payload is None and gone.text == ""
        with pytest.raises(InvalidRequest):
            bob.react(original, "👀")  # no reaction to a deleted message

        # The log holds every relation, in order, with its own seq.
        page = alice.read_messages("tale", "general")
        assert [m.msg_type for m in page.results] == ["narration", "edit", "edit", "reaction", "reaction",
                                                      "delete", "reaction", "delete"]
        assert [m.seq for m in page.results] == list(range(1, 9))
        assert page.results[0].deleted and page.results[0].payload is None


def test_a_listener_skips_messages_deleted_before_they_arrive_but_gets_the_relations(server, tale):
    with MythlineClient(server.base, tale["alice"]) as alice:
        kept = alice.post_message("tale", "general", "query", {"text": "Who keeps the lamp?"})
        taken = alice.post_message("tale", "general", "query", {"text": "Who stole the oil?"})
        alice.delete(taken)

    async def listen(**options) -> list[Message]:
        handled: list[Message] = []
        async with AsyncMythlineClient(server.base, tale["echo"]) as echo:
            listener = echo.listener([("tale", "general")], start="beginning", ack=False, **options)
            listener.on("*", lambda m: _append(handled, m))
            task = asyncio.create_task(listener.run())
            await until(lambda: listener.stats.processed >= 3, what="the replay")
            listener.stop()
            await task
        return handled

    handled = asyncio.run(listen())
    assert [(m.msg_type, m.id) for m in handled if m.msg_type == "query"] == [("query", kept.id)]
    [deletion] = [m for m in handled if m.msg_type == "delete"]
    assert deletion.relates_to == taken.id and deletion.replay

    everything = asyncio.run(listen(skip_deleted=False))
    [shown] = [m for m in everything if m.id == taken.id]
    assert shown.deleted and shown.payload is None and shown.text == ""


async def _append(into, value):
    into.append(value)


def test_search_is_typed_filtered_paged_and_never_shows_what_the_caller_may_not_read(server, tale):
    with MythlineClient(server.base, tale["alice"]) as alice, MythlineClient(server.base, tale["bob"]) as bob:
        lines = ["The lighthouse keeper climbs the stair.", "Fog rolls over the lighthouse.",
                 "Gulls circle the lighthouse <b>tower</b>.", "The boathouse is dark."]
        posted = [alice.post_message("tale", "general", "narration", {"text": t}) for t in lines]
        bob_line = bob.post_message("tale", "general", "text", {"text": "I saw the lighthouse blink."})
        alice.request("POST", "/api/stories/tale/channels", json={"name": "secrets", "kind": "private"})
        alice.post_message("tale", "secrets", "text", {"text": "The lighthouse hides a smuggler."})

        page = alice.search("lighthouse")
        assert isinstance(page, SearchPage) and all(isinstance(r, SearchResult) for r in page.results)
        assert len(page.results) == 5 and page.next_offset is None
        hit = next(r for r in page.results if r.message.id == posted[2].id)
        assert (hit.story, hit.channel) == ("tale", "general") and isinstance(hit.message, Message)
        assert "<mark>" in hit.highlight.lower() and "&lt;b&gt;" in hit.highlight  # escaped HTML
        assert page.results[0].rank >= page.results[-1].rank

        # Bob may not read #secrets: never a result, however he asks.
        assert {r.message.text for r in bob.search("lighthouse").results} == {*lines[:3], bob_line.text}
        assert bob.search("smuggler").results == []
        with pytest.raises(NotFound):
            bob.search("smuggler", story="tale", channel="secrets")

        assert [r.message.id for r in alice.search("lighthouse", sender="bob").results] == [bob_line.id]
        assert {r.message.id for r in alice.search("lighthouse", type=["text"]).results} == {
            bob_line.id, *[r.message.id for r in alice.search("smuggler").results]}
        assert len(alice.search("lighthouse", story="tale", channel="general", type="narration").results) == 3
        future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
        assert alice.search("lighthouse", after=future).results == []
        assert len(alice.search("lighthouse", before=future).results) == 5
        assert alice.search('"keeper climbs"').results[0].message.id == posted[0].id

        first = alice.search("lighthouse", limit=2)
        assert len(first.results) == 2 and first.next_offset == 2
        rest = alice.search("lighthouse", limit=2, offset=first.next_offset)
        last = alice.search("lighthouse", limit=2, offset=rest.next_offset)
        ids = [r.message.id for p in (first, rest, last) for r in p.results]
        assert len(ids) == len(set(ids)) == 5 and last.next_offset is None

        # An edit is found by its new words, a deleted message no more.
        alice.edit(posted[3], {"text": "The boathouse burns."})
        assert [r.message.id for r in alice.search("burns").results] == [posted[3].id]
        alice.delete(posted[1])
        assert posted[1].id not in {r.message.id for r in alice.search("lighthouse").results}

        with pytest.raises(InvalidRequest) as caught:
            alice.search("lighthouse", channel="general")  # a channel needs its story
        assert "channel" in caught.value.details
        with pytest.raises(InvalidRequest):
            alice.search("   ")
        with pytest.raises(NotFound):
            alice.search("lighthouse", story="no-such-story")


def test_search_over_http_matches_the_sdk(server, tale):
    """The SDK adds nothing to what the API answers: the same results, in the same order."""
    with MythlineClient(server.base, tale["alice"]) as alice:
        for text in ("A storm at sea.", "The storm breaks the lamp."):
            alice.post_message("tale", "general", "text", {"text": text})
        typed = alice.search("storm", story="tale")
    raw = httpx.get(f"{server.base}/api/search", params={"q": "storm", "story": "tale"},
                    headers={"Authorization": f"Bearer {tale['alice']}"}, timeout=10).json()
    assert [r.message.id for r in typed.results] == [r["message"]["id"] for r in raw["results"]]
    assert [r.highlight for r in typed.results] == [r["highlight"] for r in raw["results"]]


def test_the_demo_crews_board_reads_a_general_holding_deleted_messages(server, tale, make_agent):
    """The crew (agents/crew) reads #general through the SDK: a deleted message (payload None) in
    its history must not stop the showrunner from rebuilding its board."""
    from agents.crew.runner import Crew, Showrunner
    from stories.models import Story

    showrunner = make_agent("showrunner", capabilities=["task_update"], stories=[Story.objects.get(slug="tale")])
    token = token_issue(user=showrunner)
    with MythlineClient(server.base, tale["alice"]) as alice:
        taken = alice.post_message("tale", "general", "text", {"text": "@showrunner a scene at the boathouse"})
        alice.delete(taken)
        alice.post_message("tale", "general", "text", {"text": "Nothing to see here."})

    async def go():
        async with AsyncMythlineClient(server.base, token, username="showrunner") as client:
            crew = Crew(server.base, "tale", {"showrunner": token}, members={"showrunner": "showrunner"})
            board = Showrunner(crew, client)
            last = await board.prepare()
            return board, last

    board, last = asyncio.run(go())
    assert last == 3 and taken.id in board.seen
