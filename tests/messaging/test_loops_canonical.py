"""Loop prevention's comparison keys (messaging/loops.py) are the same whether they come from the
payload as posted (a process that stored it keeps them) or as the database hands it back (any other
process): a JSON number is one number, however it was written."""
import pytest

from messaging import loops

URL = "/api/stories/tale/channels/general/messages"


@pytest.mark.parametrize("posted, stored", [
    ({"n": 1e16}, {"n": 10_000_000_000_000_000}),
    ({"n": 1.0, "m": [2.0, {"k": -0.0}]}, {"m": [2, {"k": 0}], "n": 1}),
    ({"n": 1e300}, {"n": 10 ** 300}),  # the number its JSON text names, not the float's binary value
    ({"n": 1.5e300}, {"n": 15 * 10 ** 299}),
])
def test_an_integral_float_and_the_integer_it_names_have_one_canonical_form(posted, stored):
    assert loops._canonical(posted) == loops._canonical(stored)
    assert loops._keys_of(posted) == loops._keys_of(stored)


@pytest.mark.parametrize("one, other", [
    ({"n": 1.5}, {"n": 1}),
    ({"n": 1.5}, {"n": 2}),
    ({"n": True}, {"n": 1}),
    ({"n": 1}, {"n": "1"}),
    ({"n": float(2 ** 53)}, {"n": 2 ** 53 + 1}),
    ({"n": 0.1}, {"n": 0}),
])
def test_different_values_keep_different_canonical_forms(one, other):
    assert loops._canonical(one) != loops._canonical(other)


@pytest.fixture
def bard(make_user, make_story, make_agent, api):
    story = make_story(make_user("alice"), slug="tale")
    return api(make_agent("bard", capabilities=["narration"], stories=[story]))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kept", [True, False], ids=["keys-kept-by-this-process", "keys-read-back"])
def test_a_repeat_is_found_whichever_process_stored_the_first(bard, kept):
    """1e16 and 10000000000000000 are the same payload: refused as a repeat whether this process
    stored the first post (its keys kept from the payload as posted) or another one did (read back
    from the database, where it is an integer)."""
    first = bard.post(URL, {"msg_type": "narration", "payload": {"text": "The tide.", "height": 1e16}},
                      format="json")
    assert first.status_code == 201, first.content
    if not kept:
        loops._KEYS.clear()  # as if another process had stored it
    again = bard.post(URL, {"msg_type": "narration", "payload": {"text": "The tide.", "height": 10 ** 16}},
                      format="json")
    assert again.status_code == 422, again.content
    assert again.json()["error"]["details"]["policy"] == "duplicate_payload"
    assert again.json()["error"]["details"]["previous"] == first.json()["id"]


@pytest.mark.django_db
@pytest.mark.parametrize("first, again, status", [
    ({"text": "x", "n": 1e23}, {"text": "x", "n": 1e23}, 200),  # Postgres gives back 10**23: the same post
    ({"text": "x", "flag": True}, {"text": "x", "flag": 1}, 409),  # True == 1 in Python, not in JSON
    ({"text": "x", "n": 2.0}, {"text": "x", "n": 2}, 200),
])
def test_a_repeat_of_an_id_is_the_same_post_when_its_payload_is_the_same_json(first, again, status, bard):
    message_id = "8c3f8a52-6c1d-4c3e-9a4e-0b6f1f4f2a11"
    created = bard.post(URL, {"id": message_id, "msg_type": "narration", "payload": first}, format="json")
    assert created.status_code == 201, created.content
    repeat = bard.post(URL, {"id": message_id, "msg_type": "narration", "payload": again}, format="json")
    assert repeat.status_code == status, repeat.content
    if status == 200:
        assert repeat.json()["seq"] == created.json()["seq"]
