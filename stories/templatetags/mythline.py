"""Small template helpers for the pages: avatar initials and colours (the same as the bundle's)."""
from django import template

register = template.Library()


@register.filter
def initials(name) -> str:
    words = [w for w in str(name or "").replace("-", " ").replace("_", " ").split() if w]
    if not words:
        return "?"
    if len(words) == 1:
        return words[0][:2].upper() if len(words[0]) > 1 else words[0].upper()
    return (words[0][0] + words[1][0]).upper()


@register.filter
def hue(username) -> int:
    """The hue `userColor()` in frontend/src/collab.js gives this username (cursors and avatars match)."""
    h = 0
    for ch in str(username or ""):
        h = (h * 31 + ord(ch)) & 0xFFFFFFFF
    return h % 360
