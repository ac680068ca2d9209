"""GET /api/search: ranking, phrases, filters, highlights, hostile queries, the reindex hooks.
The same tests run on SQLite (FTS5) and PostgreSQL (tsvector)."""
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from messaging.models import Message
from search.models import MessageText
from search.services import reindex_message, unindex_message
from tests.conftest import error_code
from tests.search.conftest import post

pytestmark = pytest.mark.django_db


@pytest.fixture
def tale(make_user, make_story, make_agent):
    alice, bob = make_user("alice"), make_user("bob")
    story = make_story(alice, slug="tale", editors=[bob])
    make_story(alice, slug="other")
    bard = make_agent("bard", capabilities=["dialogue"], stories=[story])
    return {"alice": alice, "bob": bob, "bard": bard, "story": story}


def search(client, **query):
    response = client.get("/api/search", query)
    assert response.status_code == 200, response.content[:300]
    return response.json()


def texts(body):
    return [r["message"]["payload"].get("text") or r["message"]["payload"].get("line") for r in body["results"]]


def test_results_are_ranked_best_first_and_carry_the_message(tale, api):
    alice = tale["alice"]
    weak = post(alice, "tale", "general", payload={"text": "The lighthouse stood among many rocks, boats, "
                                                           "gulls, waves and a great deal of other words here."})
    strong = post(alice, "tale", "general", payload={"text": "lighthouse lighthouse lighthouse keeper"})
    post(alice, "tale", "general", payload={"text": "Nothing to see here"})
    body = search(api(alice), q="lighthouse")
    assert [r["message"]["id"] for r in body["results"]] == [str(strong.pk), str(weak.pk)]
    first = body["results"][0]
    assert first["rank"] > body["results"][1]["rank"]
    assert (first["story"], first["channel"]) == ("tale", "general")
    assert first["message"]["seq"] == strong.seq and first["message"]["sender"]["username"] == "alice"
    assert body["next_offset"] is None


def test_every_word_must_occur_and_a_quoted_phrase_keeps_its_order(tale, api):
    alice = tale["alice"]
    post(alice, "tale", "general", payload={"text": "the old keeper lit the lamp"})
    post(alice, "tale", "general", payload={"text": "the lamp keeper was old"})
    client = api(alice)
    assert sorted(texts(search(client, q="keeper lamp"))) == ["the lamp keeper was old", "the old keeper lit the lamp"]
    assert texts(search(client, q='"lamp keeper"')) == ["the lamp keeper was old"]
    assert texts(search(client, q='"old keeper"')) == ["the old keeper lit the lamp"]
    assert texts(search(client, q="keeper whale")) == []
    assert sorted(texts(search(client, q="KEEPER"))) == sorted(texts(search(client, q="keeper")))  # any case


def test_prose_of_other_types_is_found(tale, api):
    post(tale["bard"], "tale", "general", msg_type="dialogue",
         payload={"character": "Mara", "line": "Hold the beacon!", "direction": "shouting"})
    post(tale["alice"], "tale", "general", msg_type="scene_plan", payload={"title": "Storm", "beats": ["A mast cracks"]})
    post(tale["alice"], "tale", "general", msg_type="x.note", payload={"deep": {"list": ["a barnacle"]}})
    client = api(tale["alice"])
    for q, msg_type in (("beacon", "dialogue"), ("Mara", "dialogue"), ("shouting", "dialogue"),
                        ("mast", "scene_plan"), ("barnacle", "x.note")):
        assert [r["message"]["msg_type"] for r in search(client, q=q)["results"]] == [msg_type], q


def test_filters_story_channel_sender_type_and_time(tale, api, make_story):
    alice, bob, bard = tale["alice"], tale["bob"], tale["bard"]
    post(alice, "tale", "general", payload={"text": "tide one"})
    post(bob, "tale", "general", msg_type="narration", payload={"text": "tide two"})
    post(bard, "tale", "general", msg_type="dialogue", payload={"character": "Mara", "line": "tide three"})
    post(alice, "tale", "room", payload={"text": "tide four"})
    post(alice, "other", "general", payload={"text": "tide five"})
    client = api(alice)
    assert len(search(client, q="tide")["results"]) == 5
    assert sorted(texts(search(client, q="tide", story="other"))) == ["tide five"]
    assert sorted(texts(search(client, q="tide", story="tale", channel="room"))) == ["tide four"]
    assert sorted(texts(search(client, q="tide", sender="bob"))) == ["tide two"]
    assert sorted(texts(search(client, q="tide", sender="nobody"))) == []
    assert sorted(texts(search(client, q="tide", type="dialogue,narration"))) == ["tide three", "tide two"]
    # Time: move one message into the past; after/before split around it (ISO-8601, with or without a zone).
    old = Message.objects.get(payload__text="tide one")
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    cut = (timezone.now() - timedelta(days=1)).isoformat()
    assert texts(search(client, q="tide", before=cut)) == ["tide one"]
    assert "tide one" not in texts(search(client, q="tide", after=cut))
    assert len(search(client, q="tide", after=cut)["results"]) == 4
    naive = (timezone.now() - timedelta(days=1)).replace(tzinfo=None).isoformat()
    assert texts(search(client, q="tide", before=naive)) == ["tide one"]  # a time without zone is UTC


def test_pages_with_limit_and_offset(tale, api):
    for i in range(5):
        post(tale["alice"], "tale", "general", payload={"text": f"wave number {i}"})
    client = api(tale["alice"])
    first = search(client, q="wave", limit=2)
    assert len(first["results"]) == 2 and first["next_offset"] == 2
    second = search(client, q="wave", limit=2, offset=2)
    third = search(client, q="wave", limit=2, offset=4)
    assert third["next_offset"] is None and len(third["results"]) == 1
    ids = [r["message"]["id"] for page in (first, second, third) for r in page["results"]]
    assert len(set(ids)) == 5
    assert len(search(client, q="wave", limit=1000)["results"]) == 5  # limit is capped at 100, not refused


def test_highlights_mark_the_hits_in_escaped_html(tale, api):
    post(tale["alice"], "tale", "general",
         payload={"text": 'Before <script>alert("x")</script> & the lighthouse <b>shone</b> at night.'})
    [result] = search(api(tale["alice"]), q="lighthouse")["results"]
    highlight = result["highlight"]
    assert "<mark>lighthouse</mark>" in highlight
    assert "<script>" not in highlight and "<b>" not in highlight
    assert "&lt;" in highlight or "script" not in highlight
    stripped = highlight.replace("<mark>", "").replace("</mark>", "")
    assert "<" not in stripped and ">" not in stripped
    assert "&amp;" in highlight  # the text around the hit is there, escaped
    # The message itself is the stored JSON, untouched: escaping is the highlight's job only.
    assert "<script>" in result["message"]["payload"]["text"]


def test_words_in_angle_brackets_are_words(tale, api):
    """PostgreSQL's parser would take `<lamp>` for an HTML tag: it is searched and shown as text."""
    post(tale["alice"], "tale", "general", payload={"text": "The <lamp> of the lighthouse"})
    [result] = search(api(tale["alice"]), q="lamp")["results"]
    assert "&lt;<mark>lamp</mark>&gt;" in result["highlight"]
    assert "lighthouse" in result["highlight"]


def test_highlights_mark_every_word_of_the_query(tale, api):
    post(tale["alice"], "tale", "general", payload={"text": "The keeper climbed. Later the lamp was lit."})
    [result] = search(api(tale["alice"]), q="keeper lamp")["results"]
    assert "<mark>keeper</mark>" in result["highlight"] and "<mark>lamp</mark>" in result["highlight"]


def test_diacritics_are_folded_on_either_database(tale, api):
    """`cafe` finds `café` and `Crème` finds `creme`, as in SQLite's FTS5 index (unicode61,
    remove_diacritics) so in PostgreSQL's (`mythline_search`: `simple` with `unaccent`); the
    highlight marks the word as written."""
    alice = tale["alice"]
    cafe = post(alice, "tale", "general", payload={"text": "They met at the café on the quay."})
    creme = post(alice, "tale", "general", payload={"text": "A creme brulee, and the Señor's naïve coöperation."})
    client = api(alice)
    [found] = search(client, q="cafe")["results"]
    assert found["message"]["id"] == str(cafe.pk) and "<mark>café</mark>" in found["highlight"]
    assert [r["message"]["id"] for r in search(client, q="CAFÉ")["results"]] == [str(cafe.pk)]
    [found] = search(client, q="Crème brûlée")["results"]
    assert found["message"]["id"] == str(creme.pk)
    assert "<mark>creme</mark>" in found["highlight"] and "<mark>brulee</mark>" in found["highlight"]
    for q in ("senor", "naive", "cooperation"):
        assert [r["message"]["id"] for r in search(client, q=q)["results"]] == [str(creme.pk)], q


HOSTILE = ['"', '""', "'", '"unclosed', "NEAR(a b)", "NEAR", "*", "a*", "*a", "AND", "OR", "NOT", "a OR", "- x",
           "-x", "(", ")", "((a)", ":", "text:lamp", "^lamp", "\\", "%", "_", "a' OR 1=1 --", "'; DROP TABLE x; --",
           "!", "&", "|", "<->", "a & b | !c", "\u202e", "🔥", "灯台", "x" * 200, "a " * 100, "{", "}", "[", "+",
           "lamp:*", "@@", "::", "1=1", "NULL", "/*", "*/", "\t\n", "a\\b", "x:y*", "lamp'\"", "a<->b", "a!b",
           "(a|b)&c", "lamp:A", "'lamp':*", '"a" OR "b"', "a\u00a0b", "e\u0301", "ﬁ"]


@pytest.mark.parametrize("q", HOSTILE)
def test_hostile_queries_never_fail(tale, api, q):
    post(tale["alice"], "tale", "general", payload={"text": "a lamp and not OR near the lighthouse"})
    response = api(tale["alice"]).get("/api/search", {"q": q})
    if not q.strip():
        assert response.status_code == 400 and error_code(response) == "invalid"
        return
    assert response.status_code == 200, response.content[:300]
    assert isinstance(response.json()["results"], list)


def test_operator_words_are_plain_words(tale, api):
    post(tale["alice"], "tale", "general", payload={"text": "to be or not to be near the lamp"})
    post(tale["alice"], "tale", "general", payload={"text": "something else"})
    client = api(tale["alice"])
    for q in ("NOT", "OR", "near", "NEAR(the lamp)", "lamp*", "-lamp", '"lamp"'):
        assert texts(search(client, q=q)) == ["to be or not to be near the lamp"], q


def test_hyphenated_words_are_found_whole_and_by_their_parts(tale, api):
    post(tale["alice"], "tale", "general", payload={"text": "VAULT-GENERAL and a well-known keeper"})
    client = api(tale["alice"])
    for q in ("vault-general", "VAULT", "general", "well-known", "known", '"well-known keeper"'):
        assert len(search(client, q=q)["results"]) == 1, q


@pytest.mark.parametrize(("query", "field"), [
    ({}, "q"), ({"q": ""}, "q"), ({"q": "   "}, "q"), ({"q": "x" * 201}, "q"), ({"q": "x" * 10_000}, "q"),
    ({"q": "a", "channel": "general"}, "channel"), ({"q": "a", "limit": "0"}, "limit"),
    ({"q": "a", "limit": "ten"}, "limit"), ({"q": "a", "offset": "-1"}, "offset"),
    ({"q": "a", "offset": "1001"}, "offset"), ({"q": "a", "after": "yesterday"}, "after"),
    ({"q": "a", "before": "2026-13-45T99:00:00Z"}, "before"),
])
def test_bad_input_is_400_naming_the_field(tale, api, query, field):
    response = api(tale["alice"]).get("/api/search", query)
    assert response.status_code == 400, response.content[:300]
    assert error_code(response) == "invalid"
    assert field in response.json()["error"]["details"]


def test_unknown_story_or_channel_is_404(tale, api):
    client = api(tale["alice"])
    assert error_code(client.get("/api/search", {"q": "a", "story": "nope"})) == "not_found"
    assert error_code(client.get("/api/search", {"q": "a", "story": "tale", "channel": "nope"})) == "not_found"
    # A query of no words still checks the story: 404 stays 404.
    assert error_code(client.get("/api/search", {"q": "*", "story": "nope"})) == "not_found"


def test_every_message_is_indexed_in_its_own_transaction(tale):
    message = post(tale["alice"], "tale", "general", payload={"text": "indexed at once"})
    assert MessageText.objects.get(message=message).text == "indexed at once"


def test_the_hooks_for_edits_and_deletions(tale, api):
    message = post(tale["alice"], "tale", "general", payload={"text": "a typo here"})
    client = api(tale["alice"])
    reindex_message(message, payload={"text": "a fixed text"})
    assert texts(search(client, q="typo")) == []
    assert [r["message"]["id"] for r in search(client, q="fixed")["results"]] == [str(message.pk)]
    reindex_message(message, payload={"text": "fixed again"})  # idempotent: one row per message
    assert MessageText.objects.filter(message=message).count() == 1
    unindex_message(message.pk)
    assert search(client, q="fixed")["results"] == []
    reindex_message(message)  # back, from its own payload
    assert [r["message"]["id"] for r in search(client, q="typo")["results"]] == [str(message.pk)]


def test_search_reindex_indexes_what_is_stored(tale, api, capsys):
    post(tale["alice"], "tale", "general", payload={"text": "reef one"})
    post(tale["alice"], "tale", "general", payload={"text": "reef two"})
    client = api(tale["alice"])
    MessageText.objects.all().delete()  # as before the search app existed
    assert search(client, q="reef")["results"] == []
    call_command("search_reindex")
    assert f"Indexed {Message.objects.count()} messages." in capsys.readouterr().out
    assert len(search(client, q="reef")["results"]) == 2
    call_command("search_reindex")  # again: nothing doubled
    assert MessageText.objects.count() == Message.objects.count()
    assert len(search(client, q="reef")["results"]) == 2


def test_the_ranking_query_uses_the_full_text_index(tale, api):
    """FTS5's MATCH drives the query on SQLite; the GIN index on PostgreSQL, given a table of some
    size where the word is rare (3,000 other messages, statistics fresh, no sequential scan)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from messaging.models import Channel

    message = post(tale["alice"], "tale", "general", payload={"text": "an indexed lighthouse"})
    general = Channel.objects.get(story=tale["story"], name="general")
    filler = Message.objects.bulk_create(
        Message(story=tale["story"], channel=general, seq=message.seq + i, sender=tale["alice"], msg_type="text",
                payload={"text": f"filler {i}"}, created_at=timezone.now()) for i in range(1, 3001))
    MessageText.objects.bulk_create(MessageText(message=m, text=m.payload["text"]) for m in filler)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    with CaptureQueriesContext(connection) as queries:
        search(api(tale["alice"]), q="lighthouse", story="tale")
    [ranked] = [q["sql"] for q in queries.captured_queries if "ORDER BY rank DESC" in q["sql"]]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # costs of a table this small are a coin toss
            cursor.execute("EXPLAIN " + ranked)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "search_messagetext_tsv_idx" in plan, plan
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + ranked)
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
            assert "SCAN search_messagetext_fts VIRTUAL TABLE INDEX" in plan, plan
            assert plan.index("search_messagetext_fts") < plan.index("messaging_message"), plan


def test_edits_and_deletions_in_the_log_change_what_search_finds(tale, api):
    """An edit is found by its new text (and the message by no older one); the edit itself is no
    result; a deleted message is found no more; a reaction changes nothing."""
    alice = tale["alice"]
    client = api(alice)
    message = post(alice, "tale", "general", payload={"text": "a tpyo in the lighthouse"})
    post(alice, "tale", "general", msg_type="edit", payload={"payload": {"text": "a fixed lighthouse"}},
         relates_to=str(message.pk))
    assert [r["message"]["id"] for r in search(client, q="lighthouse")["results"]] == [str(message.pk)]
    assert search(client, q="tpyo")["results"] == []
    [found] = search(client, q="fixed")["results"]
    # A result is the message as every read shows it: its current payload, marked edited.
    assert found["message"]["id"] == str(message.pk)
    assert found["message"]["payload"] == {"text": "a fixed lighthouse"} and found["message"]["edited_at"]
    post(alice, "tale", "general", msg_type="reaction", payload={"key": "lighthouse"}, relates_to=str(message.pk))
    [found] = search(client, q="lighthouse")["results"]
    assert found["message"]["id"] == str(message.pk)
    assert found["message"]["reactions"] == [{"key": "lighthouse", "count": 1, "me": True}]
    post(alice, "tale", "general", msg_type="delete", payload={}, relates_to=str(message.pk))
    assert search(client, q="lighthouse")["results"] == []
    assert search(client, q="fixed")["results"] == []
    # search_reindex rebuilds the same: the edit applied, the deleted message out, no relation indexed.
    other = post(alice, "tale", "general", payload={"text": "a second tpyo"})
    post(alice, "tale", "general", msg_type="edit", payload={"payload": {"text": "a second fix"}},
         relates_to=str(other.pk))
    call_command("search_reindex")
    assert MessageText.objects.count() == 1
    assert [r["message"]["id"] for r in search(client, q="second")["results"]] == [str(other.pk)]
    assert search(client, q="tpyo")["results"] == [] and search(client, q="lighthouse")["results"] == []
