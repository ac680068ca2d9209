"""Reads of the audit log of rights: the story's rows for its export (never an API of its own)."""
from audit.models import RightsEvent


def _iso(value):
    return value.isoformat().replace("+00:00", "Z") if value else None


def rights_event_json(event: RightsEvent) -> dict:
    return {"id": event.pk, "created_at": _iso(event.created_at), "type": event.event_type,
            "actor": event.actor.username if event.actor_id else None,
            "subject": event.subject.username if event.subject_id else None,
            "channel": event.channel.name if event.channel_id else None,
            "before": event.before, "after": event.after, "extra": event.extra, "note": event.note}


def story_rights_events(story):
    """The story's audit rows, oldest first."""
    return (RightsEvent.objects.filter(story=story).select_related("actor", "subject", "channel")
            .order_by("id"))
