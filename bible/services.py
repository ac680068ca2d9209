"""Writes for the story bible. Every write checks its values here (REST, MCP and the admin call
these), locks the story's row (so the caps and slugs cannot race), and sends its `story:` event
after the commit."""
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from bible.models import BibleEntry, BibleProgression
from bible.selectors import entry_json
from messaging import events
from mythline_site.errors import Conflict, Invalid, NotFound, PayloadTooLarge, one_of
from mythline_site.parsers import has_nul, has_surrogate
from stories.models import Story

ENTRY_FIELDS = ("kind", "name", "aliases", "description", "fields")
MAX_FIELD_KEY_CHARS = 64
MAX_NOTE_CHARS = 500
SLUG_MAX = 64


# --- checks ----------------------------------------------------------------------------------------

def _text(value, what: str, max_chars: int, *, blank=False, too_large=False) -> str:
    if not isinstance(value, str):
        raise Invalid(f"'{what}' must be text.", details={what: "must be a string"})
    if has_nul(value) or has_surrogate(value):
        raise Invalid(f"'{what}' may not hold NUL or unpaired surrogates.", details={what: "not text"})
    if not blank and not value.strip():
        raise Invalid(f"'{what}' may not be empty.", details={what: "may not be blank"})
    if len(value) > max_chars:
        error = PayloadTooLarge if too_large else Invalid
        raise error(f"'{what}' holds at most {max_chars} characters.", details={what: f"at most {max_chars} characters"})
    return value


def clean_name(value) -> str:
    return " ".join(_text(value, "name", settings.MYTHLINE_BIBLE_MAX_NAME_CHARS).split())


def clean_kind(value) -> str:
    if value not in BibleEntry.Kind.values:
        raise Invalid("Unknown kind.", details={"kind": one_of(BibleEntry.Kind.values)})
    return value


def clean_aliases(value, name: str) -> list[str]:
    """A list of names: spaces collapsed; case-insensitive repeats (and the name itself) dropped."""
    limit = settings.MYTHLINE_BIBLE_MAX_ALIASES
    if not isinstance(value, list):
        raise Invalid("'aliases' must be a list of names.", details={"aliases": "must be a list of strings"})
    if len(value) > limit:
        raise Invalid(f"An entry has at most {limit} aliases.", details={"aliases": f"at most {limit} aliases"})
    seen, aliases = {name.casefold()}, []
    for alias in value:
        alias = " ".join(_text(alias, "aliases", settings.MYTHLINE_BIBLE_MAX_NAME_CHARS).split())
        if alias.casefold() not in seen:
            seen.add(alias.casefold())
            aliases.append(alias)
    return aliases


def clean_description(value) -> str:
    return _text(value, "description", settings.MYTHLINE_BIBLE_MAX_DESCRIPTION_CHARS, blank=True, too_large=True)


def clean_fields(value, what="fields") -> dict:
    limit, max_chars = settings.MYTHLINE_BIBLE_MAX_FIELDS, settings.MYTHLINE_BIBLE_MAX_FIELD_CHARS
    if not isinstance(value, dict):
        raise Invalid(f"'{what}' must be an object of short texts.", details={what: "must be an object of strings"})
    if len(value) > limit:
        raise Invalid(f"An entry has at most {limit} fields.", details={what: f"at most {limit} fields"})
    for key, text in value.items():
        _text(key, f"{what}.<name>", MAX_FIELD_KEY_CHARS)
        _text(text, f"{what}.{key}", max_chars, blank=True)
    return dict(value)


def _check_version(entry: BibleEntry, version) -> None:
    if version is None:
        return
    if isinstance(version, bool) or not isinstance(version, int):
        raise Invalid("'version' must be an integer.", details={"version": "must be an integer"})
    if version != entry.version:
        raise Conflict(f"Entry '{entry.slug}' changed since version {version}; it is at version {entry.version}.",
                       details={"version": entry.version})


def _chars(*, name="", aliases=(), description=None, fields=None, note="") -> int:
    return (len(name) + sum(len(a) for a in aliases) + len(description or "") + len(note)
            + sum(len(k) + len(v) for k, v in (fields or {}).items()))


def _check_entry_size(entry_chars: int, progressions) -> None:
    """An entry with all its progressions holds at most MYTHLINE_BIBLE_MAX_ENTRY_CHARS characters
    (what one event, one export item, one list row can carry): 413 `payload_too_large`."""
    limit = settings.MYTHLINE_BIBLE_MAX_ENTRY_CHARS
    total = entry_chars + sum(_chars(description=p.description, fields=p.fields, note=p.note) for p in progressions)
    if total > limit:
        raise PayloadTooLarge(f"An entry with its progressions holds at most {limit} characters.",
                              details={"max_entry_chars": limit})


def _check_term_chars(story: Story, name: str, aliases, exclude_pk=None) -> None:
    """The names and aliases of a story's entries hold at most MYTHLINE_BIBLE_MAX_TERM_CHARS
    characters in all (what `entries_mentioned` compiles into one pattern): 409 `conflict`."""
    limit = settings.MYTHLINE_BIBLE_MAX_TERM_CHARS
    others = BibleEntry.objects.filter(story=story)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    total = _chars(name=name, aliases=aliases)
    for other_name, other_aliases in others.values_list("name", "aliases"):
        total += _chars(name=other_name, aliases=[a for a in other_aliases if isinstance(a, str)])
    if total > limit:
        raise Conflict(f"Story '{story.slug}' would hold more than {limit} characters of bible names and aliases, "
                       f"the most a story may hold.", details={"max_term_chars": limit})


def _lock_story(story: Story) -> None:
    Story.objects.select_for_update().filter(pk=story.pk).values_list("pk", flat=True).first()


def _unique_slug(story: Story, name: str) -> str:
    base = (slugify(name, allow_unicode=True)[:SLUG_MAX].strip("-") or "entry")
    taken = set(BibleEntry.objects.filter(story=story, slug__startswith=base).values_list("slug", flat=True))
    slug, n = base, 1
    while slug in taken:
        n += 1
        suffix = f"-{n}"
        slug = base[:SLUG_MAX - len(suffix)] + suffix
    return slug


def _search_names(entry: BibleEntry) -> str:
    return "\n".join(term.casefold() for term in [entry.name, *entry.aliases])


def _name_taken(story: Story, name: str, exclude_pk=None) -> Conflict | None:
    qs = BibleEntry.objects.filter(story=story, name_key=name.casefold())
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    other = qs.values_list("slug", flat=True).first()
    if other is None:
        return None
    return Conflict(f"Story '{story.slug}' already has an entry named '{name}' ('{other}').",
                    details={"name": "taken", "slug": other})


def _publish(entry: BibleEntry, event: str) -> None:
    events.publish_story_event(entry.story, event, entry_json(entry, story_slug=entry.story.slug))


# --- entries ---------------------------------------------------------------------------------------

def entry_create(*, story: Story, by, kind, name, aliases=None, description="", fields=None) -> BibleEntry:
    kind = clean_kind(kind)
    name = clean_name(name)
    aliases = clean_aliases([] if aliases is None else aliases, name)
    description = clean_description(description)
    fields = clean_fields({} if fields is None else fields)
    try:
        with transaction.atomic():
            _lock_story(story)
            limit = settings.MYTHLINE_BIBLE_MAX_ENTRIES
            if BibleEntry.objects.filter(story=story).count() >= limit:
                raise Conflict(f"Story '{story.slug}' already holds {limit} bible entries, the most a story may hold.",
                               details={"max_entries": limit})
            if taken := _name_taken(story, name):
                raise taken
            _check_entry_size(_chars(name=name, aliases=aliases, description=description, fields=fields), [])
            _check_term_chars(story, name, aliases)
            entry = BibleEntry(story=story, kind=kind, name=name, name_key=name.casefold(), aliases=aliases,
                               description=description, fields=fields, created_by=by, updated_by=by,
                               slug=_unique_slug(story, name))
            entry.search_names = _search_names(entry)
            entry.save()
            entry._prefetched_objects_cache = {"progressions": []}
            _publish(entry, "bible.entry.created")
    except IntegrityError:
        raise Conflict(f"Story '{story.slug}' already has an entry named '{name}'.", details={"name": "taken"}) from None
    return entry


def entry_update(*, entry: BibleEntry, by, version=None, **changes) -> BibleEntry:
    """Change some of kind, name, aliases, description, fields; `version`, if given, must be the
    stored one (409 `conflict` otherwise). Nothing changed: nothing stored, no event."""
    unknown = set(changes) - set(ENTRY_FIELDS)
    if unknown:
        raise Invalid("Unknown fields.", details={f: "unknown field" for f in sorted(unknown)})
    story = entry.story
    try:
        with transaction.atomic():
            _lock_story(story)
            stored = BibleEntry.objects.select_for_update().filter(pk=entry.pk).first()
            if stored is None:
                raise NotFound(f"No bible entry '{entry.slug}' in story '{story.slug}'.")
            _check_version(stored, version)
            name = clean_name(changes["name"]) if "name" in changes else stored.name
            new = {
                "kind": clean_kind(changes["kind"]) if "kind" in changes else stored.kind,
                "name": name,
                "aliases": clean_aliases(changes["aliases"] if "aliases" in changes else stored.aliases, name),
                "description": (clean_description(changes["description"]) if "description" in changes
                                else stored.description),
                "fields": clean_fields(changes["fields"]) if "fields" in changes else stored.fields,
            }
            changed = [f for f, value in new.items() if getattr(stored, f) != value]
            if changed:
                if "name" in changed and (taken := _name_taken(story, name, exclude_pk=stored.pk)):
                    raise taken
                _check_entry_size(_chars(name=new["name"], aliases=new["aliases"], description=new["description"],
                                         fields=new["fields"]), BibleProgression.objects.filter(entry=stored))
                if "name" in changed or "aliases" in changed:
                    _check_term_chars(story, new["name"], new["aliases"], exclude_pk=stored.pk)
                for f in changed:
                    setattr(stored, f, new[f])
                stored.name_key = stored.name.casefold()
                stored.search_names = _search_names(stored)
                stored.updated_by = by
                stored.version += 1
                stored.save()
            stored.story = story
            if changed:
                _publish(stored, "bible.entry.updated")
    except IntegrityError:
        raise Conflict(f"Story '{story.slug}' already has an entry named '{changes.get('name')}'.",
                       details={"name": "taken"}) from None
    return stored


def entry_upsert(*, story: Story, by, slug=None, name=None, version=None, **changes) -> tuple[BibleEntry, bool]:
    """Update the entry with this slug, or else the one with this name (any case); or create it.
    Returns (entry, created)."""
    entry = None
    if slug is not None:
        if not isinstance(slug, str):
            raise Invalid("'slug' must be text.", details={"slug": "must be a string"})
        entry = BibleEntry.objects.filter(story=story, slug=slug).first()
        if entry is None:
            raise NotFound(f"No bible entry '{slug}' in story '{story.slug}'.")
    elif name is not None:
        entry = BibleEntry.objects.filter(story=story, name_key=clean_name(name).casefold()).first()
    if entry is not None:
        entry.story = story
        if name is not None:
            changes["name"] = name
        return entry_update(entry=entry, by=by, version=version, **changes), False
    if name is None:
        raise Invalid("A new entry needs a 'name' (and a 'kind').", details={"name": "required"})
    if "kind" not in changes:
        raise Invalid("A new entry needs a 'kind'.", details={"kind": one_of(BibleEntry.Kind.values)})
    return entry_create(story=story, by=by, name=name, **changes), True


def entry_delete(*, entry: BibleEntry, by=None, version=None) -> None:
    story = entry.story
    with transaction.atomic():
        _lock_story(story)
        stored = BibleEntry.objects.select_for_update().filter(pk=entry.pk).first()
        if stored is None:
            raise NotFound(f"No bible entry '{entry.slug}' in story '{story.slug}'.")
        _check_version(stored, version)
        stored.delete()
        events.publish_story_event(story, "bible.entry.deleted", {"slug": entry.slug})


# --- progressions ----------------------------------------------------------------------------------

def progression_add(*, entry: BibleEntry, by, from_scene, description=None, fields=None, note="") -> BibleProgression:
    """From scene `from_scene` on, `description` (if given) replaces the entry's and `fields` are
    merged over its fields. Bumps the entry's version and sends `bible.entry.updated`."""
    if isinstance(from_scene, bool) or not isinstance(from_scene, int) or not 1 <= from_scene <= 2**31 - 1:
        raise Invalid("'from_scene' must be a scene number, 1 or more.", details={"from_scene": "an integer >= 1"})
    if description is not None:
        description = clean_description(description)
    fields = clean_fields({} if fields is None else fields)
    note = _text("" if note is None else note, "note", MAX_NOTE_CHARS, blank=True)
    if description is None and not fields:
        raise Invalid("A progression changes the description, some fields, or both.",
                      details={"description": "or fields required"})
    story = entry.story
    with transaction.atomic():
        _lock_story(story)
        stored = BibleEntry.objects.select_for_update().filter(pk=entry.pk).first()
        if stored is None:
            raise NotFound(f"No bible entry '{entry.slug}' in story '{story.slug}'.")
        limit = settings.MYTHLINE_BIBLE_MAX_PROGRESSIONS
        existing = BibleProgression.objects.filter(entry=stored)
        if existing.count() >= limit:
            raise Conflict(f"Entry '{stored.slug}' already has {limit} progressions, the most an entry may have.",
                           details={"max_progressions": limit})
        if existing.filter(from_scene=from_scene).exists():
            raise Conflict(f"Entry '{stored.slug}' already changes from scene {from_scene}; delete that first.",
                           details={"from_scene": "taken"})
        new = BibleProgression(description=description, fields=fields, note=note)
        _check_entry_size(_chars(name=stored.name, aliases=stored.aliases, description=stored.description,
                                 fields=stored.fields), [*existing, new])
        progression = BibleProgression.objects.create(entry=stored, from_scene=from_scene, description=description,
                                                      fields=fields, note=note, created_by=by)
        _touch(stored, by, story)
    return progression


def progression_delete(*, progression: BibleProgression, by) -> None:
    entry = progression.entry
    story = entry.story
    with transaction.atomic():
        _lock_story(story)
        stored = BibleEntry.objects.select_for_update().filter(pk=entry.pk).first()
        deleted, _ = BibleProgression.objects.filter(pk=progression.pk).delete()
        if stored is None or not deleted:
            raise NotFound(f"No progression {progression.pk} of entry '{entry.slug}'.")
        _touch(stored, by, story)


def _touch(entry: BibleEntry, by, story: Story) -> None:
    entry.version += 1
    entry.updated_by = by
    entry.save(update_fields=["version", "updated_by", "updated_at"])
    entry.story = story
    _publish(entry, "bible.entry.updated")
