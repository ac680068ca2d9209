"""The stream services: open checks what a post checks, append keeps order and is safe to retry,
complete stores one message with the stream's id through every post policy, cancel and the idle
sweep end it; every refusal with the SPEC's codes."""
import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.models import Message
from messaging.services import channel_set_archived, member_remove
from messaging.policies import access_channel
from messaging.services import message_post
from mythline_site.errors import Archived, Conflict, Forbidden, Invalid, NotFound, PayloadTooLarge, RateLimited
from streaming import services
from stories.models import Participant
from stories.services import participant_add, participant_remove
from streaming.models import Stream
from tests.messaging.test_services import _listen, _receive

pytestmark = pytest.mark.django_db


def open_(user, channel="general", **data):
    data.setdefault("msg_type", "narration")
    return services.stream_open(sender=user, story="tale", channel=channel, data=data)[0]


def test_a_stream_grows_and_completes_into_one_message_with_its_id(tale, django_capture_on_commit_callbacks):
    bob = tale["bob"]
    with django_capture_on_commit_callbacks(execute=True):
        stream = open_(bob, payload={"mood": "grim"})
        services.stream_append(user=bob, stream_id=stream.pk, text="The lamp ")
        services.stream_append(user=bob, stream_id=str(stream.pk), text="guttered.", offset=9)
        result = services.stream_complete(user=bob, stream_id=stream.pk)
    assert result.created and result.message.pk == stream.pk
    assert result.message.payload == {"mood": "grim", "text": "The lamp guttered."}
    assert result.data["seq"] == 1 and result.data["msg_type"] == "narration"
    stream.refresh_from_db()
    assert stream.status == "completed" and stream.message_id == stream.pk
    # Completing again answers with the same message; nothing new is stored.
    again = services.stream_complete(user=bob, stream_id=stream.pk)
    assert not again.created and again.message.pk == stream.pk
    assert Message.objects.count() == 1


def test_append_offsets_make_retries_safe_and_refuse_gaps(tale):
    bob = tale["bob"]
    stream = open_(bob)
    services.stream_append(user=bob, stream_id=stream.pk, text="abc", offset=0)
    assert services.stream_append(user=bob, stream_id=stream.pk, text="abc", offset=0).text == "abc"  # a retry
    assert services.stream_append(user=bob, stream_id=stream.pk, text="bc", offset=1).text == "abc"
    with pytest.raises(Conflict) as gap:
        services.stream_append(user=bob, stream_id=stream.pk, text="x", offset=5)
    assert gap.value.details == {"offset": 5, "length": 3}
    with pytest.raises(Conflict):  # an overlap with other text
        services.stream_append(user=bob, stream_id=stream.pk, text="zz", offset=1)
    assert services.stream_append(user=bob, stream_id=stream.pk, text="é😀", offset=3).text == "abcé😀"
    assert len(Stream.objects.get().text) == 5  # characters (code points)


def test_complete_takes_a_final_payload_and_runs_the_post_checks(tale):
    bob = tale["bob"]
    stream = open_(bob, msg_type="dialogue", field="line", payload={"character": "Mara"})
    services.stream_append(user=bob, stream_id=stream.pk, text="Who lit it?")
    result = services.stream_complete(user=bob, stream_id=stream.pk,
                                      payload={"character": "Mara", "direction": "whispering"})
    assert result.message.payload == {"character": "Mara", "direction": "whispering", "line": "Who lit it?"}
    # A final payload the schema refuses is refused as a post; the stream stays open.
    other = open_(bob, msg_type="dialogue", field="line", payload={"character": "Ned"})
    services.stream_append(user=bob, stream_id=other.pk, text="Aye.")
    with pytest.raises(Invalid) as bad:
        services.stream_complete(user=bob, stream_id=other.pk, payload={"character": 3})
    assert "payload.character" in bad.value.details
    assert Stream.objects.get(pk=other.pk).status == "open"


def test_an_empty_stream_cannot_complete_a_type_that_needs_text(tale):
    bob = tale["bob"]
    stream = open_(bob)
    with pytest.raises(Invalid) as empty:
        services.stream_complete(user=bob, stream_id=stream.pk)
    assert empty.value.details == {"payload.text": "must not be empty"}


def test_open_validates_as_a_post(tale):
    bob = tale["bob"]
    cases = [
        ({"msg_type": "Bad Type"}, "msg_type"),
        ({"msg_type": "narration", "field": "title"}, "field"),  # narration has only `text`
        ({"msg_type": "dialogue"}, "field"),  # `text` is no field of dialogue
        ({"msg_type": "dialogue", "field": "character"}, "field"),  # a short field is not streamed
        ({"msg_type": "dialogue", "field": "line"}, "payload.character"),  # required, missing
        ({"msg_type": "narration", "payload": {"text": "x"}}, "payload.text"),  # the streamed field
        ({"msg_type": "narration", "payload": []}, "payload"),
        ({"msg_type": "narration", "colour": "red"}, "colour"),
        ({"msg_type": "narration", "relates_to": str(uuid.uuid4())}, "relates_to"),
        ({"msg_type": "edit"}, "msg_type"),
        ({"msg_type": "narration", "reply_to": str(uuid.uuid4())}, "reply_to"),
        ({"msg_type": "narration", "audience": ["nobody"]}, "audience"),
        ({"msg_type": "narration", "id": "not-a-uuid"}, "id"),
        ({"msg_type": "narration", "correlation_id": 7}, "correlation_id"),
    ]
    for data, field in cases:
        with pytest.raises(Invalid) as refused:
            services.stream_open(sender=bob, story="tale", channel="general", data=data)
        assert field in refused.value.details, (data, refused.value.details)
    # Any field of a custom type.
    assert open_(bob, msg_type="thought", field="musing").field == "musing"
    assert not Stream.objects.exclude(msg_type="thought").exists()


def test_open_checks_the_channel_as_a_post(tale):
    with pytest.raises(Forbidden):
        open_(tale["vera"])  # a viewer
    with pytest.raises(Forbidden):
        open_(tale["otto"])  # an outsider in a public story
    with pytest.raises(NotFound):
        open_(tale["narrator"], channel="cabal")  # not a member
    assert open_(tale["carol"], channel="cabal").channel.name == "cabal"
    channel = tale["cabal"]
    channel.archived_at = timezone.now()
    channel.save()
    with pytest.raises(Archived):
        open_(tale["bob"], channel="cabal")


def test_only_the_opener_writes_and_managers_cancel(tale):
    bob, carol, alice = tale["bob"], tale["carol"], tale["alice"]
    stream = open_(bob)
    with pytest.raises(Forbidden):
        services.stream_append(user=carol, stream_id=stream.pk, text="mine")
    with pytest.raises(Forbidden):
        services.stream_complete(user=carol, stream_id=stream.pk)
    with pytest.raises(Forbidden):
        services.stream_cancel(user=carol, stream_id=stream.pk)
    with pytest.raises(NotFound):
        services.stream_append(user=bob, stream_id="nope", text="x")
    # In the private channel, someone who may not read it does not learn the stream exists.
    secret = open_(carol, channel="cabal")
    with pytest.raises(NotFound):
        services.stream_cancel(user=tale["narrator"], stream_id=secret.pk)
    # The story owner cancels; cancelling again is a no-op; then nothing else is allowed.
    assert services.stream_cancel(user=alice, stream_id=stream.pk).status == "cancelled"
    assert services.stream_cancel(user=bob, stream_id=stream.pk).status == "cancelled"
    with pytest.raises(Conflict):
        services.stream_append(user=bob, stream_id=stream.pk, text="late")
    with pytest.raises(Conflict):
        services.stream_complete(user=bob, stream_id=stream.pk)
    # The channel's owner (bob created cabal) cancels carol's stream there.
    assert services.stream_cancel(user=bob, stream_id=secret.pk).status == "cancelled"


def test_after_complete_no_append_nor_cancel(tale):
    bob = tale["bob"]
    stream = open_(bob)
    services.stream_append(user=bob, stream_id=stream.pk, text="Done.")
    services.stream_complete(user=bob, stream_id=stream.pk)
    for call in (lambda: services.stream_append(user=bob, stream_id=stream.pk, text="more"),
                 lambda: services.stream_cancel(user=bob, stream_id=stream.pk)):
        with pytest.raises(Conflict) as done:
            call()
        assert done.value.details["status"] == "completed"


def test_a_demoted_opener_can_write_no_more(tale):
    bob = tale["bob"]
    stream = open_(bob)
    Participant.objects.filter(story=tale["story"], user=bob).update(role="viewer")
    with pytest.raises(Forbidden):
        services.stream_append(user=bob, stream_id=stream.pk, text="x")


def test_the_text_is_capped_at_the_payload_limit(tale, settings):
    settings.MYTHLINE_MAX_PAYLOAD_BYTES = 100
    bob = tale["bob"]
    stream = open_(bob)
    services.stream_append(user=bob, stream_id=stream.pk, text="x" * 80)
    with pytest.raises(PayloadTooLarge) as big:
        services.stream_append(user=bob, stream_id=stream.pk, text="y" * 30)
    assert big.value.details["limit"] == 100 and big.value.details["length"] == 80
    assert Stream.objects.get().text == "x" * 80
    with pytest.raises(PayloadTooLarge):
        open_(bob, payload={"notes": "z" * 200})


def test_ids_are_the_final_messages_and_cannot_be_taken(tale):
    bob, carol = tale["bob"], tale["carol"]
    chosen = uuid.uuid4()
    stream = open_(bob, id=str(chosen))
    assert stream.pk == chosen
    # A retried open answers with the same stream.
    again, created = services.stream_open(sender=bob, story="tale", channel="general",
                                          data={"msg_type": "narration", "id": str(chosen)})
    assert again.pk == chosen and not created
    with pytest.raises(Conflict):  # someone else's stream id
        open_(carol, id=str(chosen))
    # Readers see the id live: nobody else may post a message under it first.
    access = access_channel(carol, "tale", "general", for_write=True)
    with pytest.raises(Conflict) as taken:
        message_post(sender=carol, access=access, data={"msg_type": "text", "payload": {"text": "x"},
                                                        "id": str(chosen)})
    assert taken.value.details == {"id": "already taken"}
    # A message id is no stream id.
    posted = message_post(sender=carol, access=access, data={"msg_type": "text", "payload": {"text": "y"}})
    with pytest.raises(Conflict):
        open_(bob, id=str(posted.message.pk))


def test_open_streams_per_sender_are_capped(tale, settings):
    settings.MYTHLINE_STREAM_MAX_OPEN = 2
    bob = tale["bob"]
    first = open_(bob)
    open_(bob)
    with pytest.raises(RateLimited):
        open_(bob)
    services.stream_cancel(user=bob, stream_id=first.pk)
    open_(bob)


def test_idle_streams_are_cancelled_lazily_and_by_the_sweep(tale, settings, django_capture_on_commit_callbacks):
    bob = tale["bob"]
    stream, other = open_(bob), open_(bob)
    old = timezone.now() - timedelta(seconds=settings.MYTHLINE_STREAM_IDLE_SECONDS + 1)
    Stream.objects.filter(pk=stream.pk).update(updated_at=old)
    access = access_channel(bob, "tale", "general")
    assert [s.pk for s in services.readable_open_streams(access, bob)] == [other.pk]
    assert Stream.objects.get(pk=stream.pk).status == "cancelled"
    with pytest.raises(Conflict):
        services.stream_append(user=bob, stream_id=stream.pk, text="x")
    Stream.objects.filter(pk=other.pk).update(updated_at=old)
    with pytest.raises(Conflict):  # idle when written to: cancelled then, and it stays cancelled
        services.stream_append(user=bob, stream_id=other.pk, text="x")
    assert Stream.objects.get(pk=other.pk).status == "cancelled"
    third = open_(bob)
    Stream.objects.filter(pk=third.pk).update(updated_at=old)
    assert services.cancel_idle_streams() == 1
    assert services.cancel_idle_streams() == 0


def test_appends_and_opens_cost_the_post_budget(tale, settings):
    settings.MYTHLINE_RATES = {**settings.MYTHLINE_RATES, "post": ("1/h", 2)}
    bob = tale["bob"]
    stream = open_(bob)
    services.stream_append(user=bob, stream_id=stream.pk, text="a")
    services.stream_append(user=bob, stream_id=stream.pk, text="b")
    with pytest.raises(RateLimited):
        services.stream_append(user=bob, stream_id=stream.pk, text="c")


def stream_events(layer, name, count):
    """The next `count` stream events on the listened channel group, as (event, id, status)."""
    out = []
    while len(out) < count:
        event = _receive(layer, name)
        if event["type"] == "stream.event":
            frame = json.loads(event["frame"])
            out.append((event["event"], event["id"], frame.get("status")))
    return out


@pytest.mark.parametrize("write", ["append", "complete"])
def test_a_write_to_an_idle_stream_is_refused_and_the_cancel_stays(tale, settings, write,
                                                                  django_capture_on_commit_callbacks):
    """The 409 rolls back the write, not the idle cancel: the row is cancelled and its
    `stream.ended` goes out, as protocol.md says."""
    bob = tale["bob"]
    stream = open_(bob)
    services.stream_append(user=bob, stream_id=stream.pk, text="So far")
    old = timezone.now() - timedelta(seconds=settings.MYTHLINE_STREAM_IDLE_SECONDS + 1)
    Stream.objects.filter(pk=stream.pk).update(updated_at=old)
    layer, name = _listen(tale["story"].channels.get(name="general").group_name)
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(Conflict) as gone:
            if write == "append":
                services.stream_append(user=bob, stream_id=stream.pk, text="x")
            else:
                services.stream_complete(user=bob, stream_id=stream.pk)
    assert gone.value.details == {"status": "cancelled", "length": 6}
    assert Stream.objects.get(pk=stream.pk).status == "cancelled"
    assert stream_events(layer, name, 1) == [("stream.ended", str(stream.pk), "cancelled")]
    assert not Message.objects.exists()


def test_the_opener_cancels_without_write_access(tale):
    """Demoted, removed from the private channel, the channel archived (changed behind the services'
    back here, so only the cancel's own rule is tested): the opener still cancels their stream."""
    bob, carol = tale["bob"], tale["carol"]
    demoted, removed, archived = open_(bob), open_(carol, channel="cabal"), open_(bob, channel="cabal")
    Participant.objects.filter(story=tale["story"], user=bob).update(role="viewer")
    assert services.stream_cancel(user=bob, stream_id=demoted.pk).status == "cancelled"
    tale["cabal"].memberships.filter(user=carol).delete()
    assert services.stream_cancel(user=carol, stream_id=removed.pk).status == "cancelled"
    Participant.objects.filter(story=tale["story"], user=bob).update(role="editor")
    tale["cabal"].archived_at = timezone.now()
    tale["cabal"].save()
    assert services.stream_cancel(user=bob, stream_id=archived.pk).status == "cancelled"
    # Only the opener: a reader who may not manage the channel is still refused.
    other = open_(carol)
    with pytest.raises(Forbidden):
        services.stream_cancel(user=tale["vera"], stream_id=other.pk)


def test_losing_write_access_cancels_the_openers_streams_there(tale, django_capture_on_commit_callbacks):
    """The change itself cancels them (messaging/rights.py): demoted, removed from the story or the
    private channel, the channel archived. Others' streams, and streams elsewhere, stay open."""
    bob, carol, alice, narrator = tale["bob"], tale["carol"], tale["alice"], tale["narrator"]
    story, cabal = tale["story"], tale["cabal"]
    layer, name = _listen(cabal.group_name)

    def status(stream):
        return Stream.objects.get(pk=stream.pk).status

    carols_cabal, carols_general, bobs_cabal = open_(carol, channel="cabal"), open_(carol), open_(bob, channel="cabal")
    with django_capture_on_commit_callbacks(execute=True):
        member_remove(channel=cabal, user=carol, by=bob)
    assert (status(carols_cabal), status(carols_general), status(bobs_cabal)) == ("cancelled", "open", "open")
    assert stream_events(layer, name, 1) == [("stream.ended", str(carols_cabal.pk), "cancelled")]

    participant_add(story=story, user=carol, role="viewer", by=alice)  # demoted
    assert status(carols_general) == "cancelled"
    participant_add(story=story, user=carol, role="editor", by=alice)
    bobs_general, narrators = open_(bob), open_(narrator)
    participant_remove(story=story, user=bob, by=alice)
    assert (status(bobs_general), status(bobs_cabal), status(narrators)) == ("cancelled", "cancelled", "open")

    participant_add(story=story, user=bob, role="editor", by=alice)
    again = open_(carol)
    channel_set_archived(channel=story.channels.get(name="general"), by=alice, archived=True)
    assert (status(again), status(narrators)) == ("cancelled", "cancelled")


def test_the_opener_cannot_post_under_an_open_streams_id(tale):
    """Its complete must be the one message with that id: a post of the opener's own under it is
    refused while the stream is open; the complete then stores the message as usual."""
    bob = tale["bob"]
    stream = open_(bob)
    services.stream_append(user=bob, stream_id=stream.pk, text="Mine.")
    access = access_channel(bob, "tale", "general", for_write=True)
    with pytest.raises(Conflict) as taken:
        message_post(sender=bob, access=access, data={"msg_type": "narration", "payload": {"text": "early"},
                                                      "id": str(stream.pk)})
    assert taken.value.details == {"id": "already taken"}
    result = services.stream_complete(user=bob, stream_id=stream.pk)
    assert result.created and result.message.payload == {"text": "Mine."}
    # Once completed, a post with its id is a repeat of that message (nothing new is stored).
    repeat = message_post(sender=bob, access=access, data={"msg_type": "narration", "payload": {"text": "Mine."},
                                                           "id": str(stream.pk)})
    assert not repeat.created and Message.objects.count() == 1


def test_a_repeated_open_must_match_audience_reply_to_and_correlation(tale):
    bob, carol = tale["bob"], tale["carol"]
    access = access_channel(carol, "tale", "general", for_write=True)
    earlier = message_post(sender=carol, access=access, data={"msg_type": "text", "payload": {"text": "Q?"}})
    chosen = str(uuid.uuid4())
    base = {"msg_type": "narration", "id": chosen, "audience": "humans", "reply_to": str(earlier.message.pk),
            "correlation_id": "c-1"}
    open_(bob, **base)
    assert not services.stream_open(sender=bob, story="tale", channel="general", data=dict(base))[1]
    for change in ({"audience": "all"}, {"audience": ["carol"]}, {"reply_to": None}, {"correlation_id": "c-2"},
                   {"correlation_id": None}):
        data = {k: v for k, v in {**base, **change}.items() if v is not None}
        with pytest.raises(Conflict) as reused:
            services.stream_open(sender=bob, story="tale", channel="general", data=data)
        assert reused.value.details == {"id": chosen}, change
    assert Stream.objects.count() == 1


def test_a_refused_open_costs_no_budget(tale, settings):
    settings.MYTHLINE_RATES = {**settings.MYTHLINE_RATES, "post": ("1/h", 1)}
    bob, narrator = tale["bob"], tale["narrator"]
    for _ in range(3):  # refused before the budget is charged
        with pytest.raises(NotFound):
            open_(bob, channel="nowhere")
        with pytest.raises(NotFound):
            open_(narrator, channel="cabal")  # not a member
    open_(bob)  # the budget is whole: a burst of 1 passes two
    open_(bob)
    with pytest.raises(RateLimited):
        open_(bob)
