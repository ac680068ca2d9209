"""Who a message mentions: `@username` in its text, and its explicit `mentions` list.

Read by messaging.services.clean_message_input (which stores the result on the message, as
`Message.mentions`) and by notifications.services (which notifies those who may read it).

The rule for text: every string value of the payload (nested ones too), `@` at the start or after
a character that is not part of a name (so `mia@example.org` is no mention), then the name:
letters, digits, `_`, `.`, `-`, not ending in `.` or `-` (so "@mia." at the end of a sentence is
@mia). Names are matched case-insensitively against the story's participants; a name that is no
participant is plain text. Relations mention no one (`delete`, `reaction`); an `edit` mentions
whom its new payload mentions. The server's inbox copies (msg_type `mention`) are never read here.
"""
import re

from django.db.models.functions import Lower

from stories.models import Participant

MAX_MENTIONS = 50  # explicit names per message; also the most `@names` of a text that are looked up
MENTION_COPY_TYPE = "mention"  # reserved: the server's copy of a mention in an agent's inbox
NOT_PARTICIPANTS = "must be participants of this story"
_MENTION_RE = re.compile(r"(?<![A-Za-z0-9_.@+-])@([A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)")
_MAX_STRINGS = 1000  # string values of one payload scanned (payloads are bounded in bytes anyway)


def _strings(value):
    """Every string value in `value` (iteratively: any depth), at most _MAX_STRINGS."""
    stack, seen = [value], 0
    while stack and seen < _MAX_STRINGS:
        item = stack.pop()
        if isinstance(item, str):
            seen += 1
            yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def names_in_text(payload) -> list[str]:
    """The `@names` of a payload's text, lowercased, in order of first appearance, at most MAX_MENTIONS."""
    names: dict[str, None] = {}
    for text in _strings(payload):
        if "@" not in text:
            continue
        for match in _MENTION_RE.finditer(text):
            names.setdefault(match.group(1).lower(), None)
            if len(names) >= MAX_MENTIONS:
                return list(names)
    return list(names)


def scanned_payload(msg_type: str, payload):
    """The part of a payload whose text can mention: an edit's new payload; nothing of a deletion,
    a reaction, or a mention copy; the whole payload of anything else."""
    if msg_type == "edit":
        return payload.get("payload") if isinstance(payload, dict) else None
    if msg_type in ("delete", "reaction", MENTION_COPY_TYPE):
        return None
    return payload


def participants_named(story_id: int, names) -> dict[str, tuple[int, str]]:
    """lowercased name -> (user id, username) for the story's participants among `names` (one query).
    Of two participants whose names differ only in case, the exact spelling wins, else the first."""
    lowered = {name.lower(): name for name in names}
    if not lowered:
        return {}
    found: dict[str, tuple[int, str]] = {}
    rows = (Participant.objects.annotate(lname=Lower("user__username"))
            .filter(story_id=story_id, lname__in=list(lowered), user__is_active=True)
            .order_by("user_id").values_list("lname", "user_id", "user__username"))
    for lname, user_id, username in rows:
        if lname not in found or username == lowered[lname]:
            found[lname] = (user_id, username)
    return found


def resolve(story_id: int, *, explicit: list[str], msg_type: str, payload) -> tuple[list[str], list[str]]:
    """(the usernames mentioned, in order: explicit ones first; the explicit names that are no
    participants). One query, none when nothing is named."""
    in_text = names_in_text(scanned_payload(msg_type, payload)) if payload is not None else []
    wanted = [name.lower() for name in explicit] + in_text
    found = participants_named(story_id, wanted) if wanted else {}
    missing = [name for name in explicit if name.lower() not in found]
    usernames = list(dict.fromkeys(found[name][1] for name in wanted if name in found))
    return usernames, missing
