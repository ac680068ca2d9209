"""The API's JSON parser: DRF's, also refusing JSON that parses in Python but cannot be stored or sent back.

- a number that overflows to infinity (`1e400`): like `NaN`, it is not JSON-compliant, no database
  stores it and no answer can render it;
- an unpaired UTF-16 surrogate (a lone escaped `"\\ud800"`): not Unicode text, so it cannot be
  encoded as UTF-8 (stored, logged, echoed in an error's details);
- nesting deeper than Python's recursion limit.

Each is a malformed body: 400 `invalid`, before any view sees the data.
"""
import codecs
import json
import math
import re

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils.json import strict_constant

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"Out of range float values are not JSON compliant: {text[:40]}")
    return value


def any_string(value, test) -> bool:
    """Does `test` hold for any string (key or value) in this parsed JSON? Iterative: any depth."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if test(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def has_surrogate(value) -> bool:
    return any_string(value, _SURROGATE.search)


def has_nul(value) -> bool:
    return any_string(value, lambda text: "\x00" in text)


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        try:
            text = codecs.getreader(encoding)(stream).read()
            data = json.loads(text, parse_constant=strict_constant, parse_float=_finite_float)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        # Escaped surrogate pairs (emoji from ensure_ascii encoders) are common and fine: only look
        # further when the body has a surrogate escape at all.
        if _SURROGATE_ESCAPE.search(text) and has_surrogate(data):
            raise ParseError("JSON parse error - a string holds an unpaired UTF-16 surrogate (not text)")
        return data
