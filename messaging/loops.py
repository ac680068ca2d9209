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
(sender, created_at) index, shared by both through the message's policy cache; the depth policy
walks at most MYTHLINE_LOOP_MAX_AGENT_DEPTH parents by primary key. The checks are not serialized
against concurrent posts of the same agent: two identical posts racing each other may both pass.
"""
import json
import re
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from messaging.models import Message
from mythline_site.errors import LoopDetected

_DIGITS = re.compile(r"\d+")
_PUNCTUATION = re.compile(r"[^\w\s]+")


def _canonical(payload) -> str:
    """One text per JSON value, whatever the key order (and `true` is not `1`, unlike in Python)."""
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


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


def _earlier_keys(sender, channel, fields, kind: str, compute) -> list[tuple]:
    """The earlier posts (`_earlier_posts`) as (`compute(payload)`, id, created_at), each computed
    once per message: a batch's messages share them (each is compared with the same earlier ones),
    so a batch of n computes n of them, not n²."""
    shared = fields.batch_cache if fields.batch_cache is not None else fields.policy_cache
    memo = shared.setdefault(kind, {})
    keys = []
    for message_id, payload, created_at in _earlier_posts(sender, channel, fields):
        key = memo.get(message_id)
        if key is None:
            key = memo[message_id] = compute(payload)
        keys.append((key, message_id, created_at))
    return keys


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
    would repeat, newest first: (id, payload, created_at). Read once per post and shared.

    A reply to a human's message answers new input: it repeats only earlier replies to that same
    message (an agent answering two people's questions alike is no loop; answering one question
    twice is). Any other post repeats any earlier one.
    """
    window = settings.MYTHLINE_LOOP_WINDOW_SECONDS
    cache = fields.policy_cache
    if "loops.earlier" not in cache:
        human_reply = fields.reply_to.pk if _replies_to_human(fields) else None
        # The messages of a batch share one read of what was stored before it (`batch_cache`).
        shared = fields.batch_cache if fields.batch_cache is not None else cache
        key = ("loops.stored", fields.msg_type, human_reply)
        if key not in shared:
            since = timezone.now() - timedelta(seconds=window)
            # Per story: the same words in two stories are two stories, not a loop.
            qs = Message.objects.filter(sender_id=sender.pk, story_id=channel.story_id, created_at__gte=since,
                                        msg_type=fields.msg_type)
            if human_reply is not None:
                qs = qs.filter(reply_to_id=human_reply)
            if fields.copy_ids:  # the other copies of a routed message are the same post
                qs = qs.exclude(pk__in=list(fields.copy_ids))
            shared[key] = list(qs.order_by("-created_at").values_list("id", "payload", "created_at")
                               [:settings.MYTHLINE_LOOP_SCAN_LIMIT])
        # A batch's earlier messages count as posted just before this one (messaging.services.message_post_batch).
        now = timezone.now()
        in_batch = [(message_id, earlier.payload, now) for message_id, earlier in reversed(fields.earlier_in_batch)
                    if earlier.msg_type == fields.msg_type
                    and (human_reply is None or (earlier.reply_to is not None and earlier.reply_to.pk == human_reply))]
        cache["loops.earlier"] = (in_batch + shared[key])[:settings.MYTHLINE_LOOP_SCAN_LIMIT]
    return cache["loops.earlier"]


def _bounded_relation(fields) -> bool:
    """A deletion or a reaction cannot loop: one deletion per message, one reaction per key, user
    and message (messaging/relations.py). Each one's payload ({} or {"key": "👍"}) is the same for
    every message it relates to, so comparing payloads would refuse an agent's second thumbs-up.
    Edits carry a new payload and are compared as any post."""
    return getattr(fields, "rel_type", None) in ("redact", "annotate")


def _seconds_ago(when) -> int:
    return max(0, round((timezone.now() - when).total_seconds()))


def duplicate_payload_policy(*, sender, channel, fields, **_):
    """An agent may not post the same msg_type and payload twice within the window."""
    window = settings.MYTHLINE_LOOP_WINDOW_SECONDS
    if not sender.is_agent or window <= 0 or _bounded_relation(fields):
        return
    mine = _canonical(fields.payload)
    for key, message_id, created_at in _earlier_keys(sender, channel, fields, "loops.canonical", _canonical):
        if key == mine:
            ago = _seconds_ago(created_at)
            raise LoopDetected(
                f"'{sender.username}' already posted this exact '{fields.msg_type}' payload {ago} s ago "
                f"(message {message_id}); posting it again within {window:g} s looks like a loop, so nothing "
                f"was stored. To retry a post safely, send it with the same id or Idempotency-Key (that "
                f"returns the original); otherwise post something new.",
                details={"policy": "duplicate_payload", "previous": str(message_id), "seconds_ago": ago,
                         "window_seconds": window})


def similar_payload_policy(*, sender, channel, fields, **_):
    """An agent may post at most MYTHLINE_LOOP_MAX_SIMILAR - 1 near-identical payloads per window."""
    window, limit = settings.MYTHLINE_LOOP_WINDOW_SECONDS, settings.MYTHLINE_LOOP_MAX_SIMILAR
    if (not sender.is_agent or window <= 0 or limit <= 0
            or fields.msg_type in settings.MYTHLINE_LOOP_SIMILAR_EXEMPT_TYPES or _bounded_relation(fields)):
        return
    mine = payload_fingerprint(fields.payload)
    similar = [(message_id, created_at) for key, message_id, created_at
               in _earlier_keys(sender, channel, fields, "loops.fingerprint", payload_fingerprint) if key == mine]
    if len(similar) + 1 >= limit:
        latest_id, latest_at = similar[0] if similar else (None, None)
        raise LoopDetected(
            f"'{sender.username}' already posted {len(similar)} near-identical '{fields.msg_type}' payloads "
            f"in the last {window:g} s (the same text but for case, digits, punctuation or spacing); "
            f"post number {len(similar) + 1} looks like a loop, so nothing was stored. Post something "
            f"new, or wait until the earlier ones are older than {window:g} s.",
            details={"policy": "similar_payload", "similar": len(similar), "limit": limit,
                     "previous": str(latest_id) if latest_id else None,
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
    depth, parent_id = 2, fields.reply_to.reply_to_id
    while parent_id is not None and depth <= max_depth:
        row = Message.objects.filter(pk=parent_id).values_list("reply_to_id", "sender__is_agent").first()
        if row is None or not row[1]:
            break  # a human wrote it: the row of agent messages starts after it
        depth += 1
        parent_id = row[0]
    if depth > max_depth:
        raise LoopDetected(
            f"This reply would be agent message number {depth} in a row in its reply chain, with no human "
            f"in between (the limit is {max_depth}): agents seem to be answering each other without end, so "
            f"nothing was stored. A human reply in the thread resets the count; or start a new thread "
            f"(post without reply_to).",
            details={"policy": "agent_reply_depth", "depth": depth, "max_depth": max_depth,
                     "reply_to": str(fields.reply_to.pk)})
