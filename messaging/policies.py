"""Access to channels and messages, and the message policies run before a post is stored.

`access_channel` is the one gate for every protocol: REST views, WebSocket subscribe/publish, SSE
and MCP all call it, so a rule can never differ between them.
"""
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Exists, OuterRef, Q
from django.utils.module_loading import import_string

from messaging.models import Channel, Membership, Message, MessageRecipient
from mythline_site.errors import Archived, Forbidden, NotFound, PayloadTooLarge
from mythline_site.rawrows import Columns, load_row, table
from stories.models import Participant, Story
from stories.policies import StoryAccess, story_is_visible


@dataclass(frozen=True)
class ChannelAccess:
    channel: Channel
    role: str | None  # the caller's role in the story
    member_role: str | None  # the caller's role in the channel (private, presence, inbox)
    user_id: int

    @property
    def story(self) -> Story:
        return self.channel.story

    @property
    def story_access(self) -> StoryAccess:
        return StoryAccess(story=self.channel.story, role=self.role)

    @property
    def is_story_owner(self) -> bool:
        return self.role == Participant.Role.OWNER

    @property
    def is_channel_owner(self) -> bool:
        return self.member_role == Membership.Role.OWNER or self.channel.created_by_id == self.user_id

    @property
    def can_read(self) -> bool:
        return can_read_channel(self.channel, self.user_id, self.role, self.member_role)

    @property
    def can_post(self) -> bool:
        return can_post_channel(self.channel, self.user_id, self.role, self.member_role)

    @property
    def can_manage(self) -> bool:
        """Change topic, archive, invite and remove members: the story owner, and the channel's
        owner while they may write in the story (a creator demoted to viewer manages no more)."""
        return self.is_story_owner or (self.is_channel_owner
                                       and self.role in (Participant.Role.OWNER, Participant.Role.EDITOR))


def can_read_channel(channel: Channel, user_id: int, role: str | None, member_role: str | None) -> bool:
    if not story_is_visible(channel.story, role):
        return False
    if role == Participant.Role.OWNER:
        return True  # the story owner reads everything (the export has it all anyway)
    if channel.kind == Channel.Kind.PUBLIC:
        return True
    if channel.kind == Channel.Kind.INBOX:
        return channel.inbox_agent_id == user_id
    return member_role is not None


def can_post_channel(channel: Channel, user_id: int, role: str | None, member_role: str | None) -> bool:
    if role not in (Participant.Role.OWNER, Participant.Role.EDITOR):
        return False
    if role == Participant.Role.OWNER or channel.kind in (Channel.Kind.PUBLIC, Channel.Kind.INBOX):
        return True
    return member_role is not None


class _ChannelQuery:
    """The channel, its story (and, for rendering, its creator and inbox agent) and the caller's
    story and channel roles, in one hand-written SELECT (see mythline_site/rawrows.py: the ORM
    spent ~3 ms per post building this query). Built once per database vendor."""

    def __init__(self, related: bool):
        self.related = related
        self.parts: list[Columns] = []
        self.sql: dict[str, str] = {}

    def _sql(self, connection, by_pk: bool) -> str:
        key = f"{connection.vendor}:{by_pk}"
        if key not in self.sql:
            user_model = get_user_model()
            if not self.parts:  # built whole, then published: requests run in several threads
                parts = [Columns(Channel, "c"), Columns(Story, "s")]
                if self.related:
                    parts += [Columns(user_model, "cb"), Columns(user_model, "ia")]
                self.parts = parts
            qn = connection.ops.quote_name
            users = table(user_model, qn)
            joins = ""
            if self.related:
                joins = (f" INNER JOIN {users} cb ON cb.{qn('id')} = c.{qn('created_by_id')}"
                         f" LEFT OUTER JOIN {users} ia ON ia.{qn('id')} = c.{qn('inbox_agent_id')}")
            where = f"c.{qn('id')} = %s" if by_pk else f"s.{qn('slug')} = %s AND c.{qn('name')} = %s"
            self.sql[key] = (
                f"SELECT {', '.join(part.select(qn) for part in self.parts)},"
                f" (SELECT p.{qn('role')} FROM {table(Participant, qn)} p"
                f" WHERE p.{qn('story_id')} = c.{qn('story_id')} AND p.{qn('user_id')} = %s),"
                f" (SELECT m.{qn('role')} FROM {table(Membership, qn)} m"
                f" WHERE m.{qn('channel_id')} = c.{qn('id')} AND m.{qn('user_id')} = %s)"
                f" FROM {table(Channel, qn)} c INNER JOIN {table(Story, qn)} s ON s.{qn('id')} = c.{qn('story_id')}"
                f"{joins} WHERE {where}")
        return self.sql[key]

    def fetch(self, user, *, slug: str | None = None, name: str | None = None, pk: int | None = None):
        """(channel, caller's story role, caller's channel role), or None."""
        by_pk = pk is not None
        params = [user.pk, user.pk, *([pk] if by_pk else [slug, name])]
        with connection.cursor() as cursor:
            cursor.execute(self._sql(connection, by_pk), params)
            row = cursor.fetchone()
        if row is None:
            return None
        objects, (role, member_role) = load_row(row, self.parts, connection)
        channel = objects[0]
        _CHANNEL_STORY.set_cached_value(channel, objects[1])
        if self.related:
            _CHANNEL_CREATOR.set_cached_value(channel, objects[2])
            _CHANNEL_INBOX_AGENT.set_cached_value(channel, objects[3])  # None: not an inbox
        return channel, role, member_role


_CHANNEL_STORY = Channel._meta.get_field("story")
_CHANNEL_CREATOR = Channel._meta.get_field("created_by")
_CHANNEL_INBOX_AGENT = Channel._meta.get_field("inbox_agent")
# Posting (the hot path) and checks render no channel, so they skip the creator and inbox agent.
_CHANNEL_AND_STORY = _ChannelQuery(related=False)
_CHANNEL_TO_RENDER = _ChannelQuery(related=True)


def access_channel(user, story_slug: str, channel_name: str, *, for_write: bool = False,
                   for_manage: bool = False) -> ChannelAccess:
    """One query (a second only when nothing matched): the channel, its story, and the caller's roles.
    Raises NotFound, Forbidden, Archived.

    Not readable and not postable -> 404 (the caller may not know it exists). An inbox is the
    exception: editors post to it without reading it, so reading it is 403.
    """
    query = _CHANNEL_AND_STORY if for_write else _CHANNEL_TO_RENDER
    found = query.fetch(user, slug=story_slug, name=channel_name)
    if found is None:
        raise _channel_not_found(user, story_slug, channel_name)
    if not story_is_visible(found[0].story, found[1]):
        raise NotFound(f"No story '{story_slug}'.")  # as access_story says: a private story does not leak
    channel, role, member_role = found
    access = ChannelAccess(channel=channel, role=role, member_role=member_role, user_id=user.pk)
    readable = access.can_read
    if not readable and not (channel.kind == Channel.Kind.INBOX and access.role is not None):
        raise NotFound(f"No channel '{channel_name}' in story '{story_slug}'.")
    if for_manage:
        if not access.can_manage:
            raise Forbidden("Only the channel's owner or the story owner may do that.")
    elif for_write:
        if not access.can_post:
            if access.role == Participant.Role.VIEWER:
                raise Forbidden("Viewers read but do not post; ask the story owner to make you an editor.")
            raise Forbidden("You may not post in this channel.")
        if channel.is_archived:
            raise Archived(f"Channel '{channel_name}' is archived and read-only.")
    elif not readable:
        raise Forbidden("Only the agent and the story owner read an inbox.")
    return access


def _channel_not_found(user, story_slug: str, channel_name: str) -> NotFound:
    """The 404 when no channel matched: "No story" when the story does not exist or the caller may
    not see it (the same words for both: a private story does not leak), "No channel" otherwise.
    Only this path pays for the second query."""
    participant = Participant.objects.filter(story_id=OuterRef("pk"), user_id=user.pk)
    visible = Story.objects.filter(Q(visibility=Story.Visibility.PUBLIC) | Exists(participant), slug=story_slug)
    if not visible.exists():
        return NotFound(f"No story '{story_slug}'.")
    return NotFound(f"No channel '{channel_name}' in story '{story_slug}'.")


def readable_channels(user, *, story: Story | None = None):
    """Channels the caller may read: of one story, or of every story the caller takes part in."""
    participant_stories = Participant.objects.filter(user_id=user.pk).values("story_id")
    owned_stories = Story.objects.filter(owner_id=user.pk).values("pk")
    member = Exists(Membership.objects.filter(channel_id=OuterRef("pk"), user_id=user.pk))
    kind_ok = (Q(kind=Channel.Kind.PUBLIC) | Q(kind=Channel.Kind.INBOX, inbox_agent_id=user.pk)
               | Q(Q(kind__in=[Channel.Kind.PRIVATE, Channel.Kind.PRESENCE]) & member)
               | Q(story_id__in=owned_stories))
    qs = Channel.objects.filter(kind_ok)
    if story is None:
        return qs.filter(story_id__in=participant_stories)
    qs = qs.filter(story=story)
    if story.visibility != Story.Visibility.PUBLIC:
        qs = qs.filter(story_id__in=participant_stories)
    return qs


def audience_q(user) -> Q:
    """Messages whose audience includes `user`, or that `user` sent. (The story owner sees every
    message too: callers that span stories add that with `selectors.reader_q`.)"""
    q = (Q(audience_kind=Message.Audience.ALL) | Q(sender_id=user.pk)
         | Q(audience_kind=Message.Audience.AGENTS if user.is_agent else Message.Audience.HUMANS))
    return q | Q(Q(audience_kind=Message.Audience.USERS)
                 & Exists(MessageRecipient.objects.filter(message_id=OuterRef("pk"), user_id=user.pk)))


def audience_includes(message: Message, user, *, story_owner_id: int, recipient_ids=None) -> bool:
    """The same rule as `audience_q`, for one message already in memory."""
    kind = message.audience_kind
    if kind == Message.Audience.ALL or message.sender_id == user.pk or story_owner_id == user.pk:
        return True
    if kind == Message.Audience.AGENTS:
        return user.is_agent
    if kind == Message.Audience.HUMANS:
        return not user.is_agent
    if recipient_ids is None:
        recipient_ids = set(message.recipients.values_list("user_id", flat=True))
    return user.pk in recipient_ids


def message_visible_to(message: Message, user) -> bool:
    """Can `user` read this message: its channel and its audience."""
    channel, role, member_role = _CHANNEL_AND_STORY.fetch(user, pk=message.channel_id)
    return (can_read_channel(channel, user.pk, role, member_role)
            and audience_includes(message, user, story_owner_id=channel.story.owner_id))


# --- Message policies -----------------------------------------------------------------------
# Each is a callable `policy(*, sender, channel, fields, encoded_payload, **_)` that raises a
# MythlineError or returns None. They run in order (settings.MYTHLINE_MESSAGE_POLICIES) after
# validation, before storing. Loop prevention is in messaging/loops.py.

def payload_size_policy(*, sender, channel, fields, encoded_payload: bytes, **_):
    limit = settings.MYTHLINE_MAX_PAYLOAD_BYTES
    if len(encoded_payload) > limit:
        raise PayloadTooLarge(f"The payload is {len(encoded_payload)} bytes encoded; the limit is {limit}.",
                              details={"field": "payload", "limit": limit, "size": len(encoded_payload)})


_loaded_policies = None


def message_policies():
    global _loaded_policies
    if _loaded_policies is None or _loaded_policies[0] != settings.MYTHLINE_MESSAGE_POLICIES:
        _loaded_policies = (list(settings.MYTHLINE_MESSAGE_POLICIES),
                            [import_string(path) for path in settings.MYTHLINE_MESSAGE_POLICIES])
    return _loaded_policies[1]
