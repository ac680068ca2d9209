"""Reads for the story bible: entries as JSON (as of a scene, with its progressions applied), the
list's filters, and `entries_mentioned`, which finds the entries a text names."""
import functools
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from django.db.models import Count, Max, Prefetch, Q, Sum

from bible.models import BibleEntry, BibleProgression
from mythline_site.errors import Invalid, NotFound, PayloadTooLarge
from stories.models import Story

MAX_QUERY_CHARS = 200
MAX_MENTION_TEXT_CHARS = 200_000


def _iso(value):
    return value.isoformat().replace("+00:00", "Z") if value else None


def progression_json(p: BibleProgression) -> dict:
    return {"id": p.pk, "from_scene": p.from_scene, "description": p.description, "fields": p.fields,
            "note": p.note, "created_by": p.created_by.username, "created_at": _iso(p.created_at)}


def resolve(entry: BibleEntry, scene: int | None) -> tuple[str, dict, list[int]]:
    """The entry's (description, fields, ids of the progressions applied) as of `scene`: each
    progression with from_scene <= scene, in scene order, replaces the description (when it has
    one) and merges its fields over the fields so far."""
    description, fields, applied = entry.description, dict(entry.fields), []
    if scene is not None:
        for p in sorted(entry.progressions.all(), key=lambda p: p.from_scene):
            if p.from_scene > scene:
                break
            if p.description is not None:
                description = p.description
            fields.update(p.fields)
            applied.append(p.pk)
    return description, fields, applied


def entry_json(entry: BibleEntry, *, story_slug: str | None = None, scene: int | None = None) -> dict:
    """An entry; with `scene`, its description and fields as of that scene (`applied`: the
    progressions that made them). `progressions` always lists them all."""
    description, fields, applied = resolve(entry, scene)
    data = {
        "slug": entry.slug, "story": story_slug or entry.story.slug, "kind": entry.kind, "name": entry.name,
        "aliases": entry.aliases, "description": description, "fields": fields,
        "progressions": [progression_json(p) for p in sorted(entry.progressions.all(), key=lambda p: p.from_scene)],
        "version": entry.version, "created_by": entry.created_by.username, "updated_by": entry.updated_by.username,
        "created_at": _iso(entry.created_at), "updated_at": _iso(entry.updated_at),
    }
    if scene is not None:
        data["scene"] = scene
        data["applied"] = applied
    return data


def entries(story: Story):
    """The story's entries, by name, with what `entry_json` reads."""
    return (BibleEntry.objects.filter(story=story).select_related("created_by", "updated_by")
            .prefetch_related(Prefetch("progressions", BibleProgression.objects.select_related("created_by"))))


def entry_get(story: Story, slug: str) -> BibleEntry:
    entry = entries(story).filter(slug=slug).first() if isinstance(slug, str) else None
    if entry is None:
        raise NotFound(f"No bible entry '{slug}' in story '{story.slug}'.")
    entry.story = story
    return entry


def parse_scene(value) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Invalid("'scene' must be a scene number, 1 or more.", details={"scene": "an integer >= 1"})
    try:
        scene = int(value)
    except (TypeError, ValueError):
        raise Invalid("'scene' must be a scene number, 1 or more.", details={"scene": "an integer >= 1"}) from None
    if not 1 <= scene <= 2**31 - 1:
        raise Invalid("'scene' must be a scene number, 1 or more.", details={"scene": "an integer >= 1"})
    return scene


def filtered(story: Story, *, kind=None, query=None):
    """`entries(story)` of one kind, and/or whose name, an alias or the description holds `query`
    (any case)."""
    qs = entries(story)
    if kind not in (None, ""):
        if kind not in BibleEntry.Kind.values:
            raise Invalid("Unknown kind.", details={"kind": f"must be one of: {', '.join(BibleEntry.Kind.values)}"})
        qs = qs.filter(kind=kind)
    if query not in (None, ""):
        if not isinstance(query, str) or len(query) > MAX_QUERY_CHARS or "\x00" in query:
            raise Invalid(f"'q' is text of at most {MAX_QUERY_CHARS} characters.", details={"q": "invalid"})
        qs = qs.filter(Q(search_names__contains=query.casefold()) | Q(description__icontains=query))
    return qs


# --- mentions --------------------------------------------------------------------------------------

@dataclass
class Mention:
    entry: BibleEntry
    spans: list[tuple[int, int]] = field(default_factory=list)  # [start, end) in characters of the text
    scene: int | None = None  # the scene the entry is read as of (see `entry_json`)

    def json(self) -> dict:
        return mention_json(self)


@dataclass
class _Matcher:
    regex: re.Pattern | None
    terms: dict[str, list[int]]  # a name or alias, folded (`fold`) -> the ids of the entries it names


_CACHE: "OrderedDict[int, tuple[tuple, _Matcher]]" = OrderedDict()
_CACHE_SIZE = 32  # stories whose compiled pattern a process keeps (each at most MYTHLINE_BIBLE_MAX_TERM_CHARS)
_CACHE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    folded = char.casefold()
    if len(folded) == 1:
        return folded
    lowered = char.lower()
    return lowered if len(lowered) == 1 else char


def fold(text: str) -> str:
    """`text` with each character casefolded where that gives one character (else lowercased where
    that does, else kept): the same length as `text`, so a span in the folded text is a span in
    `text`; "ſ", "S" and "s" all fold to "s", "ς" to "σ", the Kelvin sign to "k"."""
    if text.isascii():
        return text.lower()
    return "".join([_fold_char(c) for c in text])


def _trie_pattern(words: list[str]) -> str:
    """One regex for many words, as a trie: at each character the alternatives are few, so a text
    is scanned in time independent of the number of words. Greedy: the longest word wins."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = True

    def emit(node) -> str:
        end = "" in node
        branches = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char != ""]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if end:
            return "(?:" + body + ")?"
        return body

    return emit(trie)


def _fingerprint(story: Story) -> tuple:
    agg = BibleEntry.objects.filter(story=story).aggregate(n=Count("id"), v=Sum("version"), last=Max("id"),
                                                           at=Max("updated_at"))
    return (agg["n"], agg["v"], agg["last"], agg["at"])


def _matcher(story: Story) -> _Matcher:
    """The compiled regex of the story's names and aliases, cached per process for as long as no
    entry is added, changed or deleted (the fingerprint: count, versions, last id, last update)."""
    key = _fingerprint(story)
    with _CACHE_LOCK:
        cached = _CACHE.get(story.pk)
        if cached is not None and cached[0] == key:
            _CACHE.move_to_end(story.pk)
            return cached[1]
    terms: dict[str, list[int]] = {}
    for pk, name, aliases in BibleEntry.objects.filter(story=story).values_list("pk", "name", "aliases"):
        for term in {fold(t) for t in [name, *aliases] if isinstance(t, str) and t.strip()}:
            terms.setdefault(term, []).append(pk)
    regex = None
    if terms:  # matched against the folded text, without re.IGNORECASE: no two branches match alike
        regex = re.compile(r"(?<!\w)" + _trie_pattern(list(terms)) + r"(?!\w)")
    matcher = _Matcher(regex=regex, terms=terms)
    with _CACHE_LOCK:
        _CACHE[story.pk] = (key, matcher)
        _CACHE.move_to_end(story.pk)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return matcher


def entries_mentioned(story: Story, text: str, scene: int | None = None) -> list[Mention]:
    """The entries whose name or an alias occurs in `text` as a whole word, in any case, each with
    the spans found, in the order of their first mention. Matches are read left to right without
    overlapping, the longest name or alias winning where several start at the same place (so
    "Mara Quinn" is one mention, of the entry that has that name or alias). With `scene`, each
    entry is as of that scene (see `entry_json`)."""
    if not isinstance(text, str):
        raise Invalid("'text' must be text.", details={"text": "must be a string"})
    if len(text) > MAX_MENTION_TEXT_CHARS:
        raise PayloadTooLarge(f"'text' holds at most {MAX_MENTION_TEXT_CHARS} characters.",
                              details={"text": f"at most {MAX_MENTION_TEXT_CHARS} characters"})
    matcher = _matcher(story)
    if matcher.regex is None or not text:
        return []
    spans: dict[int, list[tuple[int, int]]] = {}
    for match in matcher.regex.finditer(fold(text)):  # same length as `text`: same spans
        for pk in matcher.terms[match.group()]:
            spans.setdefault(pk, []).append(match.span())
    if not spans:
        return []
    by_id = {e.pk: e for e in entries(story).filter(pk__in=list(spans))}
    mentions = []
    for pk, found in spans.items():  # insertion order: first mention first
        if pk in by_id:
            by_id[pk].story = story
            mentions.append(Mention(entry=by_id[pk], spans=found, scene=scene))
    return mentions


def mention_json(mention: Mention) -> dict:
    """`{"entry": the entry as of the mention's scene, "spans": [[start, end], ...]}`."""
    return {"entry": entry_json(mention.entry, scene=mention.scene), "spans": [list(s) for s in mention.spans]}
