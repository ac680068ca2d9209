"""Payload schemas of the built-in message types (SPEC 6).

Deliberately tiny: a field spec per type, checked by hand so every error names its field in
`details` ({"payload.beats[2]": "must be a string"}). Other msg_types accept any JSON object.
Unknown keys inside a built-in payload are kept: agents may attach extra metadata.
"""
import uuid
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Field:
    name: str
    check: Callable[[Any], str | None]  # returns an error text, or None when the value is fine
    required: bool = True


def _text(value):
    if not isinstance(value, str):
        return "must be a string"
    if not value.strip():
        return "must not be empty"
    return None


def _short_text(value):
    return _text(value) or (None if len(value) <= 200 else "must be at most 200 characters")


def _string_list(value):
    if not isinstance(value, list):
        return "must be a list of strings"
    if not value:
        return "must have at least one entry"
    return None


def _message_id(value):
    if not isinstance(value, str):
        return "must be a message id (UUID string)"
    try:
        uuid.UUID(value)
    except ValueError:
        return "must be a message id (UUID string)"
    return None


def _rating(value):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        return "must be an integer from 1 to 5"
    return None


def _progress(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        return "must be a number from 0 to 1"
    return None


SCHEMAS: dict[str, tuple[Field, ...]] = {
    "text": (Field("text", _text),),
    "scene_plan": (Field("title", _short_text), Field("beats", _string_list)),
    "narration": (Field("text", _text),),
    "dialogue": (Field("character", _short_text), Field("line", _text), Field("direction", _text, required=False)),
    "feedback": (Field("text", _text), Field("target", _message_id, required=False),
                 Field("rating", _rating, required=False)),
    "query": (Field("text", _text),),
    "task_update": (Field("task", _text), Field("status", _short_text), Field("progress", _progress, required=False)),
    "proposal": (Field("text", _text),),
    "vote": (Field("proposal", _message_id), Field("choice", _short_text)),
    "decision": (Field("text", _text), Field("proposal", _message_id, required=False)),
}
BUILT_IN_TYPES = tuple(SCHEMAS)


def payload_errors(msg_type: str, payload: dict) -> dict[str, str]:
    """Field-named errors of `payload` against its type's schema; empty when it is valid."""
    errors: dict[str, str] = {}
    for field in SCHEMAS.get(msg_type, ()):
        if field.name not in payload or payload[field.name] is None:
            if field.required:
                errors[f"payload.{field.name}"] = f"is required for msg_type '{msg_type}'"
            continue
        problem = field.check(payload[field.name])
        if problem:
            errors[f"payload.{field.name}"] = problem
    if msg_type == "scene_plan" and isinstance(payload.get("beats"), list):
        for i, beat in enumerate(payload["beats"]):
            problem = _text(beat)
            if problem:
                errors[f"payload.beats[{i}]"] = problem
    return errors


def referenced_message_ids(msg_type: str, payload: dict) -> dict[str, str]:
    """Payload fields that point at other messages (feedback target, vote proposal...)."""
    refs = {}
    for field in SCHEMAS.get(msg_type, ()):
        if field.check is _message_id and isinstance(payload.get(field.name), str):
            refs[f"payload.{field.name}"] = payload[field.name]
    return refs
