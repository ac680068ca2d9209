"""A batch posted into an agent's inbox (POST .../messages/batch): one delivery per message, as for
single posts, at a cost that does not grow with the batch: the agent's webhook is looked up once and
the deliveries are inserted together."""
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.webhooks.conftest import register
from webhooks.models import Webhook

URL = "/api/stories/tale/channels/inbox.scout/messages/batch"


def _batch(client, words):
    with CaptureQueriesContext(connection) as ctx:
        r = client.post(URL, {"messages": [{"msg_type": "text", "payload": {"text": w}} for w in words]},
                        format="json")
    assert r.status_code == 200, r.content
    assert [item["status"] for item in r.json()["results"]] == [201] * len(words)
    return [item["message"]["id"] for item in r.json()["results"]], ctx


def test_a_batch_into_an_inbox_costs_the_same_queries_whatever_its_size(world, receiver):
    register(world["scout_api"], receiver.url)
    alice = world["api"](world["alice"])
    first, _ = _batch(alice, ["Start here."])  # a token's first use also records it: not compared
    two, small = _batch(alice, ["Look north.", "Then east."])
    ten, large = _batch(alice, [f"Clue number {n}." for n in range(10)])
    assert len(large) == len(small), [q["sql"] for q in large.captured_queries]
    webhook_table = Webhook._meta.db_table
    assert len([q for q in large.captured_queries if f'FROM "{webhook_table}"' in q["sql"]]) == 1
    # ... and every message is a delivery to the agent, newest first, as for single posts.
    deliveries = world["scout_api"].get("/api/agents/me/webhook/deliveries?limit=50").json()["results"]
    assert [d["message_id"] for d in deliveries] == list(reversed(first + two + ten))
    assert {d["status"] for d in deliveries} == {"pending"}


def test_a_batch_into_an_inbox_without_a_webhook_looks_it_up_once(world):
    alice = world["api"](world["alice"])
    _batch(alice, ["Start here."])  # a token's first use also records it: not compared
    _, small = _batch(alice, ["Look north.", "Then east."])
    _, large = _batch(alice, [f"Clue number {n}." for n in range(10)])
    assert len(large) == len(small)
    webhook_table = Webhook._meta.db_table
    assert len([q for q in large.captured_queries if f'FROM "{webhook_table}"' in q["sql"]]) == 1
