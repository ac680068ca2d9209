"""`access_channel` reads the channel, its story and the caller's roles with one hand-written
query (messaging/policies.py, mythline_site/rawrows.py). It must hand out the same, fully loaded
instances and the same roles as the ORM query it replaced, for every kind of caller."""
import pytest
from django.db.models import OuterRef, Subquery

from messaging.models import Channel, Membership
from messaging.policies import _CHANNEL_AND_STORY, _CHANNEL_TO_RENDER, access_channel, message_visible_to
from messaging.services import channel_create, member_add, message_post
from mythline_site.errors import Forbidden, NotFound
from stories.policies import role_subquery

pytestmark = pytest.mark.django_db


def orm_channel(user, slug, name):
    """The ORM's answer: what access_channel read before it wrote its own SQL."""
    return (Channel.objects.select_related("story", "created_by", "inbox_agent").order_by()
            .annotate(caller_role=role_subquery(user, "story_id"),
                      caller_member_role=Subquery(Membership.objects.filter(channel_id=OuterRef("pk"), user_id=user.pk)
                                                  .values("role")[:1]))
            .get(story__slug=slug, name=name))


def field_values(instance):
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


@pytest.fixture
def world(make_user, make_agent, make_story):
    owner, editor, viewer, member, outsider = (make_user(n) for n in ("olga", "eddie", "vera", "mia", "otto"))
    story = make_story(owner, slug="tale", premise="Lamps.", editors=[editor, member], viewers=[viewer])
    agent = make_agent("ada", stories=[story])
    cabal = channel_create(story=story, creator=editor, name="cabal", kind="private", topic="secrets",
                           idle_archive_seconds=3600)
    member_add(channel=cabal, user=member, by=editor)
    result = message_post(sender=owner, access=access_channel(owner, "tale", "general", for_write=True),
                          data={"msg_type": "text", "payload": {"text": "hi"}})
    return {"users": [owner, editor, viewer, member, outsider, agent], "story": story, "message": result.message}


@pytest.mark.parametrize("name", ["general", "cabal", "inbox.ada", "room"])
def test_same_instances_and_roles_as_the_orm(world, name, django_assert_num_queries):
    for user in world["users"]:
        expected = orm_channel(user, "tale", name)
        try:
            access = access_channel(user, "tale", name)
        except (NotFound, Forbidden):  # refused: the roles are still compared on the raw read below
            access = None
        for for_write in (False, True):
            channel, role, member_role = (_CHANNEL_AND_STORY if for_write else _CHANNEL_TO_RENDER).fetch(
                user, slug="tale", name=name)
            assert (role, member_role) == (expected.caller_role, expected.caller_member_role), (user, name)
            assert field_values(channel) == field_values(expected)
            with django_assert_num_queries(0):  # the story (and for reads the users) come loaded
                assert field_values(channel.story) == field_values(expected.story)
                if not for_write:
                    assert field_values(channel.created_by) == field_values(expected.created_by)
                    assert (channel.inbox_agent is None) == (expected.inbox_agent is None)
                    if channel.inbox_agent is not None:
                        assert field_values(channel.inbox_agent) == field_values(expected.inbox_agent)
        if access is not None:
            assert (access.role, access.member_role) == (expected.caller_role, expected.caller_member_role)


def test_loaded_values_have_python_types(world):
    channel = access_channel(world["users"][1], "tale", "cabal").channel
    assert channel.created_at.tzinfo is not None and channel.idle_archive_seconds == 3600
    assert channel.story.requires_approval is False and channel.story.created_at.tzinfo is not None
    assert channel.created_by.is_agent is False and channel.created_by.date_joined.tzinfo is not None


def test_unknown_channel_or_story_is_not_found(world):
    owner = world["users"][0]
    for slug, name in (("tale", "nope"), ("nope", "general"), ("tale", "general' OR '1'='1")):
        with pytest.raises(NotFound):
            access_channel(owner, slug, name)


def test_not_found_names_the_story_or_the_channel(world, make_story, api, django_assert_num_queries):
    """A story the caller may not see answers exactly as a story that does not exist ("No story"),
    for a channel that exists in it or not; "No channel" only inside a story the caller sees."""
    owner, outsider = world["users"][0], world["users"][4]
    make_story(owner, slug="hidden", visibility="private")

    def message(user, slug, name, **kwargs):
        with pytest.raises(NotFound) as raised:
            access_channel(user, slug, name, **kwargs)
        return raised.value.message

    for kwargs in ({}, {"for_write": True}, {"for_manage": True}):
        assert message(outsider, "nope", "general", **kwargs) == "No story 'nope'."
        assert message(outsider, "hidden", "general", **kwargs) == "No story 'hidden'."  # exists, private
        assert message(outsider, "hidden", "nope", **kwargs) == "No story 'hidden'."
        assert message(outsider, "tale", "nope", **kwargs) == "No channel 'nope' in story 'tale'."
        assert message(outsider, "tale", "cabal", **kwargs) == "No channel 'cabal' in story 'tale'."  # unreadable
        assert message(owner, "hidden", "nope", **kwargs) == "No channel 'nope' in story 'hidden'."
    with django_assert_num_queries(2):  # the story lookup only when the channel query found nothing
        message(outsider, "tale", "nope")
    with django_assert_num_queries(1):
        message(outsider, "hidden", "general")
    with django_assert_num_queries(1):
        access_channel(outsider, "tale", "general")
    # Over REST: the same status, code and words for a private story as for a missing one.
    client = api(outsider)
    bodies = [client.get(f"/api/stories/{slug}/channels/general/messages").json() for slug in ("nope", "hidden")]
    assert bodies[0]["error"]["code"] == "not_found"
    assert bodies[0]["error"]["message"].replace("nope", "X") == bodies[1]["error"]["message"].replace("hidden", "X")
    assert bodies[0]["error"]["details"] == bodies[1]["error"]["details"]


def test_message_visible_to_follows_the_channel(world, make_user):
    message = world["message"]
    assert message_visible_to(message, world["users"][4])  # public story, public channel
    hidden = message_post(sender=world["users"][1], access=access_channel(world["users"][1], "tale", "cabal", for_write=True),
                          data={"msg_type": "text", "payload": {"text": "psst"}}).message
    assert message_visible_to(hidden, world["users"][3]) and not message_visible_to(hidden, world["users"][4])
