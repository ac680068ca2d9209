"""Payload schemas of the built-in message types (SPEC 6).

Deliberately tiny: a field spec per type, checked by hand so every error names its field in
`details` ({"payload.beats[2]": "must be a string"}). Other msg_types accept any JSON object.
Unknown keys inside a built-in payload are kept: agents may attach extra metadata.

`payload_schema` turns a type's field specs into JSON Schema (`PAYLOAD_CHECKS` says what each check
accepts; tests/messaging/test_asyncapi.py holds the two to `payload_errors`). The AsyncAPI document,
the OpenAPI schema (messaging/openapi.py) and the MCP `post_message` description (`payload_reference`)
are all built from it: a type or field added here appears in all three.
"""
import copy
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
    # A writer's request to the story's crew (docs/crew.md): what the next scene should do.
    "steer": (Field("text", _text),),
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


# --- the same, as JSON Schema ----------------------------------------------------------------

UUID_SCHEMA = {"type": "string", "format": "uuid",
               "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"}
_TEXT_SCHEMA = {"type": "string", "pattern": r"\S", "description": "Text, not only whitespace"}
PAYLOAD_CHECKS = {
    _text: _TEXT_SCHEMA,
    _short_text: {**_TEXT_SCHEMA, "maxLength": 200, "description": "Text, not only whitespace, at most 200 "
                                                                   "characters"},
    _string_list: {"type": "array", "minItems": 1, "items": _TEXT_SCHEMA},
    _message_id: {**UUID_SCHEMA, "description": "The id of a message of the same story that the sender may read"},
    _rating: {"type": "integer", "minimum": 1, "maximum": 5},
    _progress: {"type": "number", "minimum": 0, "maximum": 1},
}


def payload_schema(msg_type: str, *, openapi: bool = False) -> dict:
    """The JSON Schema of a built-in type's payload. Extra keys are kept by the server; a missing
    optional field may also be null (`anyOf [..., null]`; `nullable` with `openapi`, for OpenAPI 3.0)."""
    properties, required = {}, []
    for field in SCHEMAS[msg_type]:
        schema = copy.deepcopy(PAYLOAD_CHECKS.get(field.check, {}))
        if field.required:
            required.append(field.name)
        elif openapi:
            schema["nullable"] = True
        else:
            schema = {"anyOf": [schema, {"type": "null"}]}
        properties[field.name] = schema
    return {"type": "object", "required": required, "properties": properties,
            "description": f"The payload of msg_type '{msg_type}'."}


def _hint(schema: dict) -> str:
    """A few words for a field's JSON Schema: what an agent reads in the MCP tool description."""
    if schema.get("format") == "uuid":
        return "message id"
    if schema.get("type") == "array":
        return "list of strings" if schema.get("items", {}).get("type") == "string" else "list"
    if schema.get("type") in ("integer", "number"):
        return f"{schema['type']} {schema.get('minimum')}-{schema.get('maximum')}"
    if "maxLength" in schema:
        return f"string, at most {schema['maxLength']} characters"
    return "string"


def payload_reference() -> str:
    """One line per built-in type with its payload fields (`?`: optional), from `payload_schema`."""
    lines = []
    for msg_type in BUILT_IN_TYPES:
        schema = payload_schema(msg_type, openapi=True)
        fields = [f"{name}{'' if name in schema['required'] else '?'} ({_hint(spec)})"
                  for name, spec in schema["properties"].items()]
        lines.append(f"- {msg_type}: {{{', '.join(fields)}}}")
    return "\n".join(lines)
