"""Loop prevention: message policies that stop agents caught in a loop (SPEC 6).

Three policies, each listed in settings.MYTHLINE_MESSAGE_POLICIES and each raising LoopDetected
(422 `loop_detected`) before anything is stored, whatever the protocol (REST, WebSocket, MCP and
routing all go through `message_post` / `message_route`):

- `duplicate_payload_policy`: an agent posting a msg_type + payload it already posted within
  MYTHLINE_LOOP_WINDOW_SECONDS.
- `similar_payload_policy`: an agent posting its MYTHLINE_LOOP_MAX_SIMILAR-th near-identical
  payload within the window (same text once lowercased, with digits, punctuation and whitespace
  runs collapsed, and numbers ignored).
- `agent_reply_depth_policy`: a reply that would make more than MYTHLINE_LOOP_MAX_AGENT_DEPTH
  agent messages in a row up its reply chain, with no human in between.

Only agents are subject to them: humans may repeat themselves. A repeat of an earlier post with
the same id (or Idempotency-Key) is not a loop: `message_post` answers it with the original before
any policy runs. A reply to a human's message answers new input: it is compared only with the
agent's earlier replies to that same message, and it starts a new row of agent messages.

Each check costs a constant number of indexed queries: the recent-payload policies read at most
MYTHLINE_LOOP_SCAN_LIMIT of the sender's latest messages of that msg_type through the
(sender, created_at) index, shared by both through the message's policy cache (their ids and
times: each payload's comparison keys are computed once per process and kept, `_KEYS`); the depth policy
walks at most MYTHLINE_LOOP_MAX_AGENT_DEPTH parents by primary key. The checks are not serialized
against concurrent posts of the same agent: two identical posts racing each other may both pass.
"""
import hashlib
import json
import re
import threading
import uuid
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from messaging.models import Message
from messaging.scope import BatchScope
from mythline_site.errors import LoopDetected

_DIGITS = re.compile(r"\d+")
_PUNCTUATION = re.compile(r"[^\w\s]+")


def _canonical(payload) -> str:
    """One text per JSON value, whatever the key order (and `true` is not `1`, unlike in Python),
    and whatever form a number took: an integral float is written as the integer its JSON text
    names (`_same_number`), so a payload hashes alike as posted and as the database gives it back."""
    return json.dumps(_same_number(payload), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _same_number(value):
    """`value` with every integral float as the int its JSON text (`repr`) names: 1e16 posted is a
    float, but PostgreSQL's jsonb (exact numerics) hands back 10000000000000000 (SQLite the text as
    posted); 1e300 comes back as 10**300 (not int(1e300), the float's binary value). 1.0 stays 1.0
    in jsonb and becomes 1 here too. Other numbers, and everything else, stay as they are."""
    if isinstance(value, float):
        return int(Decimal(repr(value))) if value.is_integer() else value
    if isinstance(value, dict):
        return {key: _same_number(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_same_number(item) for item in value]
    return value


def _normalize_text(text: str) -> str:
    lowered = _DIGITS.sub("0", text.lower())
    words = " ".join(_PUNCTUATION.sub(" ", lowered).split())
    # Text made only of punctuation or emoji keeps its symbols, or all of it would look alike.
    return words or " ".join(lowered.split())


def _normalize(value):
    if isinstance(value, str):
        return _normalize_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return 0
    if isinstance(value, dict):
        return {key: _normalize(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalize(item) for item in value]
    return value


def payload_fingerprint(payload) -> str:
    """What two near-identical payloads have in common: 'Scene 3: the lamp!' ~ 'scene 4 the lamp'."""
    return _canonical(_normalize(payload))


# Process-wide: a stored message's payload keys (canonical, fingerprint), by its id and creation
# time. A payload never changes once stored (an edit is a message of its own), so an entry stays
# true; the oldest go first past the bound. An agent's next post finds its earlier ones here and reads only their
# ids and times from the database, not their payloads.
_KEYS: dict = {}
_KEYS_MAX = 20_000
_KEYS_LOCK = threading.Lock()  # request threads add and evict; reads are single `get`s
_PK = Message._meta.pk


def _keys_of(payload) -> tuple[bytes, bytes]:
    """The payload's two comparison keys, as 16-byte digests: its canonical JSON (the same payload)
    and its fingerprint (a near-identical one)."""
    return (hashlib.blake2b(_canonical(payload).encode(), digest_size=16).digest(),
            hashlib.blake2b(payload_fingerprint(payload).encode(), digest_size=16).digest())


def _own_keys(fields) -> tuple[bytes, bytes]:
    cache = fields.policy_cache
    if "loops.keys" not in cache:
        cache["loops.keys"] = _keys_of(fields.payload)
    return cache["loops.keys"]


def _slot(pk, created_at) -> tuple:
    """A message's id as the database hands it back in a raw row (`_recent`), and its creation time."""
    return _PK.get_db_prep_value(pk, connection), _when(created_at)


def remember(message: Message, fields) -> None:
    """Called by messaging.services for a message it stores: once its transaction commits, keep
    the keys its policies computed (nothing when none ran), so later posts need not read it back.
    One on_commit hook per message, or per batch inside `one_commit_hook()`."""
    keys = fields.policy_cache.get("loops.keys")
    if keys is None:
        return
    entry = (_slot(message.pk, message.created_at), keys)
    if not _batch.add(entry):
        transaction.on_commit(lambda: _keep([entry]), robust=True)


# Inside `one_commit_hook()`: what `remember` was given, kept by one hook when the transaction commits.
_batch = BatchScope("loops_batch", lambda entries: transaction.on_commit(lambda: _keep(entries), robust=True))


def one_commit_hook():
    """Within (inside the transaction that stores them): the messages `remember`ed are kept by one
    on_commit hook, registered on the way out (none when nothing was remembered, or when the block
    raised: its transaction does not commit; without those remembered inside a savepoint that
    rolled back). A hook that raises does not break the commit (robust). Nested: the outermost one
    registers the hook."""
    return _batch.open()


def _keep(entries: list) -> None:
    """Keep (slot, keys) pairs; past the bound the oldest go first."""
    with _KEYS_LOCK:
        for slot, keys in entries:
            _KEYS[slot] = keys
        while len(_KEYS) > _KEYS_MAX:
            _KEYS.pop(next(iter(_KEYS)), None)


def _stored_keys(rows: list[tuple]) -> dict:
    """The keys of stored messages, by their raw (id, created_at): from `_KEYS`, the rest read in
    one query (and kept)."""
    found = {}
    for slot in rows:
        keys = _KEYS.get(slot)  # one lookup: another thread may evict it between two
        if keys is not None:
            found[slot] = keys
    missing = [slot for slot in rows if slot not in found]
    if missing:
        by_pk = {uuid.UUID(str(pk)): (pk, created_at) for pk, created_at in missing}
        for pk, payload in Message.objects.filter(pk__in=list(by_pk)).values_list("id", "payload"):
            slot = by_pk[pk]
            found[slot] = _keys_of(payload)
        _keep([(slot, found[slot]) for slot in missing if slot in found])
    return found


def _recent(sender, channel, fields, human_reply) -> list[tuple]:
    """The (raw id, created_at) of the sender's latest messages of this msg_type in the story
    within the window, newest first, at most MYTHLINE_LOOP_SCAN_LIMIT. Hand-written (through the
    (sender, created_at) index): every post of an agent asks it, and the ORM's conversion of its
    rows cost more than the query."""
    since = timezone.now() - timedelta(seconds=settings.MYTHLINE_LOOP_WINDOW_SECONDS)
    qn = connection.ops.quote_name
    sql = (f"SELECT {qn('id')}, {qn('created_at')} FROM {qn(Message._meta.db_table)} WHERE {qn('sender_id')} = %s "
           f"AND {qn('story_id')} = %s AND {qn('msg_type')} = %s AND {qn('created_at')} >= %s")
    # Per story: the same words in two stories are two stories, not a loop.
    params = [sender.pk, channel.story_id, fields.msg_type, connection.ops.adapt_datetimefield_value(since)]
    if human_reply is not None:
        sql += f" AND {qn('reply_to_id')} = %s"
        params.append(_PK.get_db_prep_value(human_reply, connection))
    if fields.copy_ids:  # the other copies of a routed message are the same post
        sql += f" AND {qn('id')} NOT IN ({', '.join(['%s'] * len(fields.copy_ids))})"
        params += [_PK.get_db_prep_value(pk, connection) for pk in fields.copy_ids]
    sql += f" ORDER BY {qn('created_at')} DESC LIMIT %s"
    params.append(settings.MYTHLINE_LOOP_SCAN_LIMIT)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(pk, _when(created_at)) for pk, created_at in cursor.fetchall()]


def _when(created_at) -> datetime:
    """A raw created_at as an aware datetime: SQLite hands back a naive one (or text) in UTC."""
    if isinstance(created_at, datetime):
        return created_at if timezone.is_aware(created_at) else timezone.make_aware(created_at, dt_timezone.utc)
    return timezone.make_aware(parse_datetime(created_at), dt_timezone.utc)


def _replies_to_human(fields) -> bool:
    """Whether the new message answers a human's message (one query, shared by the policies)."""
    if fields.reply_to is None:
        return False
    cache = fields.policy_cache
    if "loops.reply_to_human" not in cache:
        cache["loops.reply_to_human"] = not (Message.objects.filter(pk=fields.reply_to.pk)
                                             .values_list("sender__is_agent", flat=True).first())
    return cache["loops.reply_to_human"]


def _earlier_posts(sender, channel, fields) -> list[tuple]:
    """The sender's latest messages of this msg_type within the window that a repeat of this post
    would repeat, newest first: (id, created_at, (canonical key, fingerprint key)), the id as the
    database gives it (`_recent`; `_message_id` reads it).
    Read once per post and shared.

    A reply to a human's message answers new input: it repeats only earlier replies to that same
    message (an agent answering two people's questions alike is no loop; answering one question
    twice is). Any other post repeats any earlier one. In a batch, its earlier messages count as
    posted just before this one (messaging.services.message_post_batch).
    """
    cache = fields.policy_cache
    if "loops.earlier" not in cache:
        human_reply = fields.reply_to.pk if _replies_to_human(fields) else None
        # The messages of a batch share one read of what was stored before it (`batch_cache`).
        shared = fields.batch_cache if fields.batch_cache is not None else cache
        key = ("loops.stored", fields.msg_type, human_reply)
        if key not in shared:
            rows = _recent(sender, channel, fields, human_reply)
            keys = _stored_keys(rows)
            shared[key] = [(pk, created_at, keys[(pk, created_at)]) for pk, created_at in rows
                           if (pk, created_at) in keys]
        now = timezone.now()
        in_batch = [(message_id, now, _own_keys(earlier)) for message_id, earlier in reversed(fields.earlier_in_batch)
                    if earlier.msg_type == fields.msg_type
                    and (human_reply is None or (earlier.reply_to is not None and earlier.reply_to.pk == human_reply))]
        cache["loops.earlier"] = (in_batch + shared[key])[:settings.MYTHLINE_LOOP_SCAN_LIMIT]
    return cache["loops.earlier"]


def earlier_changed(fields) -> None:
    """A batch's earlier messages changed under the lock (one was refused there): forget what this
    message's policies read of them; the stored posts and its own keys stay read."""
    fields.policy_cache.pop("loops.earlier", None)


def same_json(a, b) -> bool:
    """Whether two payloads are the same JSON value (`_canonical`)."""
    return _canonical(a) == _canonical(b)


def _bounded_relation(fields) -> bool:
    """A deletion or a reaction cannot loop: one deletion per message, one reaction per key, user
    and message (messaging/relations.py). Each one's payload ({} or {"key": "👍"}) is the same for
    every message it relates to, so comparing payloads would refuse an agent's second thumbs-up.
    Edits carry a new payload and are compared as any post."""
    return getattr(fields, "rel_type", None) in ("redact", "annotate")


def _seconds_ago(created_at) -> int:
    return max(0, round((timezone.now() - created_at).total_seconds()))


def _message_id(raw) -> str:
    return str(uuid.UUID(str(raw)))


def duplicate_payload_policy(*, sender, channel, fields, **_):
    """An agent may not post the same msg_type and payload twice within the window."""
    window = settings.MYTHLINE_LOOP_WINDOW_SECONDS
    if not sender.is_agent or window <= 0 or _bounded_relation(fields):
        return
    mine = _own_keys(fields)[0]
    for message_id, created_at, keys in _earlier_posts(sender, channel, fields):
        if keys[0] == mine:
            ago = _seconds_ago(created_at)
            raise LoopDetected(
                f"'{sender.username}' already posted this exact '{fields.msg_type}' payload {ago} s ago "
                f"(message {_message_id(message_id)}); posting it again within {window:g} s looks like a loop, "
                f"so nothing was stored. To retry a post safely, send it with the same id or Idempotency-Key (that "
                f"returns the original); otherwise post something new.",
                details={"policy": "duplicate_payload", "previous": _message_id(message_id), "seconds_ago": ago,
                         "window_seconds": window})


def similar_payload_policy(*, sender, channel, fields, **_):
    """An agent may post at most MYTHLINE_LOOP_MAX_SIMILAR - 1 near-identical payloads per window."""
    window, limit = settings.MYTHLINE_LOOP_WINDOW_SECONDS, settings.MYTHLINE_LOOP_MAX_SIMILAR
    if (not sender.is_agent or window <= 0 or limit <= 0
            or fields.msg_type in settings.MYTHLINE_LOOP_SIMILAR_EXEMPT_TYPES or _bounded_relation(fields)):
        return
    mine = _own_keys(fields)[1]
    similar = [(message_id, created_at) for message_id, created_at, keys in _earlier_posts(sender, channel, fields)
               if keys[1] == mine]
    if len(similar) + 1 >= limit:
        latest_id, latest_at = similar[0] if similar else (None, None)
        raise LoopDetected(
            f"'{sender.username}' already posted {len(similar)} near-identical '{fields.msg_type}' payloads "
            f"in the last {window:g} s (the same text but for case, digits, punctuation or spacing); "
            f"post number {len(similar) + 1} looks like a loop, so nothing was stored. Post something "
            f"new, or wait until the earlier ones are older than {window:g} s.",
            details={"policy": "similar_payload", "similar": len(similar), "limit": limit,
                     "previous": _message_id(latest_id) if latest_id else None,
                     "seconds_ago": _seconds_ago(latest_at) if latest_at else None, "window_seconds": window})


def agent_reply_depth_policy(*, sender, channel, fields, **_):
    """A reply may not make more than MYTHLINE_LOOP_MAX_AGENT_DEPTH agent messages in a row up its
    reply chain; any human message in the chain resets the count."""
    max_depth = settings.MYTHLINE_LOOP_MAX_AGENT_DEPTH
    if not sender.is_agent or max_depth <= 0 or fields.reply_to is None:
        return
    if _replies_to_human(fields):
        return
    # The new message and its parent are two agent messages in a row; walk on up from the
    # grandparent: at most max_depth - 1 lookups by primary key tell whether the row is too long.
    # A stored message's chain never changes: one walk serves every message of a batch that
    # replies to the same parent, and a message whose policies run again.
    cache = fields.batch_cache if fields.batch_cache is not None else fields.policy_cache
    key = ("loops.depth", fields.reply_to.pk, max_depth)
    if key not in cache:
        depth, parent_id = 2, fields.reply_to.reply_to_id
        while parent_id is not None and depth <= max_depth:
            row = Message.objects.filter(pk=parent_id).values_list("reply_to_id", "sender__is_agent").first()
            if row is None or not row[1]:
                break  # a human wrote it: the row of agent messages starts after it
            depth += 1
            parent_id = row[0]
        cache[key] = depth
    depth = cache[key]
    if depth > max_depth:
        raise LoopDetected(
            f"This reply would be agent message number {depth} in a row in its reply chain, with no human "
            f"in between (the limit is {max_depth}): agents seem to be answering each other without end, so "
            f"nothing was stored. A human reply in the thread resets the count; or start a new thread "
            f"(post without reply_to).",
            details={"policy": "agent_reply_depth", "depth": depth, "max_depth": max_depth,
                     "reply_to": str(fields.reply_to.pk)})
