"""The searchable text of a message: the prose of its payload, by msg_type. Pure (no database).

Built-in types give the fields a reader reads (messaging/schemas.py): not ids, ratings or numbers.
Any other type gives every string value of its payload, depth first, in key order as stored.
The result is bounded (`MAX_CHARS`), and never holds the two characters the highlights use as
markers (`MARK_START`, `MARK_END`, from Unicode's private use area) nor NUL.
"""
MAX_CHARS = 100_000
MAX_DEPTH = 20
MARK_START, MARK_END = "\ue000", "\ue001"
_STRIP = {ord(MARK_START): " ", ord(MARK_END): " ", 0: " "}

# msg_type -> the payload fields that hold prose (a list field: each of its strings).
PROSE_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "narration": ("text",),
    "query": ("text",),
    "proposal": ("text",),
    "steer": ("text",),
    "decision": ("text",),
    "feedback": ("text",),
    "scene_plan": ("title", "beats"),
    "dialogue": ("character", "line", "direction"),
    "task_update": ("task", "status"),
    "vote": ("choice",),
}


def _strings(value, out: list[str], budget: list[int], depth: int = 0) -> None:
    """Every string in `value` (dicts and lists walked), until the budget of characters is spent."""
    if budget[0] <= 0 or depth > MAX_DEPTH:
        return
    if isinstance(value, str):
        if value:
            out.append(value[:budget[0]])
            budget[0] -= len(out[-1]) + 1
    elif isinstance(value, dict):
        for item in value.values():
            _strings(item, out, budget, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out, budget, depth + 1)


def message_text(msg_type: str, payload) -> str:
    """The text to index for a message of `msg_type` with `payload` ("" when there is none)."""
    if not isinstance(payload, dict):
        return ""
    out: list[str] = []
    budget = [MAX_CHARS]
    fields = PROSE_FIELDS.get(msg_type)
    if fields is None:
        _strings(payload, out, budget)
    else:
        for name in fields:
            value = payload.get(name)
            if isinstance(value, str):
                _strings(value, out, budget)
            elif isinstance(value, list):
                _strings([v for v in value if isinstance(v, str)], out, budget)
    return "\n".join(out)[:MAX_CHARS].translate(_STRIP)
