"""Input and output shapes of the messaging API.

Messages are rendered by a plain function (hot path: every post, every read, every broadcast).
The DRF serializers below describe the same shapes for the OpenAPI schema and validate the
smaller, colder inputs; a test checks that the function and the schema agree.
"""
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from messaging.models import MSG_TYPE_RE, Channel, Message
from messaging.schemas import BUILT_IN_TYPES, payload_schema
from mythline_site.api import OneOfField


def iso(dt):
    return None if dt is None else dt.isoformat().replace("+00:00", "Z")


def sender_json(user) -> dict:
    return {"username": user.username, "display_name": user.display_name or user.username,
            "kind": "agent" if user.is_agent else "human"}


def message_json(message: Message, *, story_slug: str, channel_name: str, sender=None, view=None) -> dict:
    """The message as stored, plus, with `view` (messaging.relations.views_for), its aggregated
    view: `edited_at`, `deleted`, `reactions`, and the current `payload` (the latest edit's; null
    once deleted). Without `view` (the export: the log as stored) the payload is the original."""
    sender = sender or message.sender
    data = {
        "id": str(message.id),
        "story": story_slug,
        "channel": channel_name,
        "seq": message.seq,
        "sender": sender_json(sender),
        "msg_type": message.msg_type,
        "payload": message.payload,
        "reply_to": str(message.reply_to_id) if message.reply_to_id else None,
        "correlation_id": message.correlation_id,
        "audience": message.audience,
        "created_at": iso(message.created_at),
        "relates_to": str(message.relates_to_id) if message.relates_to_id else None,
        "rel_type": message.rel_type,
        "mentions": message.mentions or [],
    }
    if view is not None:
        data["edited_at"], data["deleted"], data["reactions"] = view["edited_at"], view["deleted"], view["reactions"]
        if "payload" in view:
            data["payload"] = view["payload"]
    return data


def message_json_full(message: Message, *, view=None) -> dict:
    """For messages fetched with select_related('story', 'channel', 'sender')."""
    return message_json(message, story_slug=message.story.slug, channel_name=message.channel.name,
                        sender=message.sender, view=view)


def channel_json(channel: Channel, *, story_slug: str | None = None) -> dict:
    return {
        "story": story_slug or channel.story.slug,
        "name": channel.name,
        "kind": channel.kind,
        "topic": channel.topic,
        "archived": channel.archived_at is not None,
        "archived_at": iso(channel.archived_at),
        "last_seq": channel.last_seq,
        "created_by": channel.created_by.username,
        "created_at": iso(channel.created_at),
        "idle_archive_seconds": channel.idle_archive_seconds,
        "inbox_of": channel.inbox_agent.username if channel.inbox_agent_id else None,
    }


# --- Schema-and-validation serializers ------------------------------------------------------

class SenderSerializer(serializers.Serializer):
    username = serializers.CharField()
    display_name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["human", "agent"])


class ReactionSerializer(serializers.Serializer):
    key = serializers.CharField()
    count = serializers.IntegerField()
    me = serializers.BooleanField(allow_null=True, help_text="Whether the reader reacted; null in a live "
                                                             "frame's `target` (sent to everyone)")


class MessageSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    story = serializers.CharField()
    channel = serializers.CharField()
    seq = serializers.IntegerField()
    sender = SenderSerializer()
    msg_type = serializers.CharField()
    payload = serializers.DictField(allow_null=True, help_text="null in the aggregated view of a deleted message")
    reply_to = serializers.UUIDField(allow_null=True)
    correlation_id = serializers.CharField(allow_null=True)
    audience = serializers.JSONField(help_text="'all' | 'agents' | 'humans' | list of usernames")
    created_at = serializers.DateTimeField()
    relates_to = serializers.UUIDField(allow_null=True, help_text="For an edit, deletion or reaction: the message "
                                                                  "it relates to (same channel)")
    rel_type = serializers.ChoiceField(choices=Message.RelType.choices, allow_null=True)
    mentions = serializers.ListField(child=serializers.CharField(), help_text="The usernames it mentions: its "
                                     "`mentions` list and the participants its text @names (as posted)")
    edited_at = serializers.DateTimeField(allow_null=True, required=False,
                                          help_text="Aggregated view (reads, live frames): the latest edit's time")
    deleted = serializers.BooleanField(required=False, help_text="Aggregated view: deleted (then payload is null)")
    reactions = ReactionSerializer(many=True, required=False, help_text="Aggregated view: reactions by key")


class MessageInSerializer(serializers.Serializer):
    """Documentation of the post body; validation is in messaging.services.clean_message_input."""
    msg_type = serializers.RegexField(r"^[a-z][a-z0-9_.-]{0,63}$")
    payload = serializers.DictField()
    id = serializers.UUIDField(required=False)
    reply_to = serializers.UUIDField(required=False, allow_null=True)
    correlation_id = serializers.CharField(required=False, allow_null=True, max_length=128)
    audience = serializers.JSONField(required=False, help_text="'all' | 'agents' | 'humans' | list of usernames")
    relates_to = serializers.UUIDField(required=False, allow_null=True,
                                       help_text="With msg_type edit, delete or reaction: the message it relates to")
    mentions = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True, max_length=50,
                                     help_text="Usernames of participants to notify (at most 50), besides the "
                                               "@names of the text")


def _schema_field(base, schema: dict, **kwargs) -> serializers.Field:
    """A `base` field whose OpenAPI schema is `schema` (kwargs: extend_schema_field's, e.g. component_name)."""
    return extend_schema_field(schema, **kwargs)(type(base.__name__, (base,), {}))()


def _message_in(msg_type: str | None) -> type[MessageInSerializer]:
    """The post body for one built-in msg_type (its payload schema from messaging/schemas.py, as the
    component `<Type>Payload`), or, for None, for any other msg_type (any object)."""
    if msg_type is None:
        name, doc = "Other", "A post of any other msg_type: its payload is any JSON object."
        type_field = _schema_field(serializers.JSONField, {
            "type": "string", "pattern": MSG_TYPE_RE, "not": {"enum": list(BUILT_IN_TYPES)},
            "description": "Any msg_type but the built-in ones"})
        payload = serializers.DictField(help_text="Any JSON object")
    else:
        name, doc = "".join(part.title() for part in msg_type.split("_")), f"A post of msg_type '{msg_type}'."
        type_field = _schema_field(serializers.JSONField, {"type": "string", "enum": [msg_type]})
        payload = _schema_field(serializers.DictField, payload_schema(msg_type, openapi=True),
                                component_name=f"{name}Payload")
    return type(f"MessageIn{name}Serializer", (MessageInSerializer,),
                {"__module__": __name__, "__doc__": doc, "msg_type": type_field, "payload": payload})


# The post body in the OpenAPI schema: one component per built-in msg_type (MessageIn<Type>, its
# payload <Type>Payload), and MessageInOther for every other type; exactly one matches a body.
MESSAGE_IN = PolymorphicProxySerializer(
    component_name="MessageIn", resource_type_field_name=None,
    serializers=[_message_in(msg_type) for msg_type in BUILT_IN_TYPES] + [_message_in(None)])


class MessagePageSerializer(serializers.Serializer):
    results = MessageSerializer(many=True)
    next_after = serializers.IntegerField(allow_null=True)
    next_before = serializers.IntegerField(allow_null=True, required=False)
    last_seq = serializers.IntegerField()


class RouteResultSerializer(serializers.Serializer):
    results = MessageSerializer(many=True)
    routed_to = serializers.ListField(child=serializers.CharField())


class BatchInSerializer(serializers.Serializer):
    messages = serializers.ListField(
        child=serializers.DictField(), min_length=1,
        help_text="1 to MYTHLINE_BATCH_MAX_MESSAGES (default 100) message bodies, each as for one post (MessageIn); "
                  "give each an `id` to make a retry of the batch safe.")


class BatchItemSerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="201 stored, 200 a repeat of an earlier post, else the error's status")
    message = MessageSerializer(required=False, help_text="With 201 and 200: the message, as one post answers it")
    error = serializers.DictField(required=False, help_text="Otherwise: {code, message, details}, as one post's error")


class BatchResultSerializer(serializers.Serializer):
    results = BatchItemSerializer(many=True, help_text="One per message of the batch, in its order")


class ActivityPageSerializer(serializers.Serializer):
    results = MessageSerializer(many=True)
    next_after = serializers.CharField()


class ChannelSerializer(serializers.Serializer):
    story = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Channel.Kind.choices)
    topic = serializers.CharField()
    archived = serializers.BooleanField()
    archived_at = serializers.DateTimeField(allow_null=True)
    last_seq = serializers.IntegerField()
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    idle_archive_seconds = serializers.IntegerField(allow_null=True)
    inbox_of = serializers.CharField(allow_null=True)


class ChannelInSerializer(serializers.Serializer):
    name = serializers.RegexField(r"^[a-z0-9][a-z0-9._-]{0,63}$",
                                  error_messages={"invalid": "Use 1-64 lowercase letters, digits, '.', '_' or '-'."})
    kind = OneOfField(choices=["public", "private", "presence"])
    topic = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    idle_archive_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=10 ** 9)


class ChannelPatchSerializer(serializers.Serializer):
    topic = serializers.CharField(required=False, allow_blank=True, max_length=500)
    archived = serializers.BooleanField(required=False)
    idle_archive_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=10 ** 9)


class MemberInSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField()
    display_name = serializers.CharField()
    kind = serializers.CharField()
    role = serializers.CharField()
    joined_at = serializers.DateTimeField()


class AckInSerializer(serializers.Serializer):
    seq = serializers.IntegerField(min_value=0)


class AckSerializer(serializers.Serializer):
    story = serializers.CharField()
    channel = serializers.CharField()
    read_seq = serializers.IntegerField()
    last_seq = serializers.IntegerField()


class InboxRowSerializer(serializers.Serializer):
    story = serializers.CharField()
    channel = serializers.CharField()
    kind = serializers.CharField()
    last_seq = serializers.IntegerField()
    read_seq = serializers.IntegerField()
    unread = serializers.IntegerField()
