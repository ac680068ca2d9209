"""Writes for channels and messages. REST, WebSocket, SSE and MCP all come through here.

The message write path (`message_post`) is one transaction: bump the channel's `last_seq` under
its row lock (UPDATE ... RETURNING), insert the message with that seq, and publish after commit.
Postgres serializes the UPDATE on the row lock; SQLite runs every write transaction as BEGIN
IMMEDIATE, so the seq is gapless and unique under any number of threads or processes. On Postgres
a plain post (`_plain`: nothing but its row and search entry to write) is one statement, so the lock
is held for the database's time only (`_insert_plain`).
"""
import json
import re
import uuid
from contextlib import nullcontext
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.db.models.sql import InsertQuery
from django.utils import timezone

from audit import services as audit
from messaging import events, loops, relations, rights
from messaging.models import MSG_TYPE_RE, Channel, Membership, Message, MessageRecipient, ReadCursor
from messaging.policies import ChannelAccess, access_channel, message_policies, message_visible_to
from messaging.schemas import payload_errors, referenced_message_ids
from messaging.serializers import channel_json, message_json
from mythline_site import metrics
from mythline_site.errors import (Archived, Conflict, Forbidden, Invalid, MythlineError, NoRoute, NotFound,
                                  PayloadTooLarge, one_of)
from mythline_site.parsers import has_nul, has_surrogate
from mythline_site.throttling import check_rate
from notifications import mentions
from notifications import services as notifications
from search import services as search
from webhooks import services as webhooks
from streaming.models import Stream
from stories.models import Participant, Story

User = get_user_model()

IDEMPOTENCY_NAMESPACE = uuid.UUID("6f0c1a52-3c1e-4a8e-9d7e-6b5e8c0f4a11")
MESSAGE_FIELDS = frozenset({"msg_type", "payload", "id", "reply_to", "correlation_id", "audience", "relates_to",
                            "mentions"})
AUDIENCE_WORDS = ("all", "agents", "humans")
MAX_AUDIENCE_USERS = 100
AUDIENCE_NOT_PARTICIPANTS = "must be participants of this story"
# Deeper payloads fail later, deeper in the stack (storing, rendering) with RecursionError; SQLite's
# JSON functions stop at 1000 levels. No real payload comes near this.
MAX_PAYLOAD_DEPTH = 100
_msg_type_re = re.compile(MSG_TYPE_RE)


@dataclass
class CleanMessage:
    """A validated message body, ready to store."""
    msg_type: str
    payload: dict
    encoded_payload: bytes
    id: uuid.UUID | None
    reply_to: Message | None
    correlation_id: str | None
    audience: object  # "all" | "agents" | "humans" | [usernames]
    audience_kind: str
    recipient_ids: list[int] = field(default_factory=list)
    # An edit, deletion or reaction (messaging/relations.py): the message it relates to, and how.
    relates_to: Message | None = None
    rel_type: str | None = None
    # Scratch space for the message policies: one post may run several that need the same rows
    # (messaging.loops reads the sender's recent messages once for two of them).
    policy_cache: dict = field(default_factory=dict, repr=False, compare=False)
    # The ids of every copy of this one post (a route stores a copy per inbox): policies do not
    # count those as earlier posts.
    copy_ids: frozenset = frozenset()
    # The usernames it mentions: its `mentions` list and the participants its text @names
    # (notifications/mentions.py), stored as Message.mentions.
    mentions: list[str] = field(default_factory=list)
    # In a batch (`message_post_batch`): the batch's messages admitted before this one, oldest first,
    # as (id, CleanMessage), and a scratch space all of the batch's policies share (one read of what
    # was stored before the batch serves every message of it).
    earlier_in_batch: list = field(default_factory=list, repr=False, compare=False)
    batch_cache: dict | None = field(default=None, repr=False, compare=False)

    def same_content(self, message: Message) -> bool:
        # Payloads compared as JSON values: `true` is not `1`, and 1e23 posted is the 10**23 jsonb gives back.
        return (message.msg_type == self.msg_type and loops.same_json(message.payload, self.payload)
                and message.reply_to_id == (self.reply_to.pk if self.reply_to else None)
                and message.correlation_id == self.correlation_id and message.audience == self.audience
                and message.relates_to_id == (self.relates_to.pk if self.relates_to else None))


@dataclass
class PostResult:
    message: Message
    created: bool
    data: dict  # the message as every API shows it


ID_TAKEN = "This message id is already taken: choose another (a random UUID)."
# Separates a route's key from the inbox agent's username in a copy's stored key; keys never hold
# control characters (messaging.api.idempotency_key), so no key of a plain post can equal one.
ROUTE_KEY_SEPARATOR = "\n"


def legacy_key_id(sender, key: str) -> uuid.UUID:
    """The id a keyed post got before migration 0003 (UUIDv5 of the sender's pk and the key).

    Only to answer a repeat of such a post: it is looked up among the sender's own messages stored
    without a key, so a message someone else stored under this (predictable) id is never taken
    for the sender's. New keyed posts get a random id and keep the key in `idempotency_key`."""
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{sender.pk}:{key}")


def _keyed_messages(sender, slots: dict[str, uuid.UUID]) -> dict[str, Message]:
    """The sender's messages stored under these keys (key -> its legacy id): one query."""
    by_legacy_id = {legacy: key for key, legacy in slots.items()}
    found: dict[str, Message] = {}
    for message in Message.objects.select_related("sender").filter(
            Q(idempotency_key__in=list(slots)) | Q(pk__in=list(by_legacy_id), idempotency_key__isnull=True),
            sender=sender):
        if message.idempotency_key is not None:
            found[message.idempotency_key] = message
        else:
            found.setdefault(by_legacy_id[message.pk], message)
    return found


def _key_repeat_or_conflict(existing: Message, *, channel: Channel, clean: CleanMessage) -> Message:
    """The sender's own message stored under the key: the original for a repeat, else Conflict."""
    if existing.channel_id != channel.pk or not clean.same_content(existing):
        raise Conflict("This Idempotency-Key was already used for different content.",
                       details={"Idempotency-Key": "already used for different content", "id": str(existing.pk)})
    return existing


def _parse_uuid(value, name, errors):
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    errors[name] = "must be a UUID string"
    return None


def _nesting_depth(value) -> int:
    """Levels of objects and arrays (the payload object itself is 1). Iterative: any depth."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _storable_text(value: str) -> bool:
    """No NUL and no unpaired surrogate: text every database stores (REST's parser refuses the
    surrogates already; WebSocket and MCP bodies come here too)."""
    return not has_nul(value) and not has_surrogate(value)


class RelationRepeat(Exception):
    """Raised inside the post's transaction: the relation is already there (the same reaction, or a
    second deletion); the transaction rolls back (its seq too) and the post answers with it."""

    def __init__(self, message: Message):
        super().__init__(str(message.pk))
        self.message = message


def clean_message_input(data, *, sender, story: Story, channel: Channel | None = None) -> CleanMessage:
    """Check a message body (REST, WebSocket or MCP); raise Invalid with every bad field named.

    `channel`: where it is posted (None for a route to inboxes, which takes no relation)."""
    if not isinstance(data, dict):
        raise Invalid("The message must be a JSON object.")
    errors = {}
    unknown = sorted(set(data) - MESSAGE_FIELDS)
    for name in unknown:
        errors[name] = "unknown field"
    msg_type = data.get("msg_type")
    # fullmatch: with `match`, `$` also matches before a trailing newline ("text\n").
    if not isinstance(msg_type, str) or not _msg_type_re.fullmatch(msg_type):
        errors["msg_type"] = "is required: 1-64 of a-z 0-9 _ . - starting with a letter"
    elif msg_type == mentions.MENTION_COPY_TYPE:
        errors["msg_type"] = "'mention' is reserved for the server's copies of mentions in agents' inboxes"
    payload = data.get("payload")
    encoded = b""
    if not isinstance(payload, dict):
        errors["payload"] = "is required and must be a JSON object"
    else:
        try:
            encoded = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        except (ValueError, RecursionError):  # a non-finite number, an unpaired surrogate, too deep
            errors["payload"] = "must be storable JSON: finite numbers, Unicode text, not nested too deeply"
        else:
            # Each bracket opens at most one level: count them (C speed) before walking the payload.
            if (encoded.count(b"{") + encoded.count(b"[") > MAX_PAYLOAD_DEPTH
                    and _nesting_depth(payload) > MAX_PAYLOAD_DEPTH):
                errors["payload"] = f"must not nest objects and arrays more than {MAX_PAYLOAD_DEPTH} levels deep"
            # JSON escapes NUL as \u0000; no database stores it in JSON (PostgreSQL refuses it).
            elif b"\\u0000" in encoded and has_nul(payload):
                errors["payload"] = "must not contain the NUL character (\\u0000)"
        if "msg_type" not in errors:
            if msg_type in relations.RELATION_TYPES:
                errors.update(relations.relation_payload_errors(msg_type, payload))
            else:
                errors.update(payload_errors(msg_type, payload))
    message_id = _parse_uuid(data.get("id"), "id", errors)
    relates_to_id = _parse_uuid(data.get("relates_to"), "relates_to", errors)
    is_relation = isinstance(msg_type, str) and msg_type in relations.RELATION_TYPES
    if is_relation and relates_to_id is None and "relates_to" not in errors:
        errors["relates_to"] = f"is required for msg_type '{msg_type}': the id of the message it relates to"
    elif relates_to_id is not None and not is_relation:
        errors["relates_to"] = "is only for msg_type " + ", ".join(f"'{t}'" for t in relations.RELATION_TYPES)
    if is_relation:
        # A relation takes its target's audience and is no reply: it belongs to the target.
        if data.get("audience") is not None:
            errors["audience"] = "is the audience of the message it relates to: leave it out"
        if data.get("reply_to") is not None:
            errors["reply_to"] = "an edit, deletion or reaction is no reply: leave it out"
        if channel is None and relates_to_id is not None:
            errors["relates_to"] = "post an edit, deletion or reaction to the channel of its message"
    reply_to_id = _parse_uuid(data.get("reply_to"), "reply_to", errors)
    correlation_id = data.get("correlation_id")
    if correlation_id is not None and (not isinstance(correlation_id, str) or len(correlation_id) > 128
                                       or not _storable_text(correlation_id)):
        errors["correlation_id"] = "must be a string of at most 128 characters (no NUL), or null"
    audience = data.get("audience", "all")
    audience_kind, usernames = "all", []
    if audience is None:
        audience = "all"
    if isinstance(audience, str) and audience in AUDIENCE_WORDS:
        audience_kind = audience
    elif isinstance(audience, list) and audience and all(isinstance(u, str) and u and _storable_text(u)
                                                         for u in audience):
        usernames = list(dict.fromkeys(audience))
        if len(usernames) > MAX_AUDIENCE_USERS:
            errors["audience"] = f"may list at most {MAX_AUDIENCE_USERS} usernames"
        audience, audience_kind = usernames, Message.Audience.USERS
    else:
        errors["audience"] = "must be 'all', 'agents', 'humans' or a non-empty list of usernames"
    named = data.get("mentions")
    if named is None:
        named = []
    elif not isinstance(named, list) or not all(isinstance(u, str) and u and len(u) <= 150 and _storable_text(u)
                                                for u in named):
        errors["mentions"] = "must be a list of usernames"
    elif len(set(named)) > mentions.MAX_MENTIONS:
        errors["mentions"] = f"may list at most {mentions.MAX_MENTIONS} usernames"
    elif named and msg_type in ("delete", "reaction"):
        errors["mentions"] = "a deletion or reaction mentions no one: leave it out"
    if errors:
        raise Invalid("The message is invalid.", details=errors)

    # References: one query each, only when present.
    reply_to = None
    if reply_to_id is not None:
        reply_to = Message.objects.filter(pk=reply_to_id, story=story).first()
        if reply_to is None or not message_visible_to(reply_to, sender):
            errors["reply_to"] = "no such message in this story"
    errors.update(_reference_errors(msg_type, payload, story_id=story.pk, sender=sender))
    recipient_ids = []
    if usernames:
        # Resolved among the story's participants only, with one answer for "no such user" and
        # "not a participant": naming the missing ones would tell anyone which usernames exist.
        by_name = dict(Participant.objects.filter(story=story, user__username__in=usernames)
                       .values_list("user__username", "user_id"))
        if any(u not in by_name for u in usernames):
            errors["audience"] = AUDIENCE_NOT_PARTICIPANTS
        recipient_ids = [by_name[u] for u in usernames if u in by_name]
    # As for the audience: one answer for "no such user" and "not a participant".
    mentioned, unknown = mentions.resolve(story.pk, explicit=list(dict.fromkeys(named)), msg_type=msg_type,
                                          payload=payload)
    if unknown:
        errors["mentions"] = mentions.NOT_PARTICIPANTS
    if errors:
        raise Invalid("The message is invalid.", details=errors)
    clean = CleanMessage(msg_type=msg_type, payload=payload, encoded_payload=encoded, id=message_id,
                         reply_to=reply_to, correlation_id=correlation_id, audience=audience,
                         audience_kind=audience_kind, recipient_ids=recipient_ids, mentions=mentioned)
    if is_relation:
        _clean_relation(clean, relates_to_id, sender=sender, channel=channel)
    return clean


def _reference_errors(msg_type: str, payload, *, story_id: int, sender) -> dict[str, str]:
    """The message ids a payload of `msg_type` names (a vote's proposal...), each checked: like
    reply_to, a reference must be readable by the sender (otherwise the answer would tell them
    whether a message in a channel they cannot read exists), and a proposal must be one."""
    refs = referenced_message_ids(msg_type, payload)
    if not refs:
        return {}
    found = {str(m.pk): m.msg_type for m in Message.objects.filter(story_id=story_id, pk__in=list(refs.values()))
             if message_visible_to(m, sender)}
    errors = {}
    for name, ref in refs.items():
        ref = str(uuid.UUID(ref))
        if ref not in found:
            errors[name] = "no such message in this story"
        elif name == "payload.proposal" and found[ref] != "proposal":
            errors[name] = "must be the id of a 'proposal' message"
    return errors


def _clean_relation(clean: CleanMessage, target_id: uuid.UUID, *, sender, channel: Channel) -> None:
    """The rules that depend on the target alone (the ones that depend on its other relations are
    checked under the channel's lock: `_check_relation_state`). Sets the relation fields and the
    target's audience on `clean`."""
    target = Message.objects.select_related("sender").filter(pk=target_id, channel=channel).first()
    if target is None or not message_visible_to(target, sender):
        # Another channel's message, or one the sender may not read: as for any unreadable message.
        raise NotFound("No such message in this channel.", details={"relates_to": "no such message in this channel"})
    msg_type = clean.msg_type
    if target.rel_type is not None and not (msg_type == "delete" and target.rel_type == Message.RelType.ANNOTATE):
        raise Invalid("Only a reaction can be taken back (deleted); no other edit, deletion or reaction relates "
                      "to a relation.", details={"relates_to": "is an edit, deletion or reaction"})
    is_own = target.sender_id == sender.pk
    if msg_type == "edit":
        if not is_own:
            raise Forbidden("You may edit only your own messages.", details={"relates_to": "not your message"})
        new = clean.payload["payload"]
        errors = payload_errors(target.msg_type, new)
        if not errors:  # as for a post: the ids it names are checked once its shape is right
            errors = _reference_errors(target.msg_type, new, story_id=channel.story_id, sender=sender)
        errors = {f"payload.{name}": text for name, text in errors.items()}
        if errors:
            raise Invalid("The edit's new payload is invalid.", details=errors)
    elif msg_type == "delete" and not is_own and channel.story.owner_id != sender.pk:
        raise Forbidden("You may delete only your own messages (the story owner may delete any).",
                        details={"relates_to": "not your message"})
    clean.relates_to, clean.rel_type = target, relations.RELATION_TYPES[msg_type]
    clean.audience, clean.audience_kind = target.audience, target.audience_kind
    if target.audience_kind == Message.Audience.USERS:
        clean.recipient_ids = list(target.recipients.values_list("user_id", flat=True))


def _check_relation_state(clean: CleanMessage, sender) -> None:
    """Under the channel's row lock (after the seq is taken): what the target's other relations
    allow. Raises Invalid, or RelationRepeat with the relation already stored."""
    target = clean.relates_to
    deletion = relations.deletion_of(target)
    if clean.msg_type == "delete":
        if deletion is not None:
            raise RelationRepeat(deletion)  # deleted already: the deletion is the answer
        return
    if deletion is not None:
        raise Invalid("That message was deleted.", details={"relates_to": "was deleted"})
    if clean.msg_type == "reaction":
        existing = relations.reaction_of(target, sender, clean.payload["key"])
        if existing is not None:
            raise RelationRepeat(existing)  # one reaction per key, user and message


def _existing_or_conflict(message_id: uuid.UUID, *, channel: Channel, sender, clean: CleanMessage):
    """The stored message for a repeated id, or Conflict when it is not the same post.

    Someone else's message gets one answer wherever it is (`ID_TAKEN`, no details): the poster
    may not be able to read it, and the answer must not tell in which story or channel it is, nor
    anything of it. Only its own sender learns more."""
    existing = Message.objects.select_related("sender").filter(pk=message_id).first()
    return existing and _same_post_or_conflict(existing, channel=channel, sender=sender, clean=clean)


def _same_post_or_conflict(existing: Message, *, channel: Channel, sender, clean: CleanMessage) -> Message:
    """`existing`, stored under the id `clean` asks for: the same post (a repeat), or Conflict."""
    message_id = existing.pk
    if existing.sender_id != sender.pk:
        raise Conflict(ID_TAKEN, details={"id": "already taken"})
    if existing.channel_id != channel.pk or not clean.same_content(existing):
        raise Conflict(f"Message id {message_id} was already used for different content.",
                       details={"id": str(message_id)})
    return existing


_SEQ_SQL = None


def _next_seq(channel: Channel, now) -> int | None:
    """Bump and return the channel's last_seq, holding its row lock to the end of the transaction."""
    global _SEQ_SQL
    if _SEQ_SQL is None:
        table = connection.ops.quote_name(Channel._meta.db_table)
        _SEQ_SQL = (f"UPDATE {table} SET last_seq = last_seq + 1, last_message_at = %s "
                    f"WHERE id = %s AND archived_at IS NULL RETURNING last_seq")
    with connection.cursor() as cursor:
        cursor.execute(_SEQ_SQL, [now, channel.pk])
        row = cursor.fetchone()
    return row[0] if row else None


def _idle_expired(channel: Channel, now) -> bool:
    if not channel.idle_archive_seconds or channel.archived_at is not None:
        return False
    since = channel.last_message_at or channel.created_at
    return now - since >= timedelta(seconds=channel.idle_archive_seconds)


def _insert(channel: Channel, sender, clean: CleanMessage, message_id: uuid.UUID, *,
            key: str | None = None) -> tuple[Message, dict]:
    """Assign the next seq and insert; the caller holds the transaction. Publishes after commit."""
    seq = _next_seq(channel, timezone.now())
    if seq is None:
        raise Archived(f"Channel '{channel.name}' is archived and read-only.")
    if clean.relates_to is not None:
        _check_relation_state(clean, sender)
    message = _new_message(channel, sender, clean, message_id, seq, key=key)
    message.save(force_insert=True)
    channel.last_seq = seq
    return message, _stored(message, channel, sender, clean)


def _new_message(channel: Channel, sender, clean: CleanMessage, message_id: uuid.UUID, seq: int, *,
                 key: str | None = None) -> Message:
    return Message(
        id=message_id, story_id=channel.story_id, channel=channel, seq=seq, sender=sender,
        msg_type=clean.msg_type, payload=clean.payload, reply_to=clean.reply_to,
        thread_root_id=(clean.reply_to.thread_root_id or clean.reply_to.pk) if clean.reply_to else None,
        correlation_id=clean.correlation_id, audience=clean.audience, audience_kind=clean.audience_kind,
        created_at=timezone.now(), idempotency_key=key, relates_to=clean.relates_to, rel_type=clean.rel_type,
        mentions=clean.mentions or None,
    )


def _plain(clean: CleanMessage, channel: Channel) -> bool:
    """A post that writes nothing but its own row and search entry: no relation (whose target's state
    is checked under the channel's lock), no recipients, and nothing notifications or webhooks
    would write for (each app says when it writes: `writes_on_post`). `_stored` would write nothing
    else for it; tests/messaging/test_post_path.py holds the two to each other."""
    return (clean.relates_to is None and not clean.recipient_ids
            and not notifications.writes_on_post(msg_type=clean.msg_type, rel_type=clean.rel_type,
                                                 mentions=clean.mentions, replies=clean.reply_to is not None)
            and not webhooks.writes_on_post(channel))


_PLAIN_SQL: str | None = None


def _plain_sql(insert_sql: str) -> str:
    """One statement that stores a plain post: bump the channel's seq (its row lock), insert the
    message with it and its search entry. Run outside a transaction, the statement is the
    transaction: the lock is held from the UPDATE to the end of the COMMIT, with no round trip to
    the process (and no wait for its GIL) in between, so posts into one channel from many threads
    and processes queue for the database's time only (docs/benchmarks.md, "Ingest scale-out")."""
    channel_table = connection.ops.quote_name(Channel._meta.db_table)
    head, values = insert_sql.split(" VALUES (", 1)
    assert values.endswith(")"), insert_sql
    return (f"WITH s AS (UPDATE {channel_table} SET last_seq = last_seq + 1, last_message_at = %s "
            f"WHERE id = %s AND archived_at IS NULL RETURNING last_seq), "
            f"m AS ({head} SELECT {values[:-1]} FROM s RETURNING id, seq), "
            f"t AS (INSERT INTO {search.TEXT_TABLE} (message_id, text) SELECT id, %s FROM m) "
            f"SELECT seq FROM m")


def _insert_plain(channel: Channel, sender, clean: CleanMessage, message_id: uuid.UUID, *,
                  key: str | None = None) -> tuple[Message, dict]:
    """`_insert` + `_stored` for a `_plain` post on Postgres, in one statement (`_plain_sql`)."""
    global _PLAIN_SQL
    message = _new_message(channel, sender, clean, message_id, RawSQL("s.last_seq", ()), key=key)
    fields = Message._meta.local_concrete_fields
    # Its parameters as the compiler prepares them (pre_save, then get_db_prep_save), but for seq.
    params = [f.get_db_prep_save(f.pre_save(message, True), connection) for f in fields if f.attname != "seq"]
    if _PLAIN_SQL is None:  # Django's INSERT for the model, compiled once: seq is `s.last_seq`
        query = InsertQuery(Message)
        query.insert_values(fields, [message])
        [(insert_sql, compiled)] = query.get_compiler(connection=connection).as_sql()
        # A field the compiler prepares otherwise (a db_default, a generated field, an expression)
        # would shift the parameters: checked once per process, against the compiler's own.
        if [type(p) for p in compiled] != [type(p) for p in params]:
            raise RuntimeError(f"_insert_plain's parameters no longer match Django's INSERT: {compiled!r} / {params!r}")
        _PLAIN_SQL = _plain_sql(insert_sql)
    text = search.message_text(message.msg_type, message.payload)
    with connection.cursor() as cursor:
        cursor.execute(_PLAIN_SQL, [message.created_at, channel.pk, *params, text])
        row = cursor.fetchone()
    if row is None:
        raise Archived(f"Channel '{channel.name}' is archived and read-only.")
    message.seq = channel.last_seq = row[0]
    message._state.adding, message._state.db = False, connection.alias
    loops.remember(message, clean)
    return message, _announce(message, channel, sender, clean)


def _stored(message: Message, channel: Channel, sender, clean: CleanMessage, *, indexed: bool = False,
            frames_out: list | None = None) -> dict:
    """What follows the INSERT of a message, in its transaction: its search entry (unless the
    caller `indexed` it already), recipients, notifications and webhook deliveries (a message is
    never stored without them), and its live frame, published after commit (or added to
    `frames_out`, for the caller to publish). Returns the message as the post answers it."""
    if not indexed:
        search.index_posted(message)  # in this transaction: found as soon as it is committed
    loops.remember(message, clean)
    if clean.recipient_ids:
        MessageRecipient.objects.bulk_create(MessageRecipient(message=message, user_id=uid) for uid in clean.recipient_ids)
    notifications.on_posted(message, channel)
    webhooks.on_posted(message, channel)
    return _announce(message, channel, sender, clean, frames_out)


def _announce(message: Message, channel: Channel, sender, clean: CleanMessage, frames_out: list | None = None) -> dict:
    """The stored message as the post answers it, and its live frame: published after commit (or
    added to `frames_out`, for the caller to publish)."""
    data = posted_json(message, channel=channel, sender=sender, fresh=True)
    topic = f"channel:{channel.story.slug}/{channel.name}"
    event = events.message_created_event(message, events.dumps(data), topic, clean.recipient_ids)
    if frames_out is None:
        events.publish_on_commit(channel.group_name, event)
    else:
        frames_out.append(event)
    return data


def posted_json(message: Message, *, channel: Channel, sender=None, fresh: bool = False) -> dict:
    """A posted message as the post answers it and its live frame carries: with its aggregated view
    (`fresh`: nothing relates to it yet) and, for a relation, `target`: the aggregated view of the
    message it relates to, as it is now (`me` null: the frame goes to every reader)."""
    slug, name = channel.story.slug, channel.name
    view = relations.fresh_view() if fresh else relations.views_for([message], sender or message.sender)[message.pk]
    data = message_json(message, story_slug=slug, channel_name=name, sender=sender, view=view)
    if message.relates_to_id is not None:
        target = Message.objects.select_related("sender").get(pk=message.relates_to_id)
        data["target"] = message_json(target, story_slug=slug, channel_name=name,
                                      view=relations.views_for([target])[target.pk])
    return data


def _stream_ids_taken(ids, sender) -> set:
    """Of these message ids, those a stream holds against `sender` (one query): a stream's id is
    its final message's (streaming/), readers see it live, and no one else may take it; nor its
    opener while it is open (stream_complete marks it completed before it posts)."""
    return set(Stream.objects.filter(pk__in=list(ids)).filter(Q(status=Stream.Status.OPEN) | ~Q(sender_id=sender.pk))
               .values_list("pk", flat=True))


def message_post(*, sender, access: ChannelAccess, data, idempotency_key: str | None = None) -> PostResult:
    """Validate, apply the policies, and store one message (or return the earlier one for a repeat).

    `access` comes from `access_channel(..., for_write=True)`: the caller may post there. A repeat
    is found by the body's `id` or, without one, by the sender's `idempotency_key` (its own
    column, unique per sender: the message itself gets a random id).
    """
    channel = access.channel
    clean = clean_message_input(data, sender=sender, story=channel.story, channel=channel)
    key = idempotency_key if clean.id is None else None  # with both, the body's id wins

    def repeat() -> Message | None:
        if clean.id is not None:
            return _existing_or_conflict(clean.id, channel=channel, sender=sender, clean=clean)
        if key is not None:
            existing = _keyed_messages(sender, {key: legacy_key_id(sender, key)}).get(key)
            return existing and _key_repeat_or_conflict(existing, channel=channel, clean=clean)
        return None

    existing = repeat()
    if existing is not None:
        return PostResult(existing, False, posted_json(existing, channel=channel, sender=existing.sender))
    if clean.id is not None and _stream_ids_taken([clean.id], sender):
        # A stream's id is its final message's (streaming/): readers see it live, and must not take it;
        # nor its opener while it is open (stream_complete marks it completed before it posts).
        raise Conflict(ID_TAKEN, details={"id": "already taken"})
    for policy in message_policies():
        policy(sender=sender, channel=channel, fields=clean, encoded_payload=clean.encoded_payload)
    now = timezone.now()
    if _idle_expired(channel, now) and _set_archived(channel=channel, by=None, archived=True, idle_at=now):
        raise Archived(f"Channel '{channel.name}' was archived after {channel.idle_archive_seconds}s without messages.")
    try:
        if connection.vendor == "postgresql" and _plain(clean, channel):
            with transaction.atomic() if connection.in_atomic_block else nullcontext():  # (a savepoint)
                message, data = _insert_plain(channel, sender, clean, clean.id or uuid.uuid4(), key=key)
        else:
            with transaction.atomic():
                message, data = _insert(channel, sender, clean, clean.id or uuid.uuid4(), key=key)
    except RelationRepeat as repeated:
        # The same reaction again, or a second deletion: nothing stored, the earlier one answers.
        return PostResult(repeated.message, False, posted_json(repeated.message, channel=channel))
    except IntegrityError:
        # A concurrent post with the same id or key won the race; answer as for any repeat.
        existing = repeat()
        if existing is None:
            raise
        return PostResult(existing, False, posted_json(existing, channel=channel, sender=existing.sender))
    return PostResult(message, True, data)


def message_publish(*, sender, story: str, channel: str, data, idempotency_key: str | None = None,
                    via: str) -> PostResult:
    """Post a message as `sender`: the one entry point of REST, WebSocket and MCP (`via` names it).

    Consumes one unit of the sender's "post" budget (429 `rate_limited` over it), checks that the
    sender may post in the channel, posts (`message_post`) and counts a stored message.
    """
    check_rate("post", f"u{sender.pk}")
    access = access_channel(sender, story, channel, for_write=True)
    result = message_post(sender=sender, access=access, data=data, idempotency_key=idempotency_key)
    if result.created:
        metrics.MESSAGES_PUBLISHED.labels(via).inc()
    return result


# --- Batches -------------------------------------------------------------------------------

@dataclass
class BatchItem:
    """One message of a batch, as its post alone would have answered: stored (201), the repeat of
    an earlier post (200), or refused with its error."""
    result: PostResult | None = None
    error: MythlineError | None = None

    def as_json(self) -> dict:
        if self.error is not None:
            return {"status": self.error.status, **self.error.as_body()}
        return {"status": 201 if self.result.created else 200, "message": self.result.data}


def message_publish_batch(*, sender, story: str, channel: str, items, via: str) -> list[BatchItem]:
    """Post up to MYTHLINE_BATCH_MAX_MESSAGES messages to one channel (REST, SDK and MCP come here).

    The batch as a whole: an object list of 1 to the limit (400; 413 over the limit), the sender's
    right to post in the channel (403/404, as for one post), and one post budget unit per message,
    taken when one unit is free (429 otherwise): a batch of n then waits as n posts would. Then
    `message_post_batch`, whose answer has one item per message."""
    limit = settings.MYTHLINE_BATCH_MAX_MESSAGES
    if not isinstance(items, list) or not items:
        raise Invalid("The batch must be a non-empty list of messages.",
                      details={"messages": f"must be a list of 1 to {limit} message objects"})
    if len(items) > limit:
        raise PayloadTooLarge(f"A batch holds at most {limit} messages; this one has {len(items)}: send it in parts.",
                              details={"messages": f"at most {limit}", "count": len(items)})
    check_rate("post", f"u{sender.pk}", cost=len(items))
    access = access_channel(sender, story, channel, for_write=True)
    results = message_post_batch(sender=sender, access=access, items=items)
    stored = sum(1 for item in results if item.result is not None and item.result.created)
    if stored:
        metrics.MESSAGES_PUBLISHED.labels(via).inc(stored)
    return results


def message_post_batch(*, sender, access: ChannelAccess, items: list) -> list[BatchItem]:
    """Post several messages to one channel in one transaction, in their order, with consecutive seqs.

    Each is validated, checked for a repeat (by its `id`) and policy-checked as if posted alone
    right after the batch's earlier messages that are stored (one refused, even under the lock,
    does not count), and answered on its own: one refused message stores nothing of itself and
    nothing less of the others. What a message names (reply_to, relates_to, a payload's message
    ids) must be stored before the batch. The same id twice in a batch is one post: the second
    answers as a repeat of the first (or 409 for other content). A relation's `target` is its
    target as right after it, as its post alone would answer."""
    try:
        return _post_batch(sender, access.channel, items)
    except IntegrityError:
        # A concurrent post stored one of these ids first (committed by the time our INSERT failed):
        # the batch again, which now finds that message a repeat, or a conflict.
        return _post_batch(sender, access.channel, items)


class _Earlier(Sequence):
    """The first `count` (id, CleanMessage) of a list of a batch's admitted messages, which only
    grows: what one message of the batch sees as posted before it (`CleanMessage.earlier_in_batch`),
    without a copy for each message."""
    __slots__ = ("_items", "_count")

    def __init__(self, items: list, count: int):
        self._items, self._count = items, count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._items[:self._count][index]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        return self._items[index]


def _batch_verdict(sender, channel: Channel, clean: CleanMessage, earlier: list, first_with_id: dict):
    """What a batch's message gets posted right after `earlier` (the batch's messages admitted so
    far, as (id, CleanMessage)): the index of the earlier message with its id (the same post), the
    policies' refusal, or None (admitted; the caller adds it to `earlier` and `first_with_id`)."""
    if clean.id is not None and clean.id in first_with_id:
        return first_with_id[clean.id]
    clean.earlier_in_batch = _Earlier(earlier, len(earlier))
    try:
        for policy in message_policies():
            policy(sender=sender, channel=channel, fields=clean, encoded_payload=clean.encoded_payload)
    except MythlineError as error:
        return error
    return None


def _post_batch(sender, channel: Channel, items: list) -> list[BatchItem]:
    out = [BatchItem() for _ in items]
    cleans: dict[int, CleanMessage] = {}
    for i, data in enumerate(items):
        try:
            cleans[i] = clean_message_input(data, sender=sender, story=channel.story, channel=channel)
        except MythlineError as error:
            out[i].error = error
    asked = {clean.id for clean in cleans.values() if clean.id is not None}
    stored, streams = {}, set()
    if asked:  # two queries for the whole batch: the ids already stored, and streams' ids (message_post)
        stored = {m.pk: m for m in Message.objects.select_related("sender").filter(pk__in=asked)}
        streams = _stream_ids_taken(asked, sender)
    candidates: list[int] = []  # in order: the messages to post (neither a repeat nor an id taken)
    batch_cache: dict = {}
    for i, clean in cleans.items():
        if clean.id in stored:
            try:
                existing = _same_post_or_conflict(stored[clean.id], channel=channel, sender=sender, clean=clean)
            except MythlineError as error:
                out[i].error = error
            else:
                out[i].result = PostResult(existing, False, posted_json(existing, channel=channel,
                                                                        sender=existing.sender))
            continue
        if clean.id in streams:
            out[i].error = Conflict(ID_TAKEN, details={"id": "already taken"})
            continue
        clean.batch_cache = batch_cache
        candidates.append(i)
    # The policies, before the lock: each message as if posted right after the batch's earlier
    # messages admitted so far. Under the lock, `_insert_many` checks again those after one it refuses.
    message_ids = {i: cleans[i].id or uuid.uuid4() for i in candidates}
    verdicts: dict[int, object] = {}
    earlier: list[tuple[uuid.UUID, CleanMessage]] = []
    first_with_id: dict[uuid.UUID, int] = {}
    for i in candidates:
        clean = cleans[i]
        verdicts[i] = _batch_verdict(sender, channel, clean, earlier, first_with_id)
        if verdicts[i] is None:
            earlier.append((message_ids[i], clean))
            if clean.id is not None:
                first_with_id[clean.id] = i
    same_as: dict[int, int] = {}  # a later message of the batch -> the earlier one with its id
    if earlier:
        now = timezone.now()
        if _idle_expired(channel, now) and _set_archived(channel=channel, by=None, archived=True, idle_at=now):
            raise Archived(f"Channel '{channel.name}' was archived after {channel.idle_archive_seconds}s without messages.")
        with transaction.atomic():
            _insert_many(channel, sender, [(i, message_ids[i], cleans[i], verdicts[i]) for i in candidates], out,
                         same_as)
    else:
        for i in candidates:
            out[i].error = verdicts[i]  # every one refused by the policies
    for i, first in same_as.items():
        original = out[first].result  # stored by this batch (`_insert_many`)
        if cleans[i].same_content(original.message):
            out[i].result = PostResult(original.message, False, original.data)
        else:
            out[i].error = Conflict(f"Message id {cleans[i].id} was already used for different content.",
                                    details={"id": str(cleans[i].id)})
    return out


_LOCK_SQL = None


def _insert_many(channel: Channel, sender, candidates: list, out: list[BatchItem], same_as: dict[int, int]) -> None:
    """Store the admitted messages of a batch under the channel's row lock, with consecutive seqs:
    one UPDATE takes the lock (and the last seq), one INSERT stores them (one per run, see below),
    one UPDATE moves the seq.

    `candidates`: (index, id, CleanMessage, verdict before the lock: `_batch_verdict`), in order.
    A relation the lock refuses (its target deleted by an earlier message, a repeat of a stored or
    earlier relation) stores nothing, so it is not an earlier post for the messages after it:
    from there on, each one's policies run again, with the messages kept so far."""
    global _LOCK_SQL
    if _LOCK_SQL is None:
        table = connection.ops.quote_name(Channel._meta.db_table)
        _LOCK_SQL = f"UPDATE {table} SET last_seq = last_seq WHERE id = %s AND archived_at IS NULL RETURNING last_seq"
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_SQL, [channel.pk])
        row = cursor.fetchone()
    if row is None:
        raise Archived(f"Channel '{channel.name}' is archived and read-only.")
    seq = row[0]
    # In order: ("store", i, CleanMessage, Message) for each message to store; ("answer", i, message)
    # for a relation already stored (RelationRepeat); ("repeat", i, k) for the batch's message k again.
    steps: list[tuple] = []
    relations_in_batch: dict = {}
    same_relation: dict[int, int] = {}
    kept_earlier: list[tuple[uuid.UUID, CleanMessage]] = []
    kept_ids: dict[uuid.UUID, int] = {}
    recheck = False  # once one admitted before the lock is refused under it
    for i, message_id, clean, verdict in candidates:
        if recheck:  # what it read of the batch is stale; what it read of the database is not (no query)
            loops.earlier_changed(clean)
            verdict = _batch_verdict(sender, channel, clean, kept_earlier, kept_ids)
        if isinstance(verdict, MythlineError):
            out[i].error = verdict
            continue
        if verdict is not None:
            same_as[i] = verdict
            continue
        if clean.relates_to is not None:
            try:
                _check_batch_relation(clean, sender, relations_in_batch, i, same_relation)
            except RelationRepeat as repeated:
                steps.append(("answer", i, repeated.message))
                recheck = True
                continue
            except MythlineError as error:
                out[i].error = error
                recheck = True
                continue
            if i in same_relation:
                steps.append(("repeat", i, same_relation[i]))
                recheck = True
                continue
        seq += 1
        steps.append(("store", i, clean, _new_message(channel, sender, clean, message_id, seq)))
        kept_earlier.append((message_id, clean))
        if clean.id is not None:
            kept_ids[clean.id] = i
    if kept_earlier:
        Channel.objects.filter(pk=channel.pk).update(last_seq=seq, last_message_at=timezone.now())
        channel.last_seq = seq
    live: list[dict] = []
    with loops.one_commit_hook(), webhooks.one_batch():  # one hook, one webhook lookup for the batch
        _store_in_runs(channel, sender, steps, out, live)
    events.publish_all_on_commit(channel.group_name, live)


def _store_in_runs(channel: Channel, sender, steps: list[tuple], out: list[BatchItem], live: list[dict]) -> None:
    """Store and answer a batch's `steps` (`_insert_many`) in order, one INSERT per run.

    A relation answers with its `target` as right after it, as its post alone would: the messages
    are stored in one run until one changes (relates to, or takes back a reaction to) a message
    that an answer of the run shows as a target; the run is then stored and answered first."""
    run: list[tuple] = []  # stored messages not yet inserted, and the steps waiting on them
    shown: set = set()  # the targets the run's answers show

    def flush():
        messages = [step[3] for step in run if step[0] == "store"]
        if messages:
            Message.objects.bulk_create(messages)
            search.index_posted_many(messages)
        for step in run:
            kind, i = step[0], step[1]
            if kind == "store":
                out[i].result = PostResult(step[3], True, _stored(step[3], channel, sender, step[2], indexed=True,
                                                                  frames_out=live))
            else:
                message = step[2] if kind == "answer" else out[step[2]].result.message
                out[i].result = PostResult(message, False, posted_json(message, channel=channel))
        run.clear()
        shown.clear()

    target_of: dict[int, uuid.UUID] = {}  # a stored relation (by index) -> its target
    for step in steps:
        kind, i = step[0], step[1]
        if kind == "store":
            target = step[2].relates_to
            if target is not None:
                if {target.pk, target.relates_to_id} & shown:
                    flush()
                shown.add(target_of.setdefault(i, target.pk))
        else:  # it stores nothing, and shows the target of the relation it answers with
            shown.add(step[2].relates_to_id if kind == "answer" else target_of[step[2]])
        run.append(step)
    flush()


def _check_batch_relation(clean: CleanMessage, sender, seen: dict, i: int, same_relation: dict[int, int]) -> None:
    """`_check_relation_state`, and what the batch's earlier relations did to the same target: a
    second deletion, or the same reaction again, repeats the earlier one (`same_relation`); an edit or a
    reaction after a deletion is refused; a reaction whose stored twin the batch took back is new."""
    target = clean.relates_to.pk
    deleted = seen.get(("delete", target))
    if deleted is not None:
        if clean.msg_type != "delete":
            raise Invalid("That message was deleted.", details={"relates_to": "was deleted"})
        same_relation[i] = deleted
        return
    reaction_key = ("reaction", target, clean.payload.get("key")) if clean.msg_type == "reaction" else None
    if reaction_key in seen:
        same_relation[i] = seen[reaction_key]
        return
    try:
        _check_relation_state(clean, sender)
    except RelationRepeat as repeated:
        # The same reaction is stored, but an earlier message of the batch takes it back: posted
        # one after the other, this one would be a new reaction.
        if reaction_key is None or ("delete", repeated.message.pk) not in seen:
            raise
    if clean.msg_type == "delete":
        seen[("delete", target)] = i
    elif reaction_key is not None:
        seen[reaction_key] = i


def message_route(*, sender, story: Story, data, idempotency_key: str | None = None) -> tuple[list[PostResult], list[str]]:
    """Post one message to the inbox of every agent of the story whose capabilities include its type.

    Each copy gets an id derived from the request's id, or is stored under the request's key (and
    its agent), so a repeated route returns the same copies and stores nothing new.
    """
    clean = clean_message_input(data, sender=sender, story=story)
    agents = [p.user for p in Participant.objects.select_related("user__agent_profile")
              .filter(story=story, user__is_agent=True).order_by("user__username")
              if hasattr(p.user, "agent_profile") and p.user.agent_profile.handles(clean.msg_type)]
    if not agents:
        raise NoRoute(f"No agent in '{story.slug}' lists '{clean.msg_type}' in its capabilities.",
                      details={"msg_type": clean.msg_type})
    base_id = clean.id or uuid.uuid4()

    def attempt() -> list[PostResult]:
        copy_ids = {agent.pk: uuid.uuid5(base_id, agent.username) for agent in agents}
        keyed: dict[int, Message | None] = {}
        copy_keys: dict[int, str | None] = dict.fromkeys(copy_ids)
        if clean.id is None and idempotency_key:
            # Each copy is stored under the key and its agent (`ROUTE_KEY_SEPARATOR`), with a random id.
            legacy_base = legacy_key_id(sender, idempotency_key)
            copy_keys = {agent.pk: f"{idempotency_key}{ROUTE_KEY_SEPARATOR}{agent.username}" for agent in agents}
            found = _keyed_messages(sender, {copy_keys[agent.pk]: uuid.uuid5(legacy_base, agent.username)
                                             for agent in agents})
            keyed = {agent.pk: found.get(copy_keys[agent.pk]) for agent in agents}
            copy_ids.update({pk: message.pk for pk, message in keyed.items() if message is not None})
        clean.copy_ids = frozenset(copy_ids.values())
        results = []
        with transaction.atomic():
            pending = []
            for agent in agents:
                inbox = inbox_ensure(story=story, agent=agent)
                if inbox.is_archived:
                    continue
                copy_id = copy_ids[agent.pk]
                if copy_keys[agent.pk] is None:
                    existing = _existing_or_conflict(copy_id, channel=inbox, sender=sender, clean=clean)
                elif keyed[agent.pk] is not None:
                    existing = _key_repeat_or_conflict(keyed[agent.pk], channel=inbox, clean=clean)
                else:
                    existing = None
                if existing is not None:
                    results.append(PostResult(existing, False, posted_json(existing, channel=inbox,
                                                                           sender=existing.sender)))
                    continue
                # Every copy passes the policies before any is stored; `clean.copy_ids` tells them
                # that the copies of this route (stored now or by an earlier repeat) are one post.
                for policy in message_policies():
                    policy(sender=sender, channel=inbox, fields=clean, encoded_payload=clean.encoded_payload)
                pending.append((inbox, copy_id, copy_keys[agent.pk]))
            for inbox, copy_id, copy_key in pending:
                inbox.story = story
                message, data_json = _insert(inbox, sender, clean, copy_id, key=copy_key)
                results.append(PostResult(message, True, data_json))
        return results

    try:
        results = attempt()
    except IntegrityError:
        # A concurrent route with the same id or key stored the copies first (its transaction
        # has committed by the time our insert fails): repeat the lookup, which now finds them.
        if clean.id is None and not idempotency_key:
            raise
        results = attempt()
    results.sort(key=lambda r: r.data["channel"])  # agent order (inbox.<username>, by username)
    if not results:
        raise NoRoute("Every matching agent's inbox is archived.", details={"msg_type": clean.msg_type})
    return results, [r.data["channel"].removeprefix("inbox.") for r in results]


# --- Channels -------------------------------------------------------------------------------

def inbox_name(agent) -> str:
    return f"inbox.{agent.username}"


def inbox_ensure(*, story: Story, agent) -> Channel:
    """The agent's inbox in the story, created on first need (the agent is its owner member)."""
    channel = Channel.objects.select_related("story", "created_by", "inbox_agent").filter(
        story=story, name=inbox_name(agent)).first()
    if channel is not None:
        return channel
    try:
        # Two requests at once (two routes to an agent without an inbox yet) both find none: the
        # insert that loses hits the unique name inside its own savepoint and takes the other's.
        with transaction.atomic():
            channel = Channel.objects.create(story=story, name=inbox_name(agent), kind=Channel.Kind.INBOX,
                                             topic=f"Work for {agent.display_name or agent.username}",
                                             created_by=agent, inbox_agent=agent)
            Membership.objects.create(channel=channel, user=agent, role=Membership.Role.OWNER)
    except IntegrityError:
        return Channel.objects.select_related("story", "created_by", "inbox_agent").get(
            story=story, name=inbox_name(agent))
    events.publish_story_event(story, "channel.created", channel_json(channel, story_slug=story.slug),
                               only_user_ids=[agent.pk, story.owner_id])
    return channel


@transaction.atomic
def channel_create(*, story: Story, creator, name: str, kind: str, topic: str = "",
                   idle_archive_seconds: int | None = None) -> Channel:
    if kind not in (Channel.Kind.PUBLIC, Channel.Kind.PRIVATE, Channel.Kind.PRESENCE):
        raise Invalid("Channels of kind 'inbox' are created when an agent joins.",
                      details={"kind": one_of([Channel.Kind.PUBLIC, Channel.Kind.PRIVATE, Channel.Kind.PRESENCE])})
    if name.startswith("inbox."):
        # Reserved: `inbox_ensure` finds an agent's inbox by this name; a channel taken in advance
        # would stand in for the inbox of an agent joining later.
        raise Invalid("Names starting with 'inbox.' are reserved for agents' inboxes.",
                      details={"name": "'inbox.' names are reserved"})
    try:
        with transaction.atomic():
            channel = Channel.objects.create(story=story, name=name, kind=kind, topic=topic, created_by=creator,
                                             idle_archive_seconds=idle_archive_seconds)
    except IntegrityError:
        raise Conflict(f"Story '{story.slug}' already has a channel '{name}'.", details={"name": name}) from None
    only = None
    if kind != Channel.Kind.PUBLIC:
        Membership.objects.create(channel=channel, user=creator, role=Membership.Role.OWNER)
        only = sorted({creator.pk, story.owner_id})
    events.publish_story_event(story, "channel.created", channel_json(channel, story_slug=story.slug),
                               only_user_ids=only)
    return channel


def _visible_user_ids(channel: Channel):
    if channel.kind == Channel.Kind.PUBLIC:
        return None
    return sorted(set(channel.memberships.values_list("user_id", flat=True)) | {channel.story.owner_id})


def channel_set_archived(*, channel: Channel, by, archived: bool) -> bool:
    """Archive or unarchive the channel: True when this call changed it (False when it already
    was so, e.g. another request or sweeper got there first). `channel` then holds its stored state."""
    return _set_archived(channel=channel, by=by, archived=archived)


@transaction.atomic
def _set_archived(*, channel: Channel, by, archived: bool, idle_at=None) -> bool:
    """True when this call changed the channel. Only then is the change published, recorded in
    the audit log and told to open subscriptions: the UPDATE is guarded by the old state, so of
    two callers at once (two requests, two sweeping processes) or one holding a stale object,
    exactly one changes the row; the other finds it changed and does nothing.

    `idle_at`: archive only because `channel`, as read, was idle at that time. The UPDATE then
    also requires the `last_seq` and `idle_archive_seconds` that were read (every message bumps
    `last_seq` with `last_message_at`), and the last message (or the creation, without one) still
    at least `idle_archive_seconds` before `idle_at` (an unarchive restarts that clock): a message
    posted, an unarchive or a changed idle limit between the read and the UPDATE keeps the
    channel open. (`last_message_at` is not compared for equality: on SQLite the post's raw UPDATE
    stores it in another text form than the ORM's, and text is what SQLite compares.)"""
    now = timezone.now()
    if archived:
        rows = Channel.objects.filter(pk=channel.pk, archived_at__isnull=True)
        if idle_at is not None:
            cutoff = idle_at - timedelta(seconds=channel.idle_archive_seconds or 0)
            rows = rows.filter(Q(last_message_at__lte=cutoff)
                               | Q(last_message_at__isnull=True, created_at__lte=cutoff),
                               last_seq=channel.last_seq, idle_archive_seconds=channel.idle_archive_seconds)
        changed = rows.update(archived_at=now)
    else:
        # Unarchiving restarts the idle clock, or the sweeper would archive it again at once.
        changed = Channel.objects.filter(pk=channel.pk, archived_at__isnull=False).update(
            archived_at=None, last_message_at=now)
    if not changed:
        channel.refresh_from_db(fields=["archived_at", "last_message_at", "idle_archive_seconds"])
        return False
    if archived:
        channel.archived_at = now
        events.publish_story_event(channel.story, "channel.archived", channel_json(channel),
                                   only_user_ids=_visible_user_ids(channel))
        rights.channel_changed(channel)
        audit.record(audit.CHANNEL_ARCHIVED, by=by, channel=channel, note="" if by is not None else "idle")
    else:
        channel.archived_at, channel.last_message_at = None, now
        events.publish_story_event(channel.story, "channel.unarchived", channel_json(channel),
                                   only_user_ids=_visible_user_ids(channel))
        rights.channel_changed(channel)
        audit.record(audit.CHANNEL_UNARCHIVED, by=by, channel=channel)
    return True


@transaction.atomic
def channel_update(*, channel: Channel, by, topic: str | None = None, archived: bool | None = None,
                   idle_archive_seconds=...) -> Channel:
    changed = []
    if topic is not None and topic != channel.topic:
        channel.topic = topic
        changed.append("topic")
    if idle_archive_seconds is not ... and idle_archive_seconds != channel.idle_archive_seconds:
        channel.idle_archive_seconds = idle_archive_seconds
        changed.append("idle_archive_seconds")
    if changed:
        channel.save(update_fields=changed)
        events.publish_story_event(channel.story, "channel.updated", channel_json(channel),
                                   only_user_ids=_visible_user_ids(channel))
    if archived is not None:
        channel_set_archived(channel=channel, by=by, archived=archived)
    return channel


def archive_idle_channels(*, now=None) -> list[Channel]:
    """Archive every channel whose `idle_archive_seconds` have passed since its last message.

    Returns the channels this call archived: of several processes sweeping at once, each
    channel is archived (and published, and recorded) by exactly one, and a channel that got a
    message between the read and its UPDATE stays open (`archive_idle_channel`)."""
    now = now or timezone.now()
    return [channel for channel in idle_channels(now=now) if archive_idle_channel(channel, now=now)]


def idle_channels(*, now=None) -> list[Channel]:
    """The open channels whose `idle_archive_seconds` had passed since their last message, as read now."""
    now = now or timezone.now()
    return [channel for channel in (Channel.objects.select_related("story", "created_by", "inbox_agent")
                                    .filter(idle_archive_seconds__isnull=False, archived_at__isnull=True))
            if _idle_expired(channel, now)]


def archive_idle_channel(channel: Channel, *, now=None) -> bool:
    """Archive a channel `idle_channels(now=now)` returned. True when this call archived it; False
    when it changed since it was read (a message came in, it was archived or unarchived, its idle
    setting changed): the guarded UPDATE then matches nothing and the channel stays as it is."""
    return _set_archived(channel=channel, by=None, archived=True, idle_at=now or timezone.now())


# --- Members --------------------------------------------------------------------------------

@transaction.atomic
def member_add(*, channel: Channel, user, by=None) -> tuple[Membership, bool]:
    if channel.kind == Channel.Kind.PUBLIC:
        raise Invalid("Public channels have no member list: every reader of the story reads them.")
    if channel.kind == Channel.Kind.INBOX:
        raise Invalid("An inbox belongs to its agent; it takes no other members.")
    if not Participant.objects.filter(story_id=channel.story_id, user=user).exists():
        raise Invalid(f"'{user.username}' does not take part in this story; add them to the story first.",
                      details={"username": "not a participant of the story"})
    membership, created = Membership.objects.get_or_create(channel=channel, user=user)
    if created:
        events.publish_story_event(channel.story, "member.joined",
                                   {"channel": channel.name, "username": user.username},
                                   only_user_ids=_visible_user_ids(channel))
        rights.membership_changed(channel, user.pk)
        audit.record(audit.MEMBER_ADDED, by=by, channel=channel, subject=user, after={"role": membership.role})
    return membership, created


@transaction.atomic
def member_remove(*, channel: Channel, user, by=None) -> None:
    if channel.kind == Channel.Kind.INBOX and channel.inbox_agent_id == user.pk:
        raise Invalid("An agent cannot be removed from its own inbox.")
    visible = _visible_user_ids(channel)
    deleted, _ = Membership.objects.filter(channel=channel, user=user).delete()
    if deleted:
        events.publish_story_event(channel.story, "member.left",
                                   {"channel": channel.name, "username": user.username}, only_user_ids=visible)
        rights.membership_changed(channel, user.pk)  # the removed member's open topic is rechecked
        audit.record(audit.MEMBER_REMOVED, by=by, channel=channel, subject=user)


# --- Read cursors ---------------------------------------------------------------------------

@transaction.atomic
def cursor_ack(*, channel: Channel, user, seq: int) -> int:
    """Move the caller's read cursor forward to `seq` (never back); return the cursor."""
    if seq > channel.last_seq:
        channel.refresh_from_db(fields=["last_seq"])
    if seq > channel.last_seq:
        raise Invalid(f"seq {seq} is beyond the channel's last_seq {channel.last_seq}.",
                      details={"seq": f"must be at most {channel.last_seq}"})
    cursor, created = ReadCursor.objects.get_or_create(channel=channel, user=user, defaults={"seq": seq})
    if not created and cursor.seq < seq:
        ReadCursor.objects.filter(pk=cursor.pk, seq__lt=seq).update(seq=seq)
        cursor.refresh_from_db(fields=["seq"])
    return cursor.seq
