"""Relations in the log: edits, deletions and reactions (Matrix m.replace, m.redaction, m.annotation).

A relation is a message like any other (its own seq, posted through `services.message_post`) with
`relates_to` (an earlier message of the same channel) and `rel_type`. Nothing stored is rewritten:
the aggregated view of a message (its current payload, `edited_at`, `deleted`, its reactions) is
computed from its relations when it is read, in at most three queries per page (`views_for`).
"""
from django.db.models import Case, Count, Exists, IntegerField, Max, Min, OuterRef, When
from django.db.models.fields.json import KeyTextTransform

from messaging.models import Message

RelType = Message.RelType
# The reserved msg_types of relations, and the rel_type each stores.
RELATION_TYPES = {"edit": RelType.REPLACE, "delete": RelType.REDACT, "reaction": RelType.ANNOTATE}
MAX_REACTION_KEY = 32
MAX_DELETE_REASON = 500


def fresh_view() -> dict:
    """The aggregated fields of a message nothing relates to yet (a message just posted)."""
    return {"edited_at": None, "deleted": False, "reactions": []}


def relation_payload_errors(msg_type: str, payload: dict) -> dict[str, str]:
    """The shape of a relation's own payload (an edit's new payload is checked against its target's
    type once the target is known: `services`)."""
    errors = {}
    allowed = {"edit": {"payload"}, "delete": {"reason"}, "reaction": {"key"}}[msg_type]
    for name in sorted(set(payload) - allowed):
        errors[f"payload.{name}"] = f"unknown field for msg_type '{msg_type}'"
    if msg_type == "edit":
        if not isinstance(payload.get("payload"), dict):
            errors["payload.payload"] = "is required: the new payload (a JSON object)"
    elif msg_type == "delete":
        reason = payload.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_DELETE_REASON):
            errors["payload.reason"] = f"must be a string of at most {MAX_DELETE_REASON} characters"
    else:
        key = payload.get("key")
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_REACTION_KEY or key != key.strip():
            errors["payload.key"] = (f"is required: an emoji or short text, 1-{MAX_REACTION_KEY} characters, "
                                     "no surrounding spaces")
    return errors


def _taken_back():
    return Exists(Message.objects.filter(relates_to_id=OuterRef("pk"), rel_type=RelType.REDACT))


def views_for(messages, reader=None) -> dict:
    """The aggregated view of each message (by pk): `edited_at`, `deleted`, `reactions` (each
    {key, count, me}, in the order they were first given), and `payload` when an edit or a deletion
    changed it. `me` is whether `reader` reacted with that key; None without a reader (a frame
    broadcast to everyone). Three queries at most, whatever the number of messages."""
    from messaging.serializers import iso

    ids = [m.pk for m in messages]
    if not ids:
        return {}
    views = {pk: fresh_view() for pk in ids}
    latest_edit = {}
    changes = (Message.objects.filter(relates_to_id__in=ids, rel_type__in=[RelType.REPLACE, RelType.REDACT])
               .order_by("seq").values_list("pk", "relates_to_id", "rel_type", "created_at"))
    for pk, target, rel_type, created_at in changes:
        if rel_type == RelType.REDACT:
            views[target]["deleted"] = True
        else:
            views[target]["edited_at"] = iso(created_at)
            latest_edit[target] = pk
    if latest_edit:
        payloads = dict(Message.objects.filter(pk__in=list(latest_edit.values())).values_list("pk", "payload"))
        for target, pk in latest_edit.items():
            new = payloads[pk].get("payload") if isinstance(payloads.get(pk), dict) else None
            views[target]["payload"] = new
    for pk in ids:
        if views[pk]["deleted"]:
            views[pk]["payload"] = None
    counts = {"count": Count("pk"), "first": Min("seq")}
    if reader is not None:
        counts["me"] = Max(Case(When(sender_id=reader.pk, then=1), default=0, output_field=IntegerField()))
    reactions = (Message.objects.filter(relates_to_id__in=ids, rel_type=RelType.ANNOTATE).filter(~_taken_back())
                 .annotate(key=KeyTextTransform("key", "payload")).values("relates_to_id", "key")
                 .annotate(**counts).order_by("relates_to_id", "first"))
    for row in reactions:
        views[row["relates_to_id"]]["reactions"].append(
            {"key": row["key"], "count": row["count"], "me": bool(row["me"]) if reader is not None else None})
    return views


def deletion_of(target: Message) -> Message | None:
    """The message's deletion, if it was deleted."""
    return (Message.objects.select_related("sender").filter(relates_to=target, rel_type=RelType.REDACT)
            .order_by("seq").first())


def reaction_of(target: Message, sender, key: str) -> Message | None:
    """The sender's reaction with `key` to the message, unless taken back."""
    return (Message.objects.select_related("sender")
            .filter(relates_to=target, rel_type=RelType.ANNOTATE, sender=sender, payload__key=key)
            .filter(~_taken_back()).order_by("seq").first())
