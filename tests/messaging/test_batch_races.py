"""Batches, single posts and repeated batches at once on PostgreSQL: requests released together by a
barrier, each on its own thread and database connection. A batch takes the channel's row lock
before its seqs, so every stored message has its own seq, the seqs are 1..N with no gap, each
batch's messages are consecutive, and a batch repeated concurrently with the same ids is stored once
(the losers answer 200 with the stored messages, never a 500).

SQLite runs each write transaction as BEGIN IMMEDIATE, so the race cannot happen there: skipped on
SQLite (DATABASE_URL=postgres://... runs it)."""
import uuid

import pytest

from messaging.models import Message
from tests.concurrency import at_once, bearer_clients, postgres_race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

N = 8
URL = "/api/stories/tale/channels/general/messages"


@pytest.fixture(autouse=True)
def _postgres(settings):
    postgres_race(settings)


@pytest.fixture
def clients(make_user, make_story):
    alice, bob = make_user("alice"), make_user("bob")
    make_story(alice, slug="tale", editors=[bob])
    return bearer_clients([alice, bob], N)


def _seqs():
    return list(Message.objects.filter(channel__name="general").order_by("seq").values_list("seq", flat=True))


def test_batches_and_posts_at_once_get_gapless_seqs_and_keep_each_batch_together(clients):
    def call(i):
        if i % 2:
            return clients[i].post(URL, {"msg_type": "text", "payload": {"text": f"single {i}"}}, format="json")
        return clients[i].post(f"{URL}/batch", {"messages": [{"msg_type": "text", "payload": {"text": f"b{i}-{k}"}}
                                                             for k in range(10)]}, format="json")
    results, errors = at_once(N, call)
    assert errors == [None] * N
    assert [r.status_code for r in results] == [200 if i % 2 == 0 else 201 for i in range(N)]
    assert _seqs() == list(range(1, N // 2 * 11 + 1))
    for i in range(0, N, 2):
        seqs = [item["message"]["seq"] for item in results[i].json()["results"]]
        assert seqs == list(range(seqs[0], seqs[0] + 10)), seqs


def test_the_same_batch_sent_at_once_is_stored_once(clients):
    body = {"messages": [{"msg_type": "text", "payload": {"text": f"line {k}"}, "id": str(uuid.uuid4())}
                         for k in range(5)]}
    n = N // 2  # alice's clients (each its own token): the same sender, so the same ids are the same post
    results, errors = at_once(n, lambda i: clients[2 * i].post(f"{URL}/batch", body, format="json"))
    assert errors == [None] * n
    assert [r.status_code for r in results] == [200] * n
    statuses = sorted(tuple(item["status"] for item in r.json()["results"]) for r in results)
    assert statuses == [(200,) * 5] * (n - 1) + [(201,) * 5]
    assert _seqs() == [1, 2, 3, 4, 5]
